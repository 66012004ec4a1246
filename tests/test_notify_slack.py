"""The `slack` notifier against a loopback Slack incoming webhook (tests/fakes/slack.py) that
answers as Slack documents: the demo's rollback told in the runbook's comms templates, the
documented failures given up at once, 429/500 retried, and the webhook URL — the
credential — never in a log record, an error or a counter."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.errors import ConfigError
from controller.notify import Dispatcher, SlackSpec, build_dispatcher
from controller.runtime import Event, Reconciler
from tests.fakes.clock import FakeClock
from tests.fakes.server import Reply
from tests.fakes.slack import FakeSlack, slack_reply
from tests.notify_helpers import demo, shop

ENV = "SLACK_WEBHOOK_URL"


def spec(**fields: Any) -> SlackSpec:
    return SlackSpec.model_validate({"kind": "slack", "name": "ops", "webhook_url_env": ENV, **fields})


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def hhmm(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%H:%M UTC")


def test_the_demo_rollback_reaches_slack_as_start_mitigations_and_resolved_in_order(
    slack: FakeSlack, client: httpx.Client, tmp_path: Path
) -> None:
    url = slack.hook()
    waits: list[float] = []
    dispatcher = build_dispatcher([spec()], {ENV: url}, client, sleep=waits.append)
    events: list[Event] = []

    def watch(event: Event) -> None:
        events.append(event)
        dispatcher(event)

    with demo(tmp_path, watch) as outcome:
        assert outcome.code == 1  # rolled back
    dispatcher.close(timeout=10)

    texts = slack.texts(url)
    decision = next(e for e in events if e.kind == "decision" and e.details["decision"] == "step_down")
    step_down = next(e for e in events if e.kind == "transition" and e.details["trigger"] == "step_down")
    rollback = next(e for e in events if e.kind == "transition" and e.details["trigger"] == "rollback")
    began = decision.details["since"]["latency-p95"]
    assert isinstance(began, float)
    assert [text.split(" ", 2)[1] for text in texts] == [
        "P1",
        "Mitigating",
        "Needs",
        "Mitigating",
        "Resolved",
    ]
    start, stepped, page, rolled, resolved = texts
    assert re.fullmatch(
        r"\[checkout-demo-1\] P1 – Investigating\. Symptom: latency-p95 \(latency_p95 &gt; 20 for 10m,"
        rf" now [0-9.]+\)\. Started at {hhmm(began)}\. Next update in 15 min\.",
        start,
    ), start
    assert stepped.startswith(
        "[checkout-demo-1] Mitigating by stepping traffic down from 100% to 50%, because latency-p95"
    )
    assert "checkout-flag: set_traffic(50%) → applied" in stepped
    assert stepped.endswith(f"ETA for verification {hhmm(step_down.at + 30 * 60)}.")  # the 30m down-step bake
    assert page.startswith("[checkout-demo-1] Needs a human: ios-app: app-store cannot roll back by API")
    assert "because error-rate (error_rate &gt; 0.05 for 5m" in rolled
    assert "backend: rollback(to 2.3.9) → applied" in rolled
    assert rolled.endswith(f"ETA for verification {hhmm(rollback.at + 15 * 60)}.")  # no bake: 15m default
    assert resolved.startswith(
        f"[checkout-demo-1] Resolved at {hhmm(rollback.at)}: every target rolled back."
    )
    assert "Root cause: the release tripped latency-p95, then error-rate." in resolved
    assert "Follow-ups: ios-app: app-store cannot roll back by API" in resolved
    assert dispatcher.counters()["ops"].sent == 5
    assert waits == []


def post_a_rollback(folder: Path, dispatcher: Dispatcher) -> float:
    """A real rollback on two sandbox targets (start, mitigation, resolved); its duration in s."""
    with shop(folder) as world:
        began = time.monotonic()
        world.tick(Reconciler(world.store, dispatcher, backoff=0.001), 1, errors=1.0)
        return time.monotonic() - began


@pytest.mark.parametrize(
    ("what", "answer"),
    [
        ("revoked", "404: no_service"),
        ("archived", "410: channel_is_archived"),
        ("rotated", "403: invalid_token"),
    ],
)
def test_a_revoked_archived_or_rotated_webhook_fails_at_once_without_retries(
    slack: FakeSlack,
    client: httpx.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    what: str,
    answer: str,
) -> None:
    url = slack.hook()
    if what == "revoked":
        slack.revoke(url)
    elif what == "archived":
        slack.archive(url)
    else:  # the workspace rotated the token: the old URL names a known webhook, wrong token
        url = url[: url.rindex("/") + 1] + "rotated-token-123"
    waits: list[float] = []
    dispatcher = build_dispatcher([spec()], {ENV: url}, client, sleep=waits.append)
    post_a_rollback(tmp_path, dispatcher)
    dispatcher.close(timeout=10)
    assert waits == []

    assert dispatcher.counters()["ops"].failed == 3  # start, mitigation, resolved
    assert len(slack.requests) == 3  # one each: retrying will not un-revoke a webhook
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notifier ops:")]
    assert len(failures) == 3 and all(answer in text for text in failures), failures
    assert all("POST *** →" in text for text in failures), failures


def test_an_invalid_payload_is_not_resent(slack: FakeSlack, client: httpx.Client, tmp_path: Path) -> None:
    url = slack.hook()
    slack.inject(slack_reply(400, "invalid_payload"))
    waits: list[float] = []
    dispatcher = build_dispatcher([spec(on=["start"])], {ENV: url}, client, sleep=waits.append)
    post_a_rollback(tmp_path, dispatcher)
    dispatcher.close(timeout=10)
    assert waits == []
    assert dispatcher.counters()["ops"].failed == 1
    assert len(slack.requests) == 1


def test_a_429_is_waited_out_as_slack_asks_and_a_500_retried_then_the_message_lands(
    slack: FakeSlack, client: httpx.Client, tmp_path: Path
) -> None:
    url = slack.hook()
    slack.inject(slack_reply(429, "rate_limited", {"Retry-After": "7"}))
    slack.inject(slack_reply(500, "rollup_error"))
    waits: list[float] = []
    dispatcher = build_dispatcher([spec(on=["start"])], {ENV: url}, client, sleep=waits.append)
    post_a_rollback(tmp_path, dispatcher)
    dispatcher.close(timeout=10)

    assert dispatcher.counters()["ops"].sent == 1
    assert len(slack.requests) == 3
    assert waits[0] == 7.0 and 2.0 <= waits[1] <= 4.0  # Retry-After honoured; then jittered backoff
    (text,) = slack.texts(url)
    assert "P1 – Investigating" in text


def test_every_attempt_spent_is_counted_failed_and_the_rollback_never_waits_for_it(
    slack: FakeSlack, client: httpx.Client, tmp_path: Path
) -> None:
    url = slack.hook()
    slack.inject(Reply(500, b"rollup_error"), times=100)
    clock = FakeClock()
    dispatcher = build_dispatcher([spec(attempts=3)], {ENV: url}, client, sleep=clock.sleep, clock=clock)
    took = post_a_rollback(tmp_path, dispatcher)
    dispatcher.close(timeout=10)
    assert took < 1.0
    assert len(clock.sleeps) == 6 and all(1.0 <= wait <= 4.0 for wait in clock.sleeps)
    assert dispatcher.counters()["ops"].failed == 3
    assert len(slack.requests) == 9  # three messages, three attempts each


def test_values_are_escaped_for_mrkdwn_but_a_link_in_the_template_is_kept(
    slack: FakeSlack, client: httpx.Client, tmp_path: Path
) -> None:
    url = slack.hook()
    template = "Investigating {rollout}: {symptom} <https://grafana.internal/d/shop|dashboard>"
    dispatcher = build_dispatcher([spec(on=["start"], templates={"start": template})], {ENV: url}, client)
    post_a_rollback(tmp_path, dispatcher)
    dispatcher.close(timeout=10)
    assert slack.texts(url) == [
        "Investigating shop-1: errors (errors &gt; 0.5, now 1) <https://grafana.internal/d/shop|dashboard>"
    ]


def test_the_webhook_url_never_appears_in_a_log_record_an_error_or_the_counters(
    slack: FakeSlack, client: httpx.Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = slack.hook()
    token = url.rsplit("/", 1)[-1]
    slack.inject(slack_reply(500, "rollup_error"))  # a retry, logged by tenacity's caller
    slack.inject(slack_reply(429, "rate_limited", {"Retry-After": "0"}))
    dispatcher = build_dispatcher([spec(attempts=2)], {ENV: url}, client, sleep=lambda s: None)
    post_a_rollback(tmp_path, dispatcher)
    dispatcher.close(timeout=10)
    counters = dispatcher.counters()
    assert counters["ops"].failed == 1 and counters["ops"].sent == 2

    records = caplog.records
    assert any(r.name.startswith("httpx") for r in records)  # the HTTP library did log each request
    assert any(r.name == "tidegate.notify" for r in records)  # and the failure was logged
    path = url.split("/", 3)[-1]
    for record in records:
        said = record.getMessage() + (record.exc_text or "")
        assert token not in said and path not in said, f"{record.name}: {said}"
    assert token not in repr(counters) and token not in repr(dispatcher.channels)


def test_a_missing_or_malformed_webhook_url_is_a_config_error_naming_the_variable_only(
    client: httpx.Client,
) -> None:
    with pytest.raises(ConfigError, match=f"environment variable {ENV} is not set") as missing:
        build_dispatcher([spec()], {}, client)
    assert missing.value.path == ("notifications", 0, "webhook_url_env")
    secret = "hooks.slack.com/services/T000/B000/s3cr3t-t0ken-value"
    with pytest.raises(ConfigError) as malformed:
        build_dispatcher([spec()], {ENV: secret}, client)
    assert f"{ENV} does not hold an http(s) URL" in str(malformed.value)
    assert "s3cr3t" not in str(malformed.value)
