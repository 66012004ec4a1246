"""The `pagerduty` source against a loopback fake of PagerDuty's REST API v2 (apis.md §10.1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.errors import AuthFailed, ConfigError, Permanent, RateLimited, SignalError, Transient
from adapters.sources.pagerduty import PagerDutySettings, PagerDutySource
from adapters.sources.registry import SourceContext, build_source
from tests.fakes.clock import FakeClock
from tests.fakes.pagerduty import FakePagerDuty, error, rate_limited
from tests.fakes.server import Reply
from tests.incident_helpers import count_rule, counted

TOKEN = "pd-secret-u+Zz9XyWvT"
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(TOKEN) as started:
        assert isinstance(started, FakePagerDuty)
        yield started


@pytest.fixture
def fake(server: FakePagerDuty) -> FakePagerDuty:
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
    fake: FakePagerDuty,
    client: httpx.Client,
    clock: FakeClock,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> PagerDutySource:
    model = PagerDutySettings.model_validate({"token_env": "PD_TOKEN", "base_url": fake.url, **settings})
    return PagerDutySource(
        "pd", model, client, {"PD_TOKEN": TOKEN} if env is None else env, sleep=clock.sleep, clock=clock
    )


def test_reads_incidents_created_in_the_window_with_the_documented_request(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("PBEFORE", created_at=T0 - 10)
    fake.add("PAT_START", created_at=T0)
    fake.add("PHIGH", created_at=T0 + 30, urgency="high", service="checkout")
    fake.add("PLOW", created_at=T0 + 60, urgency="low", service="search", status="resolved")
    fake.add("PAT_END", created_at=T0 + 300)
    result = source(fake, client, clock).read(T0, T0 + 300)
    assert [e.id for e in result.events] == ["PHIGH", "PLOW", "PAT_END"]  # (start, end]
    high, low, _ = result.events
    assert high.signal == "incidents" and high.time == T0 + 30
    assert high.fields == {
        "severity": "high",
        "service": "checkout",
        "status": "triggered",
        "urgency": "high",
        "priority": None,
    }
    assert low.fields["severity"] == "low" and low.fields["status"] == "resolved"
    request = fake.requests[-1]
    assert request.headers["authorization"] == f"Token token={TOKEN}"
    assert request.headers["accept"] == "application/vnd.pagerduty+json;version=2"
    assert request.query["since"] == ["2027-01-15T08:00:00Z"]
    assert request.query["until"] == ["2027-01-15T08:05:01Z"]
    assert result.queries == 1 and result.bytes_read > 0


def test_priority_mapping_wins_over_urgency_and_signal_name_is_configurable(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("P1LOW", created_at=T0 + 1, urgency="low", priority="P1")
    fake.add("P4HIGH", created_at=T0 + 2, urgency="high", priority="P4")
    fake.add("NOPRIO", created_at=T0 + 3, urgency="low")
    pd = source(
        fake,
        client,
        clock,
        signal="pages",
        severity={"P1": "high", "P2": "high", "P4": "low"},
        urgency_severity={"high": "sev1", "low": "sev3"},
    )
    events = pd.read(T0, T0 + 10).events
    assert {e.id: e.fields["severity"] for e in events} == {
        "P1LOW": "high",
        "P4HIGH": "low",
        "NOPRIO": "sev3",
    }
    assert {e.signal for e in events} == {"pages"} and pd.columns() == ["pages"]


def test_unmapped_urgency_passes_through_lower_cased(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("PX", created_at=T0 + 1, urgency="High")
    (event,) = source(fake, client, clock, urgency_severity={}).read(T0, T0 + 10).events
    assert event.fields["severity"] == "high"


def test_pages_through_more_than_one_page(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    for n in range(250):
        fake.add(f"P{n:04d}", created_at=T0 + 1 + n)
    result = source(fake, client, clock).read(T0, T0 + 1000)
    assert [e.id for e in result.events] == [f"P{n:04d}" for n in range(250)]
    assert result.queries == 3
    assert [r.query["offset"] for r in fake.requests] == [["0"], ["100"], ["200"]]
    assert all(r.query["limit"] == ["100"] for r in fake.requests)


def test_filters_are_sent_as_repeated_array_parameters(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("PA", created_at=T0 + 1, service="checkout")
    fake.add("PB", created_at=T0 + 2, service="search")
    pd = source(fake, client, clock, service_ids=["PSCHECKOUT"], statuses=["triggered", "acknowledged"])
    assert [e.id for e in pd.read(T0, T0 + 10).events] == ["PA"]
    assert fake.requests[-1].query["statuses[]"] == ["triggered", "acknowledged"]


def test_an_incident_read_twice_counts_once_in_the_evaluator(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("PDUP", created_at=T0 + 10, urgency="high")
    fake.add("PLOW", created_at=T0 + 20, urgency="low")
    pd = source(fake, client, clock)
    first, again = pd.read(T0, T0 + 60), pd.read(T0, T0 + 60)  # an overlapping re-read
    assert counted([*first.events, *again.events], T0 + 60) == 1
    fake.add("PNEXT", created_at=T0 + 70, urgency="high")
    later = pd.read(T0 + 60, T0 + 120)
    assert counted([*first.events, *again.events, *later.events], T0 + 120, count_rule()) == 2


def test_a_rate_limit_is_waited_out_as_the_headers_say(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add("PA", created_at=T0 + 1)
    fake.inject(rate_limited(reset=3))
    assert [e.id for e in source(fake, client, clock).read(T0, T0 + 10).events] == ["PA"]
    assert clock.sleeps == [3.0]


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (rate_limited(reset=1), RateLimited),
        (error(500, "Internal Server Error", 0), Transient),
        (error(400, "Invalid Input Provided", 2001), Permanent),
        (error(403, "Access Denied", 2010), AuthFailed),
    ],
    ids=["429", "500", "400", "403"],
)
def test_vendor_errors_are_signal_errors_keeping_their_class(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock, reply: Reply, cause: type[Exception]
) -> None:
    fake.inject(reply, times=10)
    with pytest.raises(SignalError, match=r"source 'pd' \(pagerduty\): pagerduty: GET /incidents") as caught:
        source(fake, client, clock).read(T0, T0 + 10)
    assert isinstance(caught.value.__cause__, cause)


def test_a_wrong_token_is_an_auth_failure_without_the_token(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "pd-wrong-secret-1234567"
    with pytest.raises(SignalError, match="401") as caught:
        source(fake, client, clock, env={"PD_TOKEN": wrong}).read(T0, T0 + 10)
    assert isinstance(caught.value.__cause__, AuthFailed)
    assert len(fake.requests) == 1  # never retried
    for text in (str(caught.value), caplog.text):
        assert wrong not in text and TOKEN not in text


def test_a_missing_credential_names_the_variable(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(SignalError, match="environment variable PD_TOKEN is not set"):
        source(fake, client, clock, env={}).read(T0, T0 + 10)
    assert fake.requests == []


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", {"incidents": [{"id": "P1"}], "more": False}, {"unexpected": True}, [1, 2]],
    ids=["not-json", "no-created_at", "no-incidents", "a-list"],
)
def test_a_malformed_answer_is_a_signal_error_naming_the_query(
    fake: FakePagerDuty, client: httpx.Client, clock: FakeClock, body: object
) -> None:
    fake.inject(Reply(200, body))
    with pytest.raises(SignalError, match=r"source 'pd' \(pagerduty\): GET /incidents since .* until"):
        source(fake, client, clock).read(T0, T0 + 10)


def test_an_unreachable_api_is_a_transient_signal_error(client: httpx.Client, clock: FakeClock) -> None:
    model = PagerDutySettings(token_env="PD_TOKEN", base_url="http://127.0.0.1:9")
    pd = PagerDutySource("pd", model, client, {"PD_TOKEN": TOKEN}, sleep=clock.sleep, clock=clock)
    with pytest.raises(SignalError) as caught:
        pd.read(T0, T0 + 10)
    assert isinstance(caught.value.__cause__, Transient)
    assert TOKEN not in str(caught.value)


def test_built_through_the_registry_with_strict_settings(fake: FakePagerDuty, client: httpx.Client) -> None:
    fake.add("PA", created_at=T0 + 1)
    context = SourceContext(env={"PD_TOKEN": TOKEN}, http=client)
    built = build_source("pagerduty", "pd", {"token_env": "PD_TOKEN", "base_url": fake.url}, context)
    assert built.name == "pd" and [e.id for e in built.read(T0, T0 + 10).events] == ["PA"]
    with pytest.raises(ConfigError, match="urgncy_severity") as caught:
        build_source("pagerduty", "pd", {"token_env": "PD_TOKEN", "urgncy_severity": {}}, context)
    assert caught.value.path == ("urgncy_severity",)
    with pytest.raises(ConfigError, match="token_env"):
        build_source("pagerduty", "pd", {}, context)
