"""JSON shapes of the store's records, shared by the API routes."""

from __future__ import annotations

import json
from typing import Any

from controller.store.base import EvaluationRow, Lease, ManualRequest, RolloutRecord
from policies.timestamps import format_timestamp

iso = format_timestamp


def summary(record: RolloutRecord, lease: Lease | None, now: float) -> dict[str, Any]:
    status = record.status
    return {
        "id": record.id,
        "name": record.name,
        "state": status.state.value,
        "traffic": status.traffic,
        "step": status.step,
        "since": iso(status.since),
        "seq": status.seq,
        "reason": status.reason,
        "created_at": iso(record.created_at),
        "holder": None if lease is None or lease.expires_at < now or status.state.terminal else lease.holder,
    }


def evaluation_json(row: EvaluationRow) -> dict[str, Any]:
    return {"at": iso(row.at), "decision": row.decision, **json.loads(row.payload_json)}


def request_json(request: ManualRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "rollout": request.rollout_id,
        "act": request.trigger,
        "actor": request.actor,
        "reason": request.reason,
        "requested_at": iso(request.requested_at),
        "outcome": request.outcome or "pending",
        "detail": request.detail,
        "url": f"/api/v1/requests/{request.id}",
    }
