"""The `sentry` source: new issues from Sentry's issues API (reference/apis.md §10.2).

    sources:
      - name: errors
        kind: sentry
        settings:
          token_env: SENTRY_TOKEN              # Authorization: Bearer <auth token>
          organization: acme
          project: "4504"                      # optional: project id (service = project slug)
          environment: production              # optional
          query: "is:unresolved"               # optional issue search
          severity: {fatal: high, error: high} # level → severity (default below)

`GET /api/0/organizations/{org}/issues/?start=…&end=…&sort=new&limit=100`, following the
`Link` header's `rel="next"; results="true"; cursor="…"` until results="false". An issue is an
incident when it was first seen in (start, end]: its time is `firstSeen`, its id the issue id.
"""

from __future__ import annotations

import re
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

BASE_URL = "https://sentry.io"
LEVEL_SEVERITY = {"fatal": "high", "error": "high", "warning": "low", "info": "low", "debug": "low"}
_LINK = re.compile(r'<[^>]*>\s*((?:;\s*[a-z]+="[^"]*"\s*)+)')
_PARAM = re.compile(r'([a-z]+)="([^"]*)"')


class SentrySettings(IncidentSettings):
    organization: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    project: str | None = None
    environment: str | None = None
    query: str = ""
    severity: dict[str, str] = Field(default_factory=lambda: dict(LEVEL_SEVERITY))


def issue_event(raw: Mapping[str, Any], signal: str, severity: Mapping[str, str]) -> Event:
    """One Sentry issue (API or the `issue` of an issue webhook) as an Event."""
    project = raw.get("project")
    fields: dict[str, object] = {
        "severity": severity_of(raw.get("level"), severity),
        "service": project.get("slug") if isinstance(project, Mapping) else None,
        "status": raw.get("status"),
        "level": raw.get("level"),
    }
    return Event(timestamp(raw["firstSeen"], "firstSeen"), signal, str(raw["id"]), fields)


def next_cursor(link: str) -> str | None:
    """The cursor of the `rel="next"` link when it says results="true", else None."""
    for match in _LINK.finditer(link):
        params = dict(_PARAM.findall(match.group(1)))
        if params.get("rel") == "next":
            return params.get("cursor") if params.get("results") == "true" else None
    return None


class SentrySource(IncidentSource):
    kind = "sentry"
    default_base_url = BASE_URL

    def __init__(
        self,
        name: str,
        settings: SentrySettings,
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
            authorization=lambda token: f"Bearer {token}",
            sleep=sleep,
            clock=clock,
        )
        self.settings = settings

    def read(self, start: float, end: float) -> ReadResult:
        path = f"/api/0/organizations/{self.settings.organization}/issues/"
        params = {
            "start": format_timestamp(start),
            "end": format_timestamp(end),
            "sort": "new",
            "limit": str(PAGE_LIMIT),
            "query": self.settings.query,
        }
        if self.settings.project:
            params["project"] = self.settings.project
        if self.settings.environment:
            params["environment"] = self.settings.environment
        what = f"GET {path} start {params['start']} end {params['end']}"
        events: list[Event] = []
        queries = size = 0
        cursor: str | None = None
        while True:
            if queries >= MAX_PAGES:
                raise self.caller.too_many_pages(what)
            response = self.caller.get(path, {**params, **({"cursor": cursor} if cursor else {})})
            queries += 1
            size += len(response.content)
            body = self.caller.json(response, what)
            with self.caller.reading(what):
                if not isinstance(body, list):
                    raise TypeError(f"expected a list of issues, got {type(body).__name__}")
                for raw in body:
                    event = issue_event(raw, self.settings.signal, self.settings.severity)
                    if in_window(event.time, start, end):
                        events.append(event)
            cursor = next_cursor(response.headers.get("link", ""))
            if cursor is None or not body:
                break
        events.sort(key=lambda e: e.time)
        return ReadResult(events=events, queries=queries, bytes_read=size)


def build(name: str, settings: Mapping[str, object], context: SourceContext) -> SentrySource:
    model = validate(SentrySettings, settings, f"source {name!r} (sentry)")
    return SentrySource(name, model, context.client(), context.env)
