"""Pushed incidents and alerts: verify a webhook delivery, then turn it into Events.

Pure functions of (headers, raw body, secret, now); `tidegate serve` calls them at
POST /api/v1/webhooks/{name} (controller/service/api/audit.py). Each returns the delivery's
Events (severity mapped as the pull sources map it, id = the vendor's incident id so a
delivery repeated, or also read by a pull source, counts once) or raises a `WebhookError`:

    WebhookError          (policies.errors.TidegateError)
     ├── BadSignature     missing, malformed or wrong signature / token
     ├── StaleWebhook     signed timestamp outside the replay window
     ├── ReplayedWebhook  the very same signature seen before (a captured request resent)
     └── MalformedWebhook the body is not the vendor's documented shape

Schemes:
- PagerDuty v3: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256(secret, body)>`, comma-separated
  when several secrets are live (rotation); any match is enough.
- Sentry integration platform: `Sentry-Hook-Signature: <hex HMAC-SHA256(client secret, body)>`,
  resource in `Sentry-Hook-Resource` (`issue`, `event_alert`, `error`; others carry no incident).
- Opsgenie webhook integration: no signature exists; the integration sends a custom header we
  configure, compared in constant time with the shared token.
- Generic: `X-Tidegate-Timestamp: <unix seconds>`, `X-Tidegate-Signature: sha256=<hex
  HMAC-SHA256(secret, "<timestamp>.<body>")>`; older (or further in the future) than 5 minutes
  is stale, and a `ReplayGuard` remembers recent signatures to reject an exact resend.
- Prometheus Alertmanager webhook receiver (version "4"): `parse_alertmanager`; authenticate
  the endpoint with Alertmanager's http_config (bearer token) — `check_token` compares it.

Nothing here ever puts a secret, a token or a signature into an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from adapters.sources import opsgenie, pagerduty, sentry
from adapters.sources.incidents import DEFAULT_SIGNAL, severity_of, timestamp
from policies.errors import TidegateError
from policies.series import Event

REPLAY_WINDOW = 300.0  # seconds
SEEN_CAPACITY = 10_000  # signatures remembered; older ones are stale anyway
ALERTS_SIGNAL = "alerts"
OPSGENIE_HEADER = "X-Tidegate-Token"


class WebhookError(TidegateError):
    pass


class BadSignature(WebhookError):
    pass


class StaleWebhook(WebhookError):
    pass


class ReplayedWebhook(WebhookError):
    pass


class MalformedWebhook(WebhookError):
    pass


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return ""


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _json(body: bytes, vendor: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhook(f"{vendor} webhook: the body is not JSON") from None


def _parsing(vendor: str, error: Exception) -> MalformedWebhook:
    return MalformedWebhook(f"{vendor} webhook: unexpected payload ({type(error).__name__}: {error})")


def _require_secret(secret: str, vendor: str) -> None:
    if not secret:
        raise BadSignature(f"{vendor} webhook: no secret configured; refusing unverified deliveries")


class ReplayGuard:
    """The signatures of recent deliveries, bounded: an exact resend is a replay."""

    def __init__(self, capacity: int = SEEN_CAPACITY, window: float = REPLAY_WINDOW) -> None:
        self.capacity = capacity
        self.window = window
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature → when it was signed

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, signature: str, signed_at: float, now: float) -> None:
        """Remember `signature`; ReplayedWebhook when it was already seen."""
        while self._seen and next(iter(self._seen.values())) < now - self.window:
            self._seen.popitem(last=False)  # stale ones would be rejected by the window anyway
        if signature in self._seen:
            raise ReplayedWebhook("webhook: this signed delivery was already received (replay)")
        self._seen[signature] = signed_at
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


# --- PagerDuty v3 --------------------------------------------------------------------------


def verify_pagerduty(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    settings: pagerduty.PagerDutySettings | None = None,
) -> list[Event]:
    """A PagerDuty v3 webhook's incident as an Event ([] for non-incident event types)."""
    _require_secret(secret, "pagerduty")
    said = _header(headers, "X-PagerDuty-Signature")
    expected = "v1=" + _hmac(secret, body)
    offered = [part.strip() for part in said.split(",") if part.strip()]
    if not offered:
        raise BadSignature("pagerduty webhook: no X-PagerDuty-Signature header")
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise BadSignature("pagerduty webhook: signature does not match")
    config = settings or pagerduty.PagerDutySettings(token_env="-")
    payload = _json(body, "pagerduty")
    try:
        event = payload["event"]
        if event.get("resource_type") != "incident":
            return []
        return [pagerduty.incident_event(event["data"], config.signal, config)]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _parsing("pagerduty", error) from None


# --- Sentry --------------------------------------------------------------------------------


def verify_sentry(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    signal: str = DEFAULT_SIGNAL,
    severity: Mapping[str, str] = sentry.LEVEL_SEVERITY,
) -> list[Event]:
    """A Sentry integration webhook's issue as an Event ([] for resources without one)."""
    _require_secret(secret, "sentry")
    said = _header(headers, "Sentry-Hook-Signature")
    if not said:
        raise BadSignature("sentry webhook: no Sentry-Hook-Signature header")
    if not hmac.compare_digest(_hmac(secret, body), said):
        raise BadSignature("sentry webhook: signature does not match")
    resource = _header(headers, "Sentry-Hook-Resource")
    payload = _json(body, "sentry")
    try:
        data = payload["data"]
        if resource == "issue":
            return [sentry.issue_event(data["issue"], signal, severity)]
        if resource in ("event_alert", "error"):
            raw = data["event"] if resource == "event_alert" else data["error"]
            issue = {
                "id": raw["issue_id"],
                "level": raw.get("level"),
                "status": "unresolved",
                "firstSeen": raw.get("datetime") or raw["timestamp"],
                "project": {"slug": raw.get("project_slug") or raw.get("project")},
            }
            return [sentry.issue_event(issue, signal, severity)]
        return []
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _parsing("sentry", error) from None


