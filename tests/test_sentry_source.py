"""The `sentry` source against a loopback fake of Sentry's issues API (apis.md §10.2)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.errors import AuthFailed, ConfigError, Permanent, RateLimited, SignalError, Transient
from adapters.sources.registry import SourceContext, build_source
from adapters.sources.sentry import SentrySettings, SentrySource, next_cursor
from tests.fakes.clock import FakeClock
from tests.fakes.sentry import FakeSentry, rate_limited
from tests.fakes.server import Reply
from tests.incident_helpers import counted

TOKEN = "sntrys_eyJpYXQiOjE3secret"
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSentry]:
    with FakeSentry(TOKEN, org="acme") as started:
        assert isinstance(started, FakeSentry)
        yield started


@pytest.fixture
def fake(server: FakeSentry) -> FakeSentry:
    server.reset()
    return server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def source(
    fake: FakeSentry,
    client: httpx.Client,
    clock: FakeClock,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> SentrySource:
    model = SentrySettings.model_validate(
        {"token_env": "SENTRY_TOKEN", "organization": "acme", "base_url": fake.url, **settings}
    )
    env = {"SENTRY_TOKEN": TOKEN} if env is None else env
    return SentrySource("errors", model, client, env, sleep=clock.sleep, clock=clock)


def test_new_issues_in_the_window_with_level_mapped(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("4000", first_seen=T0 - 600, last_seen=T0 + 30, level="fatal")  # old issue, new events
    fake.add("4001", first_seen=T0 + 10, level="fatal", project="checkout")
    fake.add("4002", first_seen=T0 + 20, level="warning", project="search", status="resolved")
    fake.add("4003", first_seen=T0 + 30, level="error")
    result = source(fake, client, clock).read(T0, T0 + 60)
    assert [e.id for e in result.events] == ["4001", "4002", "4003"]  # oldest first
    fatal, warning, error = result.events
    assert fatal.time == T0 + 10 and fatal.signal == "incidents"
    assert fatal.fields == {
        "severity": "high",
        "service": "checkout",
        "status": "unresolved",
        "level": "fatal",
    }
    assert warning.fields["severity"] == "low" and warning.fields["service"] == "search"
    assert error.fields["severity"] == "high"
    request = fake.requests[-1]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.path == "/api/0/organizations/acme/issues/"
    assert request.query["sort"] == ["new"] and request.query["limit"] == ["100"]


def test_mapping_project_environment_and_query_are_configurable(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("4001", first_seen=T0 + 10, level="error")
    sentry = source(
        fake,
        client,
        clock,
        severity={"fatal": "high", "error": "medium"},
        project="4504",
        environment="production",
        query="is:unresolved",
        signal="errors",
    )
    (event,) = sentry.read(T0, T0 + 60).events
    assert event.fields["severity"] == "medium" and event.signal == "errors"
    query = fake.requests[-1].query
    assert query["project"] == ["4504"] and query["environment"] == ["production"]
    assert query["query"] == ["is:unresolved"]


def test_follows_the_link_cursor_until_results_false(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock
) -> None:
    for n in range(230):
        fake.add(str(5000 + n), first_seen=T0 + 1 + n)
    result = source(fake, client, clock).read(T0, T0 + 1000)
    assert sorted(str(e.id) for e in result.events) == [str(5000 + n) for n in range(230)]
    assert result.queries == 3
    assert [r.query.get("cursor") for r in fake.requests] == [None, ["100:100:0"], ["100:200:0"]]


def test_next_cursor_reads_sentry_link_headers() -> None:
    link = (
        '<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:0:1>; rel="previous"; '
        'results="false"; cursor="0:0:1", '
        '<https://sentry.io/api/0/organizations/acme/issues/?&cursor=0:100:0>; rel="next"; '
        'results="true"; cursor="0:100:0"'
    )
    assert next_cursor(link) == "0:100:0"
    assert next_cursor(link.replace('results="true"', 'results="false"')) is None
    assert next_cursor("") is None


def test_an_issue_read_twice_counts_once_in_the_evaluator(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("4001", first_seen=T0 + 10, level="fatal")
    fake.add("4002", first_seen=T0 + 20, level="info")
    sentry = source(fake, client, clock)
    events = sentry.read(T0, T0 + 60).events + sentry.read(T0, T0 + 60).events
    assert len(events) == 4 and counted(events, T0 + 60) == 1


def test_a_rate_limit_is_retried(fake: FakeSentry, client: httpx.Client, clock: FakeClock) -> None:
    fake.add("4001", first_seen=T0 + 10)
    fake.inject(rate_limited())
    assert [e.id for e in source(fake, client, clock).read(T0, T0 + 60).events] == ["4001"]
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (rate_limited(), RateLimited),
        (Reply(502, b"Bad Gateway"), Transient),
        (Reply(400, {"detail": "Invalid query"}), Permanent),
        (Reply(403, {"detail": "You do not have permission to perform this action."}), AuthFailed),
    ],
    ids=["429", "502", "400", "403"],
)
def test_vendor_errors_are_signal_errors_keeping_their_class(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock, reply: Reply, cause: type[Exception]
) -> None:
    fake.inject(reply, times=10)
    with pytest.raises(SignalError, match=r"source 'errors' \(sentry\): sentry: GET /api/0/") as caught:
        source(fake, client, clock).read(T0, T0 + 60)
    assert isinstance(caught.value.__cause__, cause)


def test_a_refused_token_never_appears_in_errors_or_logs(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sntrys_wrong-token-987654"
    fake.inject(Reply(401, {"detail": f"Invalid token {wrong}"}))  # a vendor echoing it back
    with pytest.raises(SignalError, match="401") as caught:
        source(fake, client, clock, env={"SENTRY_TOKEN": wrong}).read(T0, T0 + 60)
    assert isinstance(caught.value.__cause__, AuthFailed)
    for text in (str(caught.value), caplog.text):
        assert wrong not in text and TOKEN not in text


def test_a_missing_credential_names_the_variable(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(SignalError, match="SENTRY_TOKEN is not set"):
        source(fake, client, clock, env={"SENTRY_TOKEN": "  "}).read(T0, T0 + 60)


@pytest.mark.parametrize(
    "body", [b"not json", {"detail": "a dict"}, [{"id": "1", "firstSeen": "yesterday"}]], ids=str
)
def test_a_malformed_answer_is_a_signal_error_naming_the_query(
    fake: FakeSentry, client: httpx.Client, clock: FakeClock, body: object
) -> None:
    fake.inject(Reply(200, body))
    with pytest.raises(
        SignalError, match=r"source 'errors' \(sentry\): GET /api/0/organizations/acme/issues/ start"
    ):
        source(fake, client, clock).read(T0, T0 + 60)


def test_built_through_the_registry_with_strict_settings(fake: FakeSentry, client: httpx.Client) -> None:
    fake.add("4001", first_seen=T0 + 10)
    context = SourceContext(env={"SENTRY_TOKEN": TOKEN}, http=client)
    settings = {"token_env": "SENTRY_TOKEN", "organization": "acme", "base_url": fake.url}
    assert [e.id for e in build_source("sentry", "errors", settings, context).read(T0, T0 + 60).events] == [
        "4001"
    ]
    with pytest.raises(ConfigError, match="organization"):
        build_source("sentry", "errors", {"token_env": "SENTRY_TOKEN"}, context)
    with pytest.raises(ConfigError, match="organization"):
        build_source("sentry", "errors", {**settings, "organization": "acme/../x"}, context)
