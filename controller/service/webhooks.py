"""Incident webhooks for `tidegate serve`: which vendor scheme verifies an endpoint's
deliveries (adapters/sources/webhooks.py), and which rollouts read an endpoint."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.sources import opsgenie, pagerduty, sentry, webhooks
from adapters.sources.incidents import DEFAULT_SIGNAL
from controller.service.config import WebhookConfig
from controller.spec import LiveSource
from policies.errors import TidegateError
from policies.series import Event


class UnknownEndpoint(TidegateError):
    pass


def reads_endpoint(source: object, endpoint: str) -> bool:
    return (
        isinstance(source, LiveSource)
        and source.kind == "pushed"
        and source.settings.get("endpoint") == endpoint
    )


def verify(
    config: WebhookConfig,
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: float,
    guard: webhooks.ReplayGuard,
) -> list[Event]:
    """The delivery's events by the vendor's scheme; a WebhookError when it is not genuine."""
    signal = config.signal or DEFAULT_SIGNAL
    if config.vendor == "pagerduty":
        settings = pagerduty.PagerDutySettings(
            token_env="-", signal=signal, **({"severity": config.severity} if config.severity else {})
        )
        return webhooks.verify_pagerduty(headers, body, secret, settings=settings)
    if config.vendor == "sentry":
        severity = config.severity or sentry.LEVEL_SEVERITY
        return webhooks.verify_sentry(headers, body, secret, signal=signal, severity=severity)
    if config.vendor == "opsgenie":
        severity = config.severity or opsgenie.PRIORITY_SEVERITY
        return webhooks.verify_opsgenie(headers, body, secret, signal=signal, severity=severity)
    if config.vendor == "generic":
        return webhooks.verify_generic(
            headers, body, secret, now, guard, signal=signal, severity=config.severity
        )
    webhooks.check_token(headers, secret)
    return webhooks.parse_alertmanager(
        body, signal=config.signal or webhooks.ALERTS_SIGNAL, severity=config.severity
    )