# --- Opsgenie ------------------------------------------------------------------------------


def verify_opsgenie(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    header: str = OPSGENIE_HEADER,
    signal: str = DEFAULT_SIGNAL,
    severity: Mapping[str, str] = opsgenie.PRIORITY_SEVERITY,
) -> list[Event]:
    """An Opsgenie webhook-integration delivery's alert as an Event."""
    _require_secret(secret, "opsgenie")
    said = _header(headers, header)
    if not said:
        raise BadSignature(f"opsgenie webhook: no {header} header")
    if not hmac.compare_digest(said.encode(), secret.encode()):
        raise BadSignature(f"opsgenie webhook: {header} does not match")
    payload = _json(body, "opsgenie")
    try:
        alert = dict(payload["alert"])
        action = str(payload.get("action", ""))
        alert.setdefault("status", "closed" if action.lower() in ("close", "delete") else "open")
        if "source" not in alert and isinstance(payload.get("source"), Mapping):
            alert["source"] = payload["source"].get("name")
        return [opsgenie.alert_event(alert, signal, severity)]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _parsing("opsgenie", error) from None


# --- generic HMAC scheme -------------------------------------------------------------------


def sign_generic(secret: str, body: bytes, timestamp_: int) -> dict[str, str]:
    """The headers a sender puts on a generic delivery (tests, and docs' example)."""
    signed = str(timestamp_).encode() + b"." + body
    signature = "sha256=" + _hmac(secret, signed)
    return {"X-Tidegate-Timestamp": str(timestamp_), "X-Tidegate-Signature": signature}


def verify_generic(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: float,
    guard: ReplayGuard,
    *,
    signal: str = DEFAULT_SIGNAL,
    severity: Mapping[str, str] | None = None,
    window: float = REPLAY_WINDOW,
) -> list[Event]:
    """The events of a generic signed delivery.

    Body: one JSON object or a list of them (or {"events": [...]}), each with `id` and
    `timestamp` (RFC 3339 or unix seconds), optional `signal`, every other field matchable;
    `severity` goes through the mapping.
    """
    _require_secret(secret, "generic")
    stamp = _header(headers, "X-Tidegate-Timestamp")
    said = _header(headers, "X-Tidegate-Signature")
    if not stamp or not said:
        raise BadSignature("generic webhook: X-Tidegate-Timestamp and X-Tidegate-Signature are required")
    if not stamp.isascii() or not stamp.isdigit():
        raise BadSignature("generic webhook: X-Tidegate-Timestamp is not unix seconds")
    expected = "sha256=" + _hmac(secret, stamp.encode() + b"." + body)
    if not hmac.compare_digest(expected, said):
        raise BadSignature("generic webhook: signature does not match")
    signed_at = float(stamp)
    if not math.isfinite(signed_at) or abs(now - signed_at) > window:
        raise StaleWebhook(
            f"generic webhook: signed {now - signed_at:.0f} s from now, outside the {window:.0f} s window"
        )
    guard.check(said, signed_at, now)
    payload = _json(body, "generic")
    items = payload.get("events") if isinstance(payload, dict) and "events" in payload else payload
    items = items if isinstance(items, list) else [items]
    events = []
    try:
        for item in items:
            fields = dict(item)
            ident, when = fields.pop("id"), fields.pop("timestamp")
            name = fields.pop("signal", signal)
            if isinstance(ident, bool) or not isinstance(ident, str | int) or not isinstance(name, str):
                raise ValueError("id must be a string or an integer, signal a string")
            if "severity" in fields:
                fields["severity"] = severity_of(fields["severity"], severity or {})
            events.append(Event(timestamp(when, "timestamp"), name, str(ident), fields))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _parsing("generic", error) from None
    return events


# --- Prometheus Alertmanager ---------------------------------------------------------------


def check_token(headers: Mapping[str, str], token: str) -> None:
    """Alertmanager's http_config bearer token: BadSignature unless it matches."""
    _require_secret(token, "alertmanager")
    said = _header(headers, "Authorization")
    if not hmac.compare_digest(said.encode(), f"Bearer {token}".encode()):
        raise BadSignature("alertmanager webhook: missing or wrong bearer token")


def parse_alertmanager(
    body: bytes,
    *,
    signal: str = ALERTS_SIGNAL,
    severity: Mapping[str, str] | None = None,
) -> list[Event]:
    """Alertmanager's webhook receiver payload (version "4") as one Event per alert.

    id = `<fingerprint>@<startsAt>`: the repeat notifications of one firing (and its resolved
    notice) collapse, while the same alert firing again later (a new startsAt) counts anew.
    fields = the alert's labels, with `severity` mapped, plus `status` and `service` (the
    `service` label, else `job`).
    """
    payload = _json(body, "alertmanager")
    try:
        if str(payload.get("version")) != "4":
            raise ValueError(f"version {payload.get('version')!r}, expected '4'")
        events = []
        for alert in payload["alerts"]:
            labels = {str(k): str(v) for k, v in dict(alert.get("labels") or {}).items()}
            fields: dict[str, object] = dict(labels)
            fields["severity"] = severity_of(labels.get("severity"), severity or {})
            fields["status"] = alert["status"]
            fields["service"] = labels.get("service") or labels.get("job")
            ident = f"{alert['fingerprint']}@{alert['startsAt']}"
            events.append(Event(timestamp(alert["startsAt"], "startsAt"), signal, ident, fields))
        return events
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _parsing("alertmanager", error) from None
