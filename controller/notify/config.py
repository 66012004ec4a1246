"""The `notifications:` list of controller.yaml, validated with pydantic (unknown keys are errors).

    notifications:
      - kind: slack
        name: ops
        webhook_url_env: SLACK_WEBHOOK_URL       # the URL is a secret: only its variable is named
        on: [start, mitigation, resolved, human]
        templates:
          start: "P1 – Investigating {rollout}. Symptom: {symptom}. Next update in {next_update} min."
      - kind: webhook
        name: pager-bridge
        url: https://bridge.internal/tidegate
        secret_env: PAGER_BRIDGE_SECRET          # optional: sign every delivery (HMAC-SHA256)

Templates are checked here, at load time: a mistake is reported at its line in the file
(`controller.yaml:9:18: notifications[0].templates.start: unknown placeholder {sympton} …`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

from controller.notify.messages import MessageKind
from controller.notify.templates import check
from policies.schema import Duration, PolicyId

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


def _env_name(text: str) -> str:
    if not _ENV_NAME.fullmatch(text):  # a value pasted here instead of a name must not be echoed
        raise ValueError("expected the name of an environment variable, like SLACK_WEBHOOK_URL")
    return text


def _url(text: str) -> str:
    if not _URL.fullmatch(text):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text


HttpUrl = Annotated[str, AfterValidator(_url)]
EnvName = Annotated[str, AfterValidator(_env_name)]
DEFAULT_ON = (
    MessageKind.START,
    MessageKind.MITIGATION,
    MessageKind.RESOLVED,
    MessageKind.HUMAN,
    MessageKind.NOTICE,
)


def _template(kind: MessageKind) -> AfterValidator:
    def checked(text: str | None) -> str | None:
        if text is not None:
            check(kind, text)
        return text

    return AfterValidator(checked)


class TemplateSpec(BaseModel):
    """Per-kind overrides of the default templates; a kind left out keeps its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Annotated[str | None, _template(MessageKind.START)] = None
    mitigation: Annotated[str | None, _template(MessageKind.MITIGATION)] = None
    resolved: Annotated[str | None, _template(MessageKind.RESOLVED)] = None
    human: Annotated[str | None, _template(MessageKind.HUMAN)] = None
    notice: Annotated[str | None, _template(MessageKind.NOTICE)] = None
    progress: Annotated[str | None, _template(MessageKind.PROGRESS)] = None

    def overrides(self) -> dict[MessageKind, str]:
        return {kind: text for kind in MessageKind if (text := getattr(self, kind.value)) is not None}


def _distinct(kinds: tuple[MessageKind, ...]) -> tuple[MessageKind, ...]:
    if not kinds:
        raise ValueError("must name at least one message kind")
    return tuple(dict.fromkeys(kinds))


class _Notifier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PolicyId
    on: Annotated[tuple[MessageKind, ...], AfterValidator(_distinct)] = DEFAULT_ON
    templates: TemplateSpec = TemplateSpec()
    next_update: Duration = Field(default=900.0, gt=0)  # "Next update in 15 min" (runbook)
    verification: Duration = Field(default=900.0, gt=0)  # ETA of a move without a bake (rollback)
    timeout: Duration = Field(default=10.0, gt=0, le=120)  # seconds per request
    attempts: int = Field(default=4, ge=1, le=10)  # per message, the first included
    queue: int = Field(default=1000, ge=1, le=100_000)  # messages waiting; beyond, the oldest is dropped


class SlackSpec(_Notifier):
    """A Slack incoming webhook. Its URL embeds the credential, so it comes from the
    environment (`webhook_url_env`) and never appears in logs, errors or counters."""

    kind: Literal["slack"]
    webhook_url_env: EnvName


class WebhookSpec(_Notifier):
    """Any HTTP receiver: JSON with the event's fields and the rendered text, optionally
    signed like tidegate's generic incoming webhooks (X-Tidegate-Timestamp / -Signature)."""

    kind: Literal["webhook"]
    url: HttpUrl
    secret_env: EnvName | None = None


def _kind(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return {"slack": "SlackSpec", "webhook": "WebhookSpec"}.get(str(kind))


NotifierSpec = Annotated[
    Annotated[SlackSpec, Tag("SlackSpec")] | Annotated[WebhookSpec, Tag("WebhookSpec")],
    Discriminator(
        _kind,
        custom_error_type="notifier_kind",
        custom_error_message="kind must be one of: slack, webhook",
    ),
]


def _unique(specs: tuple[SlackSpec | WebhookSpec, ...]) -> tuple[SlackSpec | WebhookSpec, ...]:
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate notifier name(s): {', '.join(duplicates)}")
    return specs


# What controller.yaml's model declares: `notifications: Notifications = ()`.
Notifications = Annotated[tuple[NotifierSpec, ...], AfterValidator(_unique)]
