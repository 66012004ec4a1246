"""controller.yaml: how one `tidegate serve` replica runs. Validated with FILE:LINE:COL errors.

    store: postgresql://tidegate@db:5432/tidegate   # else $TIDEGATE_DATABASE_URL, else SQLite
    listen: 0.0.0.0:8080
    rollouts: rollouts/          # every *.yaml here is registered and watched
    replica: tidegate-0          # default: hostname-pid; the lease holder's name
    lease: {ttl: 15s, renew: 5s}
    poll: 250ms                  # how often the store is asked for events, requests, leases
    tokens: tokens.yaml          # hashed bearer tokens; also $TIDEGATE_TOKENS
    chart_ticks: 120             # rule readings per rollout kept for the dashboard's charts
    webhooks:
      - {name: pagerduty, vendor: pagerduty, secret_env: PAGERDUTY_WEBHOOK_SECRET}
      - {name: alerts, vendor: alertmanager, secret_env: ALERTMANAGER_TOKEN}
    notifications:
      - {kind: slack, name: ops, webhook_url_env: SLACK_WEBHOOK_URL}

Secrets are never in this file: each is the name of an environment variable.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.notify import Notifications
from policies.loader import read_source, validate_located
from policies.schema import Duration
from policies.yamlmap import load_located

VENDORS = ("pagerduty", "sentry", "opsgenie", "generic", "alertmanager")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LeaseConfig(_Strict):
    ttl: Duration = Field(default=15.0, gt=0)
    renew: Duration = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _renew_well_before_expiry(self) -> LeaseConfig:
        if self.renew * 2 > self.ttl:
            raise ValueError(f"renew ({self.renew:g}s) must be at most half of ttl ({self.ttl:g}s)")
        return self


class WebhookConfig(_Strict):
    """One incident webhook endpoint: POST /api/v1/webhooks/{name}."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    vendor: Literal["pagerduty", "sentry", "opsgenie", "generic", "alertmanager"]
    secret_env: str = Field(min_length=1)  # signing secret / shared token / bearer token
    signal: str | None = None  # the event stream's name; default: incidents (alerts for alertmanager)
    severity: dict[str, str] = Field(default_factory=dict)  # vendor value → severity


class ServiceConfig(_Strict):
    store: str | None = None
    listen: str = "127.0.0.1:8080"
    rollouts: str | None = None
    replica: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", min_length=1)
    lease: LeaseConfig = LeaseConfig()
    poll: Duration = Field(default=0.25, gt=0)
    rescan: Duration = Field(default=10.0, gt=0)  # how often the rollouts folder is re-read
    tokens: str | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    notifications: Notifications = ()  # Slack / webhook notifiers (docs/notifications.md)
    # rule readings kept in memory per rollout for the dashboard's charts (0: keep none)
    chart_ticks: int = Field(default=120, ge=0, le=10_000)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected HOST:PORT like 127.0.0.1:8080, got {value!r}")
        return value

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: tuple[WebhookConfig, ...]) -> tuple[WebhookConfig, ...]:
        names = [w.name for w in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate webhook name(s): {', '.join(duplicates)}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def load_config(path: str) -> ServiceConfig:
    """Read controller.yaml; relative paths (rollouts, tokens) are relative to its folder."""
    text, name = read_source(path)
    config = validate_located(load_located(text, name), ServiceConfig, None)
    base = Path(path).parent
    return config.model_copy(
        update={
            "rollouts": None if config.rollouts is None else str(base / config.rollouts),
            "tokens": None if config.tokens is None else str(base / config.tokens),
        }
    )
