"""The `pagerduty` source: incidents from PagerDuty's REST API v2 (reference/apis.md §10.1).

    sources:
      - name: pd
        kind: pagerduty
        settings:
          token_env: PAGERDUTY_TOKEN          # Authorization: Token token=<key>
          service_ids: [PXXXXXX]               # optional: service_ids[]
          urgency_severity: {high: high, low: low}   # the default
          severity: {P1: high, P2: high}       # priority summary → severity; wins when mapped

`GET /incidents?since=…&until=…&limit=100&offset=…` pages until `more` is false. PagerDuty's
since/until select on created_at, `until` exclusive, so the request asks for one second past
`end` and the read keeps exactly (start, end].
"""

from __future__ import annotations

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
from policies.timestamps import format_timestamp

if TYPE_CHECKING:
    from adapters.sources.registry import SourceContext

BASE_URL = "https://api.pagerduty.com"
ACCEPT = "application/vnd.pagerduty+json;version=2"
URGENCY_SEVERITY = {"high": "high", "low": "low"}


class PagerDutySettings(IncidentSettings):
    urgency_severity: dict[str, str] = Field(default_factory=lambda: dict(URGENCY_SEVERITY))
    service_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # statuses[]: triggered, acknowledged, resolved (default: all)


def incident_event(raw: Mapping[str, Any], signal: str, settings: PagerDutySettings) -> Event:
    """One PagerDuty incident (REST or the `data` of a v3 webhook) as an Event."""
    priority = raw.get("priority")
    summary = priority.get("summary") if isinstance(priority, Mapping) else None
    severity = severity_of(summary, settings.severity) if summary in settings.severity else None
    if severity is None:
        severity = severity_of(raw.get("urgency"), settings.urgency_severity)
    service = raw.get("service")
    fields: dict[str, object] = {
        "severity": severity,
        "service": service.get("summary") or service.get("id") if isinstance(service, Mapping) else None,
        "status": raw.get("status"),
        "urgency": raw.get("urgency"),
        "priority": summary,
    }
    return Event(timestamp(raw["created_at"], "created_at"), signal, str(raw["id"]), fields)


class PagerDutySource(IncidentSource):
    kind = "pagerduty"
    default_base_url = BASE_URL

    def __init__(
        self,
        name: str,
        settings: PagerDutySettings,
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
            authorization=lambda token: f"Token token={token}",
            headers={"Accept": ACCEPT},
            sleep=sleep,
            clock=clock,
        )
        self.settings = settings

    def read(self, start: float, end: float) -> ReadResult:
        base: list[tuple[str, str]] = [
            ("since", format_timestamp(start)),
            ("until", format_timestamp(end + 1)),  # `until` is exclusive; the read keeps (start, end]
            ("limit", str(PAGE_LIMIT)),
            ("sort_by", "created_at"),
        ]
        base.extend(("service_ids[]", service) for service in self.settings.service_ids)
        base.extend(("statuses[]", status) for status in self.settings.statuses)
        events: list[Event] = []
        queries = size = offset = 0
        what = f"GET /incidents since {base[0][1]} until {base[1][1]}"
        while True:
            if queries >= MAX_PAGES:
                raise self.caller.too_many_pages(what)
            response = self.caller.get("/incidents", [*base, ("offset", str(offset))])
            queries += 1
            size += len(response.content)
            body = self.caller.json(response, what)
            with self.caller.reading(what):
                page = body["incidents"]
                for raw in page:
                    event = incident_event(raw, self.settings.signal, self.settings)
                    if in_window(event.time, start, end):
                        events.append(event)
                more = bool(body.get("more")) and len(page) > 0
            if not more:
                break
            offset += len(page)
        events.sort(key=lambda e: e.time)
        return ReadResult(events=events, queries=queries, bytes_read=size)


def build(name: str, settings: Mapping[str, object], context: SourceContext) -> PagerDutySource:
    model = validate(PagerDutySettings, settings, f"source {name!r} (pagerduty)")
    return PagerDutySource(name, model, context.client(), context.env)
