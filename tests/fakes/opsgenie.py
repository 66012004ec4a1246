"""Opsgenie's Alert API v2 list endpoint as reference/apis.md §10.3 documents it.

    with FakeOpsgenie("genie-key") as fake:
        fake.add("70413a06-…", created_at=..., priority="P1", source="checkout")
        # GET /v2/alerts?query=createdAt>… AND createdAt<=…&limit=…&offset=…&sort=createdAt&order=asc
        fake.inject(rate_limited())

Auth `Authorization: GenieKey <key>`. The list wraps in {"data", "paging", "took",
"requestId"}; `paging.next` is present while more alerts follow. Of the search syntax the fake
understands the createdAt comparisons (epoch ms) and `status:open|closed`; it keeps every
query it saw in `queries`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from policies.timestamps import format_timestamp, parse_timestamp
from tests.fakes.server import FakeVendor, Reply, Request

MAX_LIMIT = 100
_CREATED = re.compile(r"createdAt\s*(>=|<=|>|<)\s*(\d+)")
_STATUS = re.compile(r"status\s*:\s*(open|closed)")


def error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message, "took": 0.001, "requestId": str(uuid.uuid4())})


def rate_limited() -> Reply:
    reply = error(429, "You are making too many requests! To avoid errors, we recommend you limit requests.")
    reply.headers = {
        "X-RateLimit-State": "THROTTLED",
        "X-RateLimit-Reason": "INTEGRATION",
        "X-RateLimit-Period-In-Sec": "60",
    }
    return reply


class FakeOpsgenie(FakeVendor):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.alerts: list[dict[str, Any]] = []
        self.queries: list[str] = []
        self.route("GET", r"/v2/alerts", self.list_alerts)

    def reset(self) -> None:
        with self._lock:
            self.alerts.clear()
            self.queries.clear()
            self.requests.clear()
            self._faults.clear()

    def add(
        self,
        ident: str,
        *,
        created_at: float,
        priority: str = "P3",
        source: str = "checkout",
        status: str = "open",
    ) -> dict[str, Any]:
        alert = {
            "id": ident,
            "tinyId": str(len(self.alerts) + 1),
            "alias": f"alias-{ident}",
            "message": f"alert {ident}",
            "status": status,
            "acknowledged": False,
            "isSeen": False,
            "snoozed": False,
            "priority": priority,
            "tags": [],
            "count": 1,
            "createdAt": format_timestamp(created_at),
            "updatedAt": format_timestamp(created_at),
            "lastOccurredAt": format_timestamp(created_at),
            "source": source,
            "owner": "",
            "integration": {"id": "i-1", "name": "Default API", "type": "API"},
        }
        with self._lock:
            self.alerts.append(alert)
        return alert

    def authorize(self, request: Request) -> Reply | None:
        if request.headers.get("authorization") != f"GenieKey {self.key}":
            return error(401, "Could not authenticate")
        return None

    def list_alerts(self, request: Request) -> Reply:
        one = {k: v[0] for k, v in request.query.items()}
        query = one.get("query", "")
        self.queries.append(query)
        try:
            limit = min(int(one.get("limit", "20")), MAX_LIMIT)
            offset = int(one.get("offset", "0"))
        except ValueError:
            return error(422, "Invalid offset or limit")
        tests = [(op, int(ms) / 1000.0) for op, ms in _CREATED.findall(query)]
        statuses = set(_STATUS.findall(query))

        def wanted(alert: dict[str, Any]) -> bool:
            created = parse_timestamp(alert["createdAt"])
            compare = {">": created.__gt__, ">=": created.__ge__, "<": created.__lt__, "<=": created.__le__}
            if not all(compare[op](bound) for op, bound in tests):
                return False
            return not statuses or alert["status"] in statuses

        reverse = one.get("order", "desc") == "desc"
        selected = sorted(
            (a for a in self.alerts if wanted(a)),
            key=lambda a: parse_timestamp(a["createdAt"]),
            reverse=reverse,
        )
        page = selected[offset : offset + limit]
        paging: dict[str, str] = {"first": f"/v2/alerts?offset=0&limit={limit}"}
        if offset + limit < len(selected):
            paging["next"] = f"/v2/alerts?offset={offset + limit}&limit={limit}"
        return Reply(200, {"data": page, "paging": paging, "took": 0.004, "requestId": str(uuid.uuid4())})
