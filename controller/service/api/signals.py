"""/api/v1/rollouts/{id}/signals: each rule's recent readings, for the dashboard's charts.

Only the replica holding a rollout evaluates it, so only that replica has the readings
(kept in memory, `policies.trace`); the others answer `available: false` and name the
holder, so a page behind a load balancer can say where to look instead of showing nothing.
A rollout that finished here stays readable for a while (the last FINISHED_KEPT).

Times in the series are unix seconds (what a chart takes); values are what each rule
compares with its `threshold` (a drift's relative change signed by its direction).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException

from controller.core.model import RolloutId
from controller.runtime import LiveRollout
from controller.service.api.auth import READ_ERRORS, TheService, Viewer, role
from controller.service.api.views import iso, summary
from policies.explain import condition
from policies.rules.base import RuleState
from policies.trace import RuleHistory, Trace, baseline_window, bound, bound_label, judged_value

router = APIRouter(prefix="/api/v1", tags=["rollouts"], responses=READ_ERRORS)


@router.get("/rollouts/{rollout_id}/signals", openapi_extra=role("viewer"))
async def signals(
    rollout_id: str, service: TheService, who: Viewer, points: int | None = None
) -> dict[str, Any]:
    """Per rule, the newest `points` readings (all kept: controller.yaml `chart_ticks`) as
    (time, value), with its threshold, status,
    pending and breach spans and, for drift rules, the baseline window — from the replica
    holding the rollout. Any other replica answers `{"available": false, "holder": ...}`."""
    store = service.reader
    record = await asyncio.to_thread(store.get_rollout, RolloutId(rollout_id))
    if record is None:
        raise HTTPException(404, f"unknown rollout {rollout_id}")
    worker = service.worker_of(record.id)
    rollout = worker.rollout if worker is not None else None
    if worker is None or rollout is None:
        lease = next(iter(await asyncio.to_thread(store.leases, record.id)), None)
        holder = summary(record, lease, service.clock())["holder"]
        reason = "another replica holds this rollout" if holder else "no replica holds this rollout now"
        return {"available": False, "holder": holder, "replica": service.config.replica, "reason": reason}
    if rollout.trace is None:
        reason = "this replica keeps no readings (controller.yaml chart_ticks: 0)"
        here = service.config.replica
        return {"available": False, "holder": here, "replica": here, "reason": reason}
    return {
        "available": True,
        "holder": service.config.replica,
        "finished": worker.finished,
        "start": rollout.evaluator.start,
        "interval": worker.interval,
        "rules": rules_json(rollout, rollout.trace, points),
    }


def rules_json(rollout: LiveRollout, trace: Trace, points: int | None) -> list[dict[str, Any]]:
    states = {state.policy.id: state for state in rollout.last_states}
    start = rollout.evaluator.start
    return [
        _rule(trace.history(policy.id), states.get(policy.id), start, points) for policy in trace.policies
    ]


def _rule(history: RuleHistory, state: RuleState | None, start: float, points: int | None) -> dict[str, Any]:
    policy = history.policy
    kept = history.points if points is None else history.points[-max(1, points) :]
    first = kept[0][0] if kept else None
    window = baseline_window(policy, start)
    return {
        "policy": policy.id,
        "kind": policy.kind,
        "signal": policy.signal,
        "action": policy.action.value,
        "condition": condition(policy),
        "status": None if state is None else state.status.value,
        "value": None if state is None else judged_value(policy, state.value),
        "since": None if state is None or state.since is None else iso(state.since),
        "threshold": bound(policy),
        "threshold_label": bound_label(policy),
        "series": [{"t": t, "v": None if v is None else float(f"{v:.6g}")} for t, v in kept],
        "spans": [
            {"from": max(s.start, first), "to": s.end, "kind": s.status.value}
            for s in history.spans
            if first is not None and s.end >= first
        ],
        "baseline": None if window is None else {"from": window[0], "to": window[1]},
    }
