"""The `notifications:` section of controller.yaml: strict models, templates checked when the
file loads, and every mistake reported at its line."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from controller.notify import MessageKind, Notifications, SlackSpec, WebhookSpec
from controller.notify.templates import check
from policies.errors import PolicyError
from policies.loader import validate_located
from policies.yamlmap import load_located


class ControllerFile(BaseModel):
    """What the service's controller.yaml model declares for this section."""

    model_config = ConfigDict(extra="forbid")

    notifications: Notifications = ()


def load(text: str) -> ControllerFile:
    return validate_located(load_located(text, "controller.yaml"), ControllerFile, None)


GOOD = """notifications:
  - kind: slack
    name: ops
    webhook_url_env: SLACK_WEBHOOK_URL
    on: [start, mitigation, resolved, human]
    next_update: 30m
    templates:
      start: "Investigating {rollout}: {symptom} (since {started_at}); next update in {next_update} min"
  - kind: webhook
    name: pager-bridge
    url: https://bridge.internal/tidegate
    secret_env: PAGER_BRIDGE_SECRET
"""


def test_a_slack_and_a_webhook_notifier_load_with_their_defaults() -> None:
    slack, bridge = load(GOOD).notifications
    assert isinstance(slack, SlackSpec) and isinstance(bridge, WebhookSpec)
    assert slack.on == (MessageKind.START, MessageKind.MITIGATION, MessageKind.RESOLVED, MessageKind.HUMAN)
    assert slack.next_update == 1800.0 and slack.verification == 900.0
    assert set(slack.templates.overrides()) == {MessageKind.START}
    assert bridge.on == (
        MessageKind.START,
        MessageKind.MITIGATION,
        MessageKind.RESOLVED,
        MessageKind.HUMAN,
        MessageKind.NOTICE,
    )
    assert (bridge.attempts, bridge.queue, bridge.timeout) == (4, 1000, 10.0)


@pytest.mark.parametrize(
    ("line", "text", "expected"),
    [
        (
            '      start: "Symptom: {sympton}"',
            "controller.yaml:8:14",
            "unknown placeholder {sympton} in a start template (fields: decision, next_update,",
        ),
        (
            '      resolved: "ETA {eta}"',
            "controller.yaml:8:17",
            "unknown placeholder {eta} in a resolved template",
        ),
        ('      start: "{}"', "controller.yaml:8:14", "placeholder {}: use a field name"),
        (
            '      start: "{rollout.__class__}"',
            "controller.yaml:8:14",
            "placeholder {rollout.__class__}: use a field",
        ),
        ('      start: "{rollout!r}"', "controller.yaml:8:14", "conversions (!r) are not supported"),
        ('      start: "{traffic:.2f}"', "controller.yaml:8:14", "'.2f' is not a format for text"),
        ('      start: "100% {"', "controller.yaml:8:14", "write {{ or }} for a literal brace"),
        ('      strat: "x"', "controller.yaml:8:7", "strat"),
    ],
)
def test_a_bad_template_is_an_error_at_its_line_naming_the_placeholder(
    line: str, text: str, expected: str
) -> None:
    lines = GOOD.splitlines()
    lines[7] = line
    with pytest.raises(PolicyError) as error:
        load("\n".join(lines) + "\n")
    assert str(error.value).startswith(text), str(error.value)
    assert expected in str(error.value), str(error.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    name: pager-bridge", "    name: ops"), "duplicate notifier name(s): ops"),
        (("  - kind: webhook", "  - kind: email"), "kind must be one of: slack, webhook"),
        (
            ("    on: [start, mitigation, resolved, human]", "    on: [start, paged]"),
            "on[1]: expected one of start, mitigation",
        ),
        (
            ("    on: [start, mitigation, resolved, human]", "    on: []"),
            "must name at least one message kind",
        ),
        (
            ("    url: https://bridge.internal/tidegate", "    url: bridge.internal"),
            "notifications[1].url: expected an http:// or https:// URL, got 'bridge.internal'",
        ),
        (  # the fields listed are the webhook's, not the first kind's
            ("    secret_env: PAGER_BRIDGE_SECRET", "    secret: hunter2"),
            "unknown field 'secret' (did you mean 'secret_env'? expected one of: attempts, kind, name,"
            " next_update, on, queue, secret_env, templates, timeout, url, verification)",
        ),
        (
            ("    webhook_url_env: SLACK_WEBHOOK_URL", "    webhook_url: https://hooks.slack.com/x"),
            "webhook_url",
        ),
        (  # the URL itself pasted where its variable's name belongs: refused, and not repeated
            (
                "    webhook_url_env: SLACK_WEBHOOK_URL",
                "    webhook_url_env: https://hooks.slack.com/services/T/B/s3cr3t",
            ),
            "webhook_url_env: expected the name of an environment variable, like SLACK_WEBHOOK_URL",
        ),
    ],
)
def test_other_mistakes_are_errors_too(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(PolicyError, match=r"^controller\.yaml:\d+:\d+: ") as error:
        load(GOOD.replace(old, new, 1))
    assert expected in str(error.value), str(error.value)
    assert "s3cr3t" not in str(error.value)


def test_a_template_may_use_literal_braces_and_text_formats() -> None:
    check(MessageKind.MITIGATION, "{{json}} {action:>30} {eta:^12}")
