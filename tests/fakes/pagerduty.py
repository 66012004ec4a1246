"""PagerDuty REST API v2 incidents as reference/apis.md §10.1 documents them.

    with FakePagerDuty("pd-key") as fake:
        fake.add("PABC123", created_at=..., urgency="high", priority="P1", service="checkout")
        # GET /incidents?since=…&until=…&limit=…&offset=… → {"incidents", "limit", "offset", "more"}
        fake.inject(rate_limited(reset=2))

Auth is `Authorization: Token token=<key>` (a Bearer header is an OAuth token: refused here,
since the fake knows no OAuth tokens); errors use PagerDuty's `{"error": {...}}` envelope.
"""

from __future__ import annotations

from typing import Any

from policies.timestamps import format_timestamp, parse_timestamp
from tests.fakes.server import FakeVendor, Reply, Request

MAX_LIMIT = 100


def error(status: int, message: str, code: int) -> Reply:
    return Reply(status, {"error": {"message": message, "code": code, "errors": [message]}})


def rate_limited(reset: int = 1) -> Reply:
    reply = error(429, "Rate Limit Exceeded", 2020)
    reply.headers = {"ratelimit-limit": "960", "ratelimit-remaining": "0", "ratelimit-reset": str(reset)}
    return reply


class FakePagerDuty(FakeVendor):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.incidents: list[dict[str, Any]] = []
        self.route("GET", r"/incidents", self.list_incidents)

    def reset(self) -> None:
        with self._lock:
            self.incidents.clear()
            self.requests.clear()
            self._faults.clear()

    def add(
        self,
        ident: str,
        *,
        created_at: float,
        urgency: str = "high",
        priority: str | None = None,
        service: str = "checkout",
        status: str = "triggered",
    ) -> dict[str, Any]:
        incident = {
            "id": ident,
            "type": "incident",
            "incident_number": len(self.incidents) + 1,
            "title": f"incident {ident}",
            "summary": f"[#{len(self.incidents) + 1}] incident {ident}",
            "status": status,
            "urgency": urgency,
            "priority": None if priority is None else {"id": f"PR{priority}", "summary": priority},
            "created_at": format_timestamp(created_at),
            "updated_at": format_timestamp(created_at),
            "service": {"id": f"PS{service.upper()}", "summary": service, "type": "service_reference"},
            "escalation_policy": {"id": "PEP1", "summary": "default"},
            "teams": [],
            "html_url": f"https://acme.pagerduty.com/incidents/{ident}",
        }
        with self._lock:
            self.incidents.append(incident)
        return incident

    def authorize(self, request: Request) -> Reply | None:
        said = request.headers.get("authorization", "")
        if not said.startswith("Token token="):
            return error(401, "Unauthorized", 2006)
        if said != f"Token token={self.token}":
            return error(401, "Unauthorized", 2006)
        return None

    def list_incidents(self, request: Request) -> Reply:
        one = {k: v[0] for k, v in request.query.items()}
        try:
            since = parse_timestamp(one["since"]) if "since" in one else None
            until = parse_timestamp(one["until"]) if "until" in one else None
            limit = min(int(one.get("limit", "25")), MAX_LIMIT)
            offset = int(one.get("offset", "0"))
        except ValueError:
            return error(400, "Invalid Input Provided", 2001)
        statuses = set(request.query.get("statuses[]", []))
        services = set(request.query.get("service_ids[]", []))
        selected = [
            i
            for i in sorted(self.incidents, key=lambda i: parse_timestamp(i["created_at"]))
            if (since is None or parse_timestamp(i["created_at"]) >= since)
            and (until is None or parse_timestamp(i["created_at"]) < until)
            and (not statuses or i["status"] in statuses)
            and (not services or i["service"]["id"] in services)
        ]
        page = selected[offset : offset + limit]
        more = offset + limit < len(selected)
        return Reply(200, {"incidents": page, "limit": limit, "offset": offset, "more": more, "total": None})
