"""JSON shapes of the store's records, shared by the API routes."""

from __future__ import annotations

import json
from typing import Any

from controller.runtime import LiveRollout
from controller.store.base import EvaluationRow, Lease, ManualRequest, RolloutRecord
from policies.rules.base import Status
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


def health(live: LiveRollout | None, recorded: EvaluationRow | None) -> dict[str, Any]:
    """The rules at a glance: live from this replica's evaluator when it holds the rollout
    (pending rules too); otherwise the newest recorded decision change, which any replica
    reads from the store (it knows no pending rules: `pending` is null)."""
    if live is not None and live.last_verdict is not None:
        states = live.last_states

        def named(status: Status) -> list[str]:
            return [state.policy.id for state in states if state.status is status]

        return {
            "from": "live",
            "decision": live.last_verdict.decision.value,
            "breaching": named(Status.BREACH),
            "pending": named(Status.PENDING),
            "no_data": named(Status.NO_DATA),
        }
    if recorded is None:
        return {"from": None, "decision": None, "breaching": [], "pending": None, "no_data": []}
    payload = json.loads(recorded.payload_json)
    return {
        "from": "recorded",
        "decision": recorded.decision,
        "breaching": payload.get("breaching", []),
        "pending": None,
        "no_data": payload.get("no_data", []),
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
