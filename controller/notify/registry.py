"""Notifier kinds, one builder each, and `build_dispatcher`: the notifications' composition root.

An unknown kind cannot get here (config.py's discriminator refuses it); a kind registered
without a test module fails tests/test_notify_registry.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from adapters.errors import ConfigError
from adapters.http import RetryPolicy
from controller.notify.config import SlackSpec, WebhookSpec
from controller.notify.dispatch import DEDUPE_WINDOW, Channel, Dispatcher, Notifier, Shutdown
from controller.notify.slack import Slack
from controller.notify.templates import Templates
from controller.notify.webhook import Webhook

LONGEST_RETRY_AFTER = 60.0  # seconds: a notifier asked to wait longer gives the message up
# Backoff 1–2 s, 2–4 s, 4–8 s … (jittered, capped at 30 s): every retry falls in a later second,
# so a signed webhook delivery is re-signed with a new timestamp — a receiver's replay guard
# would reject the same signature twice — and Slack's one-message-a-second pace is respected.
RETRY_INITIAL, RETRY_MAXIMUM = 2.0, 30.0
_URL = re.compile(r"^https?://[^\s/]+/\S+$")
Spec = SlackSpec | WebhookSpec


@dataclass(frozen=True)
class BuildContext:
    env: Mapping[str, str]
    client: httpx.Client
    sleep: Callable[[float], None]
    clock: Callable[[], float]


def build_slack(spec: Spec, context: BuildContext) -> Notifier:
    assert isinstance(spec, SlackSpec)
    url = context.env.get(spec.webhook_url_env, "").strip()
    where = ("webhook_url_env",)
    if not url:
        raise ConfigError(
            f"notifier {spec.name}: environment variable {spec.webhook_url_env} is not set"
            " (the Slack incoming webhook URL)",
            where,
        )
    if not _URL.fullmatch(url):  # never say what it holds: it may be most of the secret
        raise ConfigError(f"notifier {spec.name}: {spec.webhook_url_env} does not hold an http(s) URL", where)
    return Slack(
        spec.name,
        url,
        context.client,
        _templates(spec),
        retry=_retry(spec),
        timeout=spec.timeout,
        sleep=context.sleep,
        clock=context.clock,
    )


def build_webhook(spec: Spec, context: BuildContext) -> Notifier:
    assert isinstance(spec, WebhookSpec)
    secret = None
    if spec.secret_env is not None:
        secret = context.env.get(spec.secret_env, "")
        if not secret.strip():
            raise ConfigError(
                f"notifier {spec.name}: environment variable {spec.secret_env} is not set"
                " (the signing secret)",
                ("secret_env",),
            )
    return Webhook(
        spec.name,
        spec.url,
        secret,
        context.client,
        _templates(spec),
        retry=_retry(spec),
        timeout=spec.timeout,
        sleep=context.sleep,
        clock=context.clock,
    )


NOTIFIERS: dict[str, Callable[[Spec, BuildContext], Notifier]] = {
    "slack": build_slack,
    "webhook": build_webhook,
}


def build_dispatcher(
    specs: Sequence[Spec],
    env: Mapping[str, str],
    http_client: httpx.Client,
    *,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.time,
    dedupe_window: float = DEDUPE_WINDOW,
) -> Dispatcher:
    """A Dispatcher with one channel per configured notifier. Secrets are read from `env` now,
    so a missing variable is a ConfigError at start-up (naming the variable, never a value)
    rather than a silent channel. `sleep` and `clock` replace the waits between retries and
    the signing time (tests)."""
    shutdown = Shutdown()
    context = BuildContext(env, http_client, sleep or shutdown.sleep, clock)
    channels = []
    for index, spec in enumerate(specs):
        try:
            notifier = NOTIFIERS[spec.kind](spec, context)
        except ConfigError as error:
            raise ConfigError(str(error), ("notifications", index, *error.path)) from None
        channels.append(Channel(notifier, frozenset(spec.on), spec.queue))
    return Dispatcher(channels, shutdown, dedupe_window=dedupe_window)


def _templates(spec: Spec) -> Templates:
    return Templates(spec.templates.overrides(), next_update=spec.next_update, verification=spec.verification)


def _retry(spec: Spec) -> RetryPolicy:
    return RetryPolicy(
        attempts=spec.attempts, initial=RETRY_INITIAL, maximum=RETRY_MAXIMUM, longest_wait=LONGEST_RETRY_AFTER
    )
