"""The `opsgenie` source against a loopback fake of Opsgenie's Alert API v2 (apis.md §10.3)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.errors import AuthFailed, ConfigError, Permanent, RateLimited, SignalError, Transient
from adapters.sources.opsgenie import OpsgenieSettings, OpsgenieSource
from adapters.sources.registry import SourceContext, build_source
from tests.fakes.clock import FakeClock
from tests.fakes.opsgenie import FakeOpsgenie, error, rate_limited
from tests.fakes.server import Reply
from tests.incident_helpers import counted

KEY = "genie-5a1e0c7d-secret"
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie(KEY) as started:
        assert isinstance(started, FakeOpsgenie)
        yield started


@pytest.fixture
def fake(server: FakeOpsgenie) -> FakeOpsgenie:
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
    fake: FakeOpsgenie,
    client: httpx.Client,
    clock: FakeClock,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> OpsgenieSource:
    model = OpsgenieSettings.model_validate({"token_env": "OG_KEY", "base_url": fake.url, **settings})
    env = {"OG_KEY": KEY} if env is None else env
    return OpsgenieSource("pages", model, client, env, sleep=clock.sleep, clock=clock)


def test_alerts_created_in_the_window_with_priority_mapped(
    fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("a-before", created_at=T0, priority="P1")
    fake.add("a-p1", created_at=T0 + 10, priority="P1", source="checkout")
    fake.add("a-p2", created_at=T0 + 20, priority="P2", status="closed")
    fake.add("a-p3", created_at=T0 + 30, priority="P3")
    fake.add("a-p5", created_at=T0 + 60, priority="P5")
    fake.add("a-after", created_at=T0 + 61, priority="P1")
    result = source(fake, client, clock).read(T0, T0 + 60)
    assert [e.id for e in result.events] == ["a-p1", "a-p2", "a-p3", "a-p5"]
    assert [e.fields["severity"] for e in result.events] == ["high", "high", "medium", "low"]
    assert result.events[0].fields == {
        "severity": "high",
        "service": "checkout",
        "status": "open",
        "priority": "P1",
    }
    assert result.events[1].fields["status"] == "closed" and result.events[0].time == T0 + 10
    request = fake.requests[-1]
    assert request.headers["authorization"] == f"GenieKey {KEY}"
    assert request.query["query"] == ["createdAt>1800000000000 AND createdAt<=1800000060000"]
    assert request.query["sort"] == ["createdAt"] and request.query["order"] == ["asc"]


def test_mapping_query_and_signal_are_configurable(
    fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("a-open", created_at=T0 + 10, priority="P3")
    fake.add("a-closed", created_at=T0 + 20, priority="P3", status="closed")
    og = source(fake, client, clock, severity={"P3": "high"}, query="status:open", signal="alerts")
    (event,) = og.read(T0, T0 + 60).events
    assert event.id == "a-open" and event.fields["severity"] == "high" and event.signal == "alerts"
    assert fake.queries[-1] == "createdAt>1800000000000 AND createdAt<=1800000060000 AND (status:open)"


def test_pages_until_there_is_no_next(fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock) -> None:
    for n in range(201):
        fake.add(f"a{n:03d}", created_at=T0 + 1 + n, priority="P1")
    result = source(fake, client, clock).read(T0, T0 + 1000)
    assert [e.id for e in result.events] == [f"a{n:03d}" for n in range(201)]
    assert [r.query["offset"] for r in fake.requests] == [["0"], ["100"], ["200"]]
    assert result.queries == 3


def test_an_alert_read_twice_counts_once_in_the_evaluator(
    fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("a-dup", created_at=T0 + 10, priority="P1")
    og = source(fake, client, clock)
    events = og.read(T0, T0 + 60).events * 2
    assert counted(events, T0 + 60) == 1
    fake.add("a-two", created_at=T0 + 70, priority="P2")
    assert counted([*events, *og.read(T0 + 60, T0 + 120).events], T0 + 120) == 2


def test_throttling_is_retried(fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock) -> None:
    fake.add("a1", created_at=T0 + 10)
    fake.inject(rate_limited(), times=2)
    assert [e.id for e in source(fake, client, clock).read(T0, T0 + 60).events] == ["a1"]
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (rate_limited(), RateLimited),
        (error(503, "Service Unavailable"), Transient),
        (error(422, "Invalid query"), Permanent),
        (error(401, "Could not authenticate"), AuthFailed),
    ],
    ids=["429", "503", "422", "401"],
)
def test_vendor_errors_are_signal_errors_keeping_their_class(
    fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock, reply: Reply, cause: type[Exception]
) -> None:
    fake.inject(reply, times=10)
    with pytest.raises(SignalError, match=r"source 'pages' \(opsgenie\): opsgenie: GET /v2/alerts") as caught:
        source(fake, client, clock).read(T0, T0 + 60)
    assert isinstance(caught.value.__cause__, cause)


def test_a_refused_key_never_appears_in_errors_or_logs(
    fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "genie-wrong-00000000"
    with pytest.raises(SignalError, match="401") as caught:
        source(fake, client, clock, env={"OG_KEY": wrong}).read(T0, T0 + 60)
    assert isinstance(caught.value.__cause__, AuthFailed)
    for text in (str(caught.value), caplog.text):
        assert wrong not in text and KEY not in text


def test_a_missing_credential_names_the_variable(
    fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(SignalError, match="OG_KEY is not set"):
        source(fake, client, clock, env={}).read(T0, T0 + 60)


@pytest.mark.parametrize(
    "body",
    [b"{", {"data": "nope"}, {"data": [{"id": "x", "createdAt": None}]}, {"took": 0.1}],
    ids=["truncated", "data-not-a-list", "bad-createdAt", "no-data"],
)
def test_a_malformed_answer_is_a_signal_error_naming_the_query(
    fake: FakeOpsgenie, client: httpx.Client, clock: FakeClock, body: object
) -> None:
    fake.inject(Reply(200, body))
    with pytest.raises(SignalError, match=r"source 'pages' \(opsgenie\): GET /v2/alerts query"):
        source(fake, client, clock).read(T0, T0 + 60)


def test_built_through_the_registry_with_strict_settings(fake: FakeOpsgenie, client: httpx.Client) -> None:
    fake.add("a1", created_at=T0 + 10)
    context = SourceContext(env={"OG_KEY": KEY}, http=client)
    settings = {"token_env": "OG_KEY", "base_url": fake.url}
    assert [e.id for e in build_source("opsgenie", "pages", settings, context).read(T0, T0 + 60).events] == [
        "a1"
    ]
    with pytest.raises(ConfigError, match="priority"):
        build_source("opsgenie", "pages", {**settings, "priority": {"P1": "high"}}, context)
