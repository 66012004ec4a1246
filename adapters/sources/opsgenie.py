"""The `opsgenie` source: alerts from Opsgenie's Alert API v2 (reference/apis.md §10.3).

    sources:
      - name: pages
        kind: opsgenie
        settings:
          token_env: OPSGENIE_KEY              # Authorization: GenieKey <api integration key>
          base_url: https://api.eu.opsgenie.com   # optional (EU instance)
          query: "tag:checkout"                # optional, ANDed with the time window
          severity: {P1: high, P2: high}       # priority → severity (default below)

`GET /v2/alerts?query=createdAt>… AND createdAt<=…&sort=createdAt&order=asc&limit=100&offset=…`,
paging until `paging.next` is absent. time = createdAt, id = the alert id, service = the
alert's `source`, status = open | closed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import Field

from adapters.sources.base import ReadResult
from adapters.sources.incidents import (
    MAX_PAGES,
    PAGE_LIMIT,
    IncidentSettings,
    IncidentSource,
    in_window,
    severity_of,
    timestamp,
    validate,
)
from policies.series import Event

if TYPE_CHECKING:
    from adapters.sources.registry import SourceContext

BASE_URL = "https://api.opsgenie.com"
PRIORITY_SEVERITY = {"P1": "high", "P2": "high", "P3": "medium", "P4": "low", "P5": "low"}


class OpsgenieSettings(IncidentSettings):
    query: str = ""
    severity: dict[str, str] = Field(default_factory=lambda: dict(PRIORITY_SEVERITY))


def alert_event(raw: Mapping[str, Any], signal: str, severity: Mapping[str, str]) -> Event:
    """One Opsgenie alert (API, or a webhook's `alert` with `alertId`) as an Event."""
    ident = raw.get("id") or raw["alertId"]
    fields: dict[str, object] = {
        "severity": severity_of(raw.get("priority"), severity),
        "service": raw.get("source"),
        "status": raw.get("status"),
        "priority": raw.get("priority"),
    }
    return Event(timestamp(raw["createdAt"], "createdAt"), signal, str(ident), fields)


class OpsgenieSource(IncidentSource):
    kind = "opsgenie"
    default_base_url = BASE_URL

    def __init__(
        self,
        name: str,
        settings: OpsgenieSettings,
        client: httpx.Client,
        env: Mapping[str, str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            name,
            settings,
            client,
            env,
            authorization=lambda token: f"GenieKey {token}",
            sleep=sleep,
            clock=clock,
        )
        self.settings = settings

    def read(self, start: float, end: float) -> ReadResult:
        # Opsgenie's search compares createdAt in epoch milliseconds.
        window = f"createdAt>{math.floor(start * 1000)} AND createdAt<={math.floor(end * 1000)}"
        query = f"{window} AND ({self.settings.query})" if self.settings.query else window
        params = {"query": query, "sort": "createdAt", "order": "asc", "limit": str(PAGE_LIMIT)}
        what = f"GET /v2/alerts query {query!r}"
        events: list[Event] = []
        queries = size = offset = 0
        while True:
            if queries >= MAX_PAGES:
                raise self.caller.too_many_pages(what)
            response = self.caller.get("/v2/alerts", {**params, "offset": str(offset)})
            queries += 1
            size += len(response.content)
            body = self.caller.json(response, what)
            with self.caller.reading(what):
                page = body["data"]
                for raw in page:
                    event = alert_event(raw, self.settings.signal, self.settings.severity)
                    if in_window(event.time, start, end):
                        events.append(event)
                paging = body.get("paging") or {}
                more = bool(paging.get("next")) and len(page) > 0
            if not more:
                break
            offset += len(page)
        events.sort(key=lambda e: e.time)
        return ReadResult(events=events, queries=queries, bytes_read=size)


def build(name: str, settings: Mapping[str, object], context: SourceContext) -> OpsgenieSource:
    model = validate(OpsgenieSettings, settings, f"source {name!r} (opsgenie)")
    return OpsgenieSource(name, model, context.client(), context.env)
