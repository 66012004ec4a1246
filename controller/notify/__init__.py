"""Notifications: tell people what tidegate decided and did, in the runbook's comms templates.

    from controller.notify import Notifications, build_dispatcher
    dispatcher = build_dispatcher(config.notifications, os.environ, http_client)
    reconciler = Reconciler(store, observer=dispatcher)   # or chained with other observers
    ...
    dispatcher.counters()        # per notifier: sent, failed, dropped, pending (/metrics)
    dispatcher.close(timeout=5)  # on shutdown: flush, then give up

See docs/notifications.md.
"""

from controller.notify.config import Notifications, NotifierSpec, SlackSpec, TemplateSpec, WebhookSpec
from controller.notify.dispatch import Counters, Dispatcher, Notifier
from controller.notify.messages import Composer, Message, MessageKind
from controller.notify.registry import NOTIFIERS, build_dispatcher
from controller.notify.templates import DEFAULTS, FIELDS, Templates

__all__ = [
    "DEFAULTS",
    "FIELDS",
    "NOTIFIERS",
    "Composer",
    "Counters",
    "Dispatcher",
    "Message",
    "MessageKind",
    "Notifications",
    "Notifier",
    "NotifierSpec",
    "SlackSpec",
    "TemplateSpec",
    "Templates",
    "WebhookSpec",
    "build_dispatcher",
]
