"""Sentry's organization issues API as reference/apis.md §10.2 documents it.

    with FakeSentry("sntrys_token", org="acme") as fake:
        fake.add("4001", first_seen=..., level="fatal", project="checkout")
        # GET /api/0/organizations/acme/issues/?start=…&end=…&limit=…&cursor=…
        fake.inject(rate_limited())

Auth `Authorization: Bearer <token>`. Pages are cursor-based: every answer carries a `Link`
header with rel="previous" and rel="next", each saying results="true|false" and a cursor.
An issue is listed when it had events in [start, end] (firstSeen ≤ end and lastSeen ≥ start),
as Sentry does — which is why the source filters on firstSeen itself.
"""

from __future__ import annotations

from typing import Any

from policies.timestamps import format_timestamp, parse_timestamp
from tests.fakes.server import FakeVendor, Reply, Request

MAX_LIMIT = 100


def rate_limited(reset: int = 1_800_000_001) -> Reply:
    return Reply(
        429,
        {"detail": "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1s"},
        {
            "X-Sentry-Rate-Limit-Limit": "40",
            "X-Sentry-Rate-Limit-Remaining": "0",
            "X-Sentry-Rate-Limit-Reset": str(reset),
            "X-Sentry-Rate-Limit-ConcurrentLimit": "25",
            "X-Sentry-Rate-Limit-ConcurrentRemaining": "24",
        },
    )


class FakeSentry(FakeVendor):
    def __init__(self, token: str, org: str = "acme") -> None:
        super().__init__()
        self.token = token
        self.org = org
        self.issues: list[dict[str, Any]] = []
        self.route("GET", r"/api/0/organizations/(?P<org>[^/]+)/issues", self.list_issues)

    def reset(self) -> None:
        with self._lock:
            self.issues.clear()
            self.requests.clear()
            self._faults.clear()

    def add(
        self,
        ident: str,
        *,
        first_seen: float,
        last_seen: float | None = None,
        level: str = "error",
        project: str = "checkout",
        status: str = "unresolved",
    ) -> dict[str, Any]:
        issue = {
            "id": ident,
            "shortId": f"{project.upper()}-{ident}",
            "title": f"Error {ident}",
            "culprit": "app.views",
            "level": level,
            "status": status,
            "substatus": "new",
            "priority": "high" if level in ("fatal", "error") else "low",
            "count": "3",  # a string, as Sentry sends it
            "userCount": 1,
            "firstSeen": format_timestamp(first_seen),
            "lastSeen": format_timestamp(first_seen if last_seen is None else last_seen),
            "project": {"id": "4504", "slug": project, "name": project},
            "isUnhandled": True,
        }
        with self._lock:
            self.issues.append(issue)
        return issue

    def authorize(self, request: Request) -> Reply | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"detail": "Invalid token"})
        return None

    def list_issues(self, request: Request) -> Reply:
        if request.params["org"] != self.org:
            return Reply(404, {"detail": "The requested resource does not exist"})
        one = {k: v[0] for k, v in request.query.items()}
        try:
            start = parse_timestamp(one["start"]) if "start" in one else None
            end = parse_timestamp(one["end"]) if "end" in one else None
            limit = min(int(one.get("limit", "100")), MAX_LIMIT)
            offset = int(one.get("cursor", "0:0:0").split(":")[1])
        except (ValueError, IndexError):
            return Reply(400, {"detail": "Invalid cursor parameter."})
        selected = [
            i
            for i in sorted(self.issues, key=lambda i: parse_timestamp(i["firstSeen"]), reverse=True)
            if (end is None or parse_timestamp(i["firstSeen"]) <= end)
            and (start is None or parse_timestamp(i["lastSeen"]) >= start)
        ]
        page = selected[offset : offset + limit]
        more = offset + limit < len(selected)
        base = f"{self_url(request)}/api/0/organizations/{self.org}/issues/"
        link = (
            f'<{base}?&cursor={limit}:{max(0, offset - limit)}:1>; rel="previous"; '
            f'results="{"true" if offset > 0 else "false"}"; cursor="{limit}:{max(0, offset - limit)}:1", '
            f'<{base}?&cursor={limit}:{offset + limit}:0>; rel="next"; '
            f'results="{"true" if more else "false"}"; cursor="{limit}:{offset + limit}:0"'
        )
        return Reply(200, page, {"Link": link})


def self_url(request: Request) -> str:
    return "http://" + request.headers.get("host", "127.0.0.1")
