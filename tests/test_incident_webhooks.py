"""Pushed incidents: each vendor's webhook verification and payload, the generic HMAC scheme
with its replay window and seen-set, and Alertmanager's webhook receiver format."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from adapters.sources.pagerduty import PagerDutySettings
from adapters.sources.webhooks import (
    BadSignature,
    MalformedWebhook,
    ReplayedWebhook,
    ReplayGuard,
    StaleWebhook,
    WebhookError,
    check_token,
    parse_alertmanager,
    sign_generic,
    verify_generic,
    verify_opsgenie,
    verify_pagerduty,
    verify_sentry,
)
from policies.series import Event
from tests.incident_helpers import count_rule, counted

SECRET = "whsec-8d1f2e3c4b5a-shared"
NOW = 1_800_000_000.0


def hexmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()


# --- PagerDuty v3 --------------------------------------------------------------------------


def pagerduty_body(
    event_type: str = "incident.triggered", ident: str = "Q2GL8KJ0Z0XV3L", **data: Any
) -> bytes:
    incident = {
        "id": ident,
        "type": "incident",
        "self": f"https://api.pagerduty.com/incidents/{ident}",
        "number": 7,
        "status": "triggered",
        "incident_key": "abc",
        "created_at": "2027-01-15T08:00:10Z",
        "title": "checkout 5xx",
        "service": {"id": "PSVC1", "summary": "checkout", "type": "service_reference"},
        "urgency": "high",
        "priority": None,
        **data,
    }
    event = {
        "id": "01DEN1HNLBC1VITX9B7WF4J3DI",
        "event_type": event_type,
        "resource_type": "incident",
        "occurred_at": "2027-01-15T08:00:11.000Z",
        "agent": None,
        "client": None,
        "data": incident,
    }
    return dumps({"event": event})


def test_pagerduty_signed_incident_becomes_an_event() -> None:
    body = pagerduty_body()
    (event,) = verify_pagerduty({"X-PagerDuty-Signature": "v1=" + hexmac(SECRET, body)}, body, SECRET)
    assert event == Event(
        NOW + 10,
        "incidents",
        "Q2GL8KJ0Z0XV3L",
        {
            "severity": "high",
            "service": "checkout",
            "status": "triggered",
            "urgency": "high",
            "priority": None,
        },
    )


def test_pagerduty_accepts_any_of_several_signatures_and_maps_with_settings() -> None:
    body = pagerduty_body(urgency="low", priority={"id": "PR1", "summary": "P1"})
    header = f"v1={hexmac('old-secret', body)},v1={hexmac(SECRET, body)}"
    settings = PagerDutySettings(token_env="-", severity={"P1": "high"}, signal="pages")
    (event,) = verify_pagerduty({"x-pagerduty-signature": header}, body, SECRET, settings=settings)
    assert event.fields["severity"] == "high" and event.signal == "pages"


@pytest.mark.parametrize(
    "header",
    [None, "", "v1=", "v1=" + "0" * 64, "sha256=deadbeef", "v1=" + hexmac("other-secret", pagerduty_body())],
    ids=["absent", "empty", "v1-empty", "zeros", "other-scheme", "other-secret"],
)
def test_pagerduty_rejects_bad_signatures(header: str | None) -> None:
    headers = {} if header is None else {"X-PagerDuty-Signature": header}
    with pytest.raises(BadSignature) as caught:
        verify_pagerduty(headers, pagerduty_body(), SECRET)
    assert SECRET not in str(caught.value)


def test_pagerduty_tampered_body_is_rejected() -> None:
    body = pagerduty_body()
    signature = "v1=" + hexmac(SECRET, body)
    with pytest.raises(BadSignature, match="does not match"):
        verify_pagerduty({"X-PagerDuty-Signature": signature}, body.replace(b"high", b"low!"), SECRET)


def test_pagerduty_non_incident_events_carry_none_and_malformed_ones_are_errors() -> None:
    other = dumps({"event": {"event_type": "service.updated", "resource_type": "service", "data": {}}})
    assert verify_pagerduty({"X-PagerDuty-Signature": "v1=" + hexmac(SECRET, other)}, other, SECRET) == []
    for body in (b"not json", dumps({"event": {"resource_type": "incident", "data": {"id": "Q1"}}})):
        with pytest.raises(MalformedWebhook, match="pagerduty webhook"):
            verify_pagerduty({"X-PagerDuty-Signature": "v1=" + hexmac(SECRET, body)}, body, SECRET)


def test_pagerduty_lifecycle_deliveries_of_one_incident_count_once() -> None:
    deliveries = [
        pagerduty_body("incident.triggered"),
        pagerduty_body("incident.acknowledged", status="acknowledged"),
        pagerduty_body("incident.triggered"),  # PagerDuty retries a delivery it thinks failed
        pagerduty_body("incident.triggered", ident="Q_OTHER", urgency="low"),
    ]
    events = [
        e
        for body in deliveries
        for e in verify_pagerduty({"X-PagerDuty-Signature": "v1=" + hexmac(SECRET, body)}, body, SECRET)
    ]
    assert len(events) == 4 and counted(events, NOW + 60) == 1


# --- Sentry --------------------------------------------------------------------------------


def sentry_issue_body(level: str = "fatal", ident: str = "1170820242") -> bytes:
    issue = {
        "id": ident,
        "shortId": "CHECKOUT-1",
        "title": "ZeroDivisionError",
        "level": level,
        "status": "unresolved",
        "firstSeen": "2027-01-15T08:00:20.123Z",
        "lastSeen": "2027-01-15T08:00:20.123Z",
        "project": {"id": "4504", "slug": "checkout"},
    }
    return dumps({"action": "created", "installation": {"uuid": "a8e5d37a"}, "data": {"issue": issue}})


def test_sentry_signed_issue_becomes_an_event() -> None:
    body = sentry_issue_body()
    headers = {"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": hexmac(SECRET, body)}
    (event,) = verify_sentry(headers, body, SECRET)
    assert event.id == "1170820242" and event.time == pytest.approx(NOW + 20.123)
    assert event.fields == {
        "severity": "high",
        "service": "checkout",
        "status": "unresolved",
        "level": "fatal",
    }


def test_sentry_event_alert_counts_against_its_issue_id() -> None:
    event_alert = {
        "action": "triggered",
        "data": {
            "event": {
                "event_id": "e1",
                "issue_id": "1170820242",
                "level": "error",
                "datetime": "2027-01-15T08:00:30Z",
                "project": 4504,
            },
            "triggered_rule": "high error rate",
        },
    }
    body = dumps(event_alert)
    headers = {"Sentry-Hook-Resource": "event_alert", "Sentry-Hook-Signature": hexmac(SECRET, body)}
    events = verify_sentry(headers, body, SECRET)
    issue = sentry_issue_body()
    events += verify_sentry(
        {"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": hexmac(SECRET, issue)}, issue, SECRET
    )
    assert [e.id for e in events] == ["1170820242", "1170820242"]
    assert counted(events, NOW + 60) == 1


def test_sentry_other_resources_carry_no_incident() -> None:
    body = dumps({"action": "created", "data": {"installation": {}}})
    headers = {"Sentry-Hook-Resource": "installation", "Sentry-Hook-Signature": hexmac(SECRET, body)}
    assert verify_sentry(headers, body, SECRET) == []


def test_sentry_rejects_bad_signatures_and_malformed_payloads() -> None:
    body = sentry_issue_body()
    with pytest.raises(BadSignature, match="no Sentry-Hook-Signature"):
        verify_sentry({"Sentry-Hook-Resource": "issue"}, body, SECRET)
    with pytest.raises(BadSignature, match="does not match"):
        verify_sentry(
            {"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": hexmac("x", body)}, body, SECRET
        )
    bad = dumps({"data": {"issue": {"id": "1"}}})
    with pytest.raises(MalformedWebhook, match="sentry webhook"):
        verify_sentry(
            {"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": hexmac(SECRET, bad)}, bad, SECRET
        )


# --- Opsgenie ------------------------------------------------------------------------------


def opsgenie_body(action: str = "Create", priority: str = "P1") -> bytes:
    alert = {
        "alertId": "70413a06-38d6-4c85-92b8-5ebc900d42e2",
        "message": "checkout 5xx",
        "tags": ["checkout"],
        "tinyId": "1791",
        "alias": "checkout-5xx",
        "createdAt": 1_800_000_040_000,  # epoch milliseconds in webhook payloads
        "updatedAt": 1_800_000_041_000,
        "priority": priority,
    }
    return dumps({"action": action, "alert": alert, "source": {"name": "checkout", "type": "api"}})


def test_opsgenie_shared_token_and_payload() -> None:
    (event,) = verify_opsgenie({"X-Tidegate-Token": SECRET}, opsgenie_body(), SECRET)
    assert event == Event(
        NOW + 40,
        "incidents",
        "70413a06-38d6-4c85-92b8-5ebc900d42e2",
        {"severity": "high", "service": "checkout", "status": "open", "priority": "P1"},
    )
    (closed,) = verify_opsgenie(
        {"X-Custom": SECRET},
        opsgenie_body("Close", "P4"),
        SECRET,
        header="X-Custom",
        severity={"P4": "minor"},
    )
    assert closed.fields["status"] == "closed" and closed.fields["severity"] == "minor"


@pytest.mark.parametrize("headers", [{}, {"X-Tidegate-Token": "guess"}, {"X-Tidegate-Token": SECRET + "x"}])
def test_opsgenie_rejects_a_missing_or_wrong_token(headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature) as caught:
        verify_opsgenie(headers, opsgenie_body(), SECRET)
    assert SECRET not in str(caught.value)


def test_opsgenie_malformed_payload() -> None:
    with pytest.raises(MalformedWebhook, match="opsgenie webhook"):
        verify_opsgenie({"X-Tidegate-Token": SECRET}, dumps({"action": "Create"}), SECRET)


def test_no_secret_configured_refuses_everything() -> None:
    with pytest.raises(BadSignature, match="no secret configured"):
        verify_opsgenie({"X-Tidegate-Token": ""}, opsgenie_body(), "")
    with pytest.raises(BadSignature, match="no secret configured"):
        verify_pagerduty({"X-PagerDuty-Signature": "v1=" + hexmac("", b"{}")}, b"{}", "")


# --- generic -------------------------------------------------------------------------------


def generic_body(*events: dict[str, Any]) -> bytes:
    return dumps({"events": list(events) or [{"id": "inc-1", "timestamp": NOW - 5, "severity": "SEV1"}]})


def test_generic_signed_delivery_with_severity_mapping() -> None:
    body = generic_body(
        {"id": "inc-1", "timestamp": "2027-01-15T07:59:55Z", "severity": "SEV1", "service": "checkout"},
        {"id": 2, "timestamp": NOW - 4, "severity": "SEV3", "signal": "pages", "team": "payments"},
    )
    headers = sign_generic(SECRET, body, int(NOW))
    events = verify_generic(headers, body, SECRET, NOW, ReplayGuard(), severity={"SEV1": "high"})
    assert events == [
        Event(NOW - 5, "incidents", "inc-1", {"severity": "high", "service": "checkout"}),
        Event(NOW - 4, "pages", "2", {"severity": "sev3", "team": "payments"}),
    ]


def test_generic_accepts_a_single_object_and_a_list() -> None:
    guard = ReplayGuard()
    for body in (dumps({"id": "a", "timestamp": NOW}), dumps([{"id": "b", "timestamp": NOW}])):
        (event,) = verify_generic(sign_generic(SECRET, body, int(NOW)), body, SECRET, NOW, guard)
        assert event.fields == {}


def test_generic_signature_is_over_timestamp_dot_body() -> None:
    body = generic_body()
    signature = "sha256=" + hexmac(SECRET, f"{int(NOW)}.".encode() + body)
    headers = {"x-tidegate-timestamp": str(int(NOW)), "x-tidegate-signature": signature}
    assert len(verify_generic(headers, body, SECRET, NOW, ReplayGuard())) == 1
    moved = {**headers, "x-tidegate-timestamp": str(int(NOW) - 1)}  # same signature, other timestamp
    with pytest.raises(BadSignature, match="does not match"):
        verify_generic(moved, body, SECRET, NOW, ReplayGuard())


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Tidegate-Timestamp": str(int(NOW))},
        {"X-Tidegate-Timestamp": "soon", "X-Tidegate-Signature": "sha256=00"},
        {"X-Tidegate-Timestamp": "١٨٠٠", "X-Tidegate-Signature": "sha256=00"},  # non-ASCII digits
        {"X-Tidegate-Timestamp": str(int(NOW)), "X-Tidegate-Signature": "sha256=" + "0" * 64},
    ],
    ids=["none", "no-signature", "word-timestamp", "arabic-digits", "wrong"],
)
def test_generic_rejects_bad_signatures(headers: dict[str, str]) -> None:
    with pytest.raises(BadSignature):
        verify_generic(headers, generic_body(), SECRET, NOW, ReplayGuard())


def test_generic_stale_and_future_deliveries_are_rejected() -> None:
    body = generic_body()
    assert verify_generic(sign_generic(SECRET, body, int(NOW) - 300), body, SECRET, NOW, ReplayGuard())
    with pytest.raises(StaleWebhook, match="outside the 300 s window"):
        verify_generic(sign_generic(SECRET, body, int(NOW) - 301), body, SECRET, NOW, ReplayGuard())
    with pytest.raises(StaleWebhook):
        verify_generic(sign_generic(SECRET, body, int(NOW) + 301), body, SECRET, NOW, ReplayGuard())


def test_generic_replay_of_the_same_signature_is_rejected() -> None:
    guard = ReplayGuard()
    body = generic_body()
    headers = sign_generic(SECRET, body, int(NOW))
    assert verify_generic(headers, body, SECRET, NOW, guard)
    with pytest.raises(ReplayedWebhook, match="replay"):
        verify_generic(headers, body, SECRET, NOW + 10, guard)
    # a fresh signature (a legitimate retry by the sender) is accepted; its events dedupe by id
    again = sign_generic(SECRET, body, int(NOW) + 1)
    events = verify_generic(again, body, SECRET, NOW + 10, guard)
    assert counted(events * 2, NOW + 10, count_rule(match={})) == 1


def test_the_seen_set_is_bounded() -> None:
    guard = ReplayGuard(capacity=3)
    for n in range(10):
        guard.check(f"sig-{n}", NOW, NOW)
    assert len(guard) == 3
    guard.check("sig-0", NOW, NOW)  # forgotten: only the capacity most recent are kept
    with pytest.raises(ReplayedWebhook):
        guard.check("sig-9", NOW, NOW)


def test_the_seen_set_drops_what_the_window_already_rejects() -> None:
    guard = ReplayGuard()
    guard.check("old", NOW - 400, NOW - 400)
    guard.check("new", NOW, NOW)
    assert len(guard) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        dumps({"events": [{"timestamp": NOW}]}),
        dumps([{"id": True, "timestamp": NOW}]),
        dumps([7]),
    ],
    ids=["not-json", "no-id", "bool-id", "not-an-object"],
)
def test_generic_malformed_body(body: bytes) -> None:
    with pytest.raises(MalformedWebhook, match="generic webhook"):
        verify_generic(sign_generic(SECRET, body, int(NOW)), body, SECRET, NOW, ReplayGuard())


def test_no_error_or_log_carries_the_secret_or_signature(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = generic_body()
    headers = sign_generic(SECRET, body, int(NOW) - 1000)
    messages = []
    attempts: list[Callable[[], object]] = [
        lambda: verify_generic(headers, body, SECRET, NOW, ReplayGuard()),
        lambda: verify_generic(
            {**headers, "X-Tidegate-Signature": "sha256=1"}, body, SECRET, NOW, ReplayGuard()
        ),
        lambda: verify_pagerduty({"X-PagerDuty-Signature": "v1=" + SECRET}, body, SECRET),
        lambda: verify_sentry({"Sentry-Hook-Signature": SECRET}, body, SECRET),
        lambda: verify_opsgenie({"X-Tidegate-Token": SECRET[:-1]}, body, SECRET),
        lambda: check_token({"Authorization": "Bearer " + SECRET[:-1]}, SECRET),
    ]
    for attempt in attempts:
        with pytest.raises(WebhookError) as caught:
            attempt()
        messages.append(str(caught.value))
    for text in [*messages, caplog.text]:
        assert SECRET not in text and SECRET[:-1] not in text and headers["X-Tidegate-Signature"] not in text


# --- Alertmanager --------------------------------------------------------------------------


def alertmanager_body(*alerts: dict[str, Any], version: str = "4") -> bytes:
    return dumps(
        {
            "version": version,
            "groupKey": '{}:{alertname="HighErrorRate"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "tidegate",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    )


def alert(
    status: str = "firing", severity: str = "critical", starts: str = "2027-01-15T08:00:50.5Z", **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", "severity": severity, "job": "checkout", **labels},
        "annotations": {"summary": "5xx above 5%"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2027-01-15T08:10:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
        "fingerprint": "c4b9f1d0e1a2b3c4" if severity == "critical" else "0a1b2c3d4e5f6a7b",
    }


def test_alertmanager_alerts_become_events_with_labels_and_mapped_severity() -> None:
    body = alertmanager_body(alert(), alert(severity="warning", service="search"))
    critical, warning = parse_alertmanager(body, severity={"critical": "high", "warning": "low"})
    assert critical == Event(
        NOW + 50.5,
        "alerts",
        "c4b9f1d0e1a2b3c4@2027-01-15T08:00:50.5Z",
        {
            "alertname": "HighErrorRate",
            "severity": "high",
            "job": "checkout",
            "status": "firing",
            "service": "checkout",
        },
    )
    assert warning.fields["severity"] == "low" and warning.fields["service"] == "search"


def test_alertmanager_repeats_and_resolution_of_one_firing_count_once_a_refiring_anew() -> None:
    mapping = {"critical": "high"}
    repeats = [
        *parse_alertmanager(alertmanager_body(alert()), severity=mapping),
        *parse_alertmanager(alertmanager_body(alert()), severity=mapping),  # repeat_interval resend
        *parse_alertmanager(alertmanager_body(alert(status="resolved")), severity=mapping),
    ]
    rule = count_rule("alerts")
    assert counted(repeats, NOW + 600, rule) == 1
    refired = parse_alertmanager(alertmanager_body(alert(starts="2027-01-15T08:20:00Z")), severity=mapping)
    assert counted([*repeats, *refired], NOW + 1500, rule) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        alertmanager_body(alert(), version="3"),
        alertmanager_body({"status": "firing", "labels": {}}),
        alertmanager_body({**alert(), "startsAt": "yesterday"}),
    ],
    ids=["not-an-object", "version-3", "no-fingerprint", "bad-startsAt"],
)
def test_alertmanager_malformed_payloads(body: bytes) -> None:
    with pytest.raises(MalformedWebhook, match="alertmanager webhook"):
        parse_alertmanager(body)


def test_alertmanager_bearer_token() -> None:
    check_token({"Authorization": f"Bearer {SECRET}"}, SECRET)
    for headers in ({}, {"Authorization": SECRET}, {"Authorization": "Bearer nope"}):
        with pytest.raises(BadSignature, match="bearer token"):
            check_token(headers, SECRET)
