"""What the store recorded about one rollout, as report rows.

Transitions become moves and chart markers; the action journal becomes one lane per target
(what it was told, what it answered, where that left it); the audit log gives the manual
acts with actor and reason, the pages, and the chain's verification.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from controller.core.model import Op, RolloutId
from controller.report.model import (
    AuditStatus,
    DecisionRow,
    LaneSegment,
    ManualAct,
    Marker,
    MoveRow,
    PageRow,
    TargetAction,
    TargetLane,
)
from controller.runtime import AUTOMATIC
from controller.spec import RolloutSpec, target_views
from controller.store.base import Intent, RolloutRecord, Store

EVALUATIONS = 100_000  # decision changes read back; a rollout has a handful, a noisy week hundreds
_MOVED = ("applied", "already_done")  # outcomes after which the target is where it was told to be


def moves(store: Store, rollout_id: RolloutId) -> list[MoveRow]:
    return [
        MoveRow(t.at, t.seq, t.trigger, t.before, t.after, t.traffic, t.reason, t.actor)
        for t in store.transitions(rollout_id)
    ]


def decisions(store: Store, rollout_id: RolloutId) -> list[DecisionRow]:
    """The recorded decision changes; their `reasons` (values) come from the re-evaluation."""
    rows = []
    for evaluation in store.evaluations(rollout_id, limit=EVALUATIONS):
        payload = json.loads(evaluation.payload_json)
        rows.append(
            DecisionRow(
                evaluation.at,
                evaluation.decision,
                tuple(payload.get("policies", ())),
                (),
                tuple(payload.get("breaching", ())),
                tuple(payload.get("no_data", ())),
            )
        )
    return rows


def last_activity(store: Store, record: RolloutRecord) -> float:
    """The time of the rollout's last record: audit row, decision change or source read."""
    times = [record.created_at]
    times += [entry.at for entry in store.audit_log(record.id)]
    times += [row.at for row in store.evaluations(record.id, limit=1)]
    for health in store.source_health(record.id):
        times += [t for t in (health.last_ok_at, health.last_error_at) if t is not None]
    return max(times)


def markers(rows: Sequence[MoveRow]) -> list[Marker]:
    return [_marker(row) for row in rows]


def _marker(row: MoveRow) -> Marker:
    if row.actor != AUTOMATIC:
        return Marker(row.at, f"{row.trigger} by {row.actor}", "manual")
    labels = {
        "start": f"start {row.traffic}%",
        "advance": f"→ {row.traffic}%",
        "step_down": f"step down → {row.traffic}%",
    }
    return Marker(row.at, labels.get(row.trigger, row.after.replace("_", " ")), row.trigger)


def lanes(
    store: Store, rollout_id: RolloutId, spec: RolloutSpec, start: float, end: float
) -> list[TargetLane]:
    journal = store.intents(rollout_id)
    result = []
    for view in target_views(spec):
        mine = sorted((i for i in journal if i.operation.target == view.name), key=lambda i: i.created_at)
        actions = tuple(
            TargetAction(
                i.created_at,
                i.seq,
                i.operation.describe(),
                i.outcome or "unfinished",
                i.detail,
                i.finished_at,
            )
            for i in mine
        )
        result.append(TargetLane(view.name, view.kind, actions, tuple(_segments(mine, start, end))))
    return result


def _segments(journal: Sequence[Intent], start: float, end: float) -> list[LaneSegment]:
    """Where the target stood over time. Only an operation the target carried out (applied,
    or already done) moves it; a refused or failed one leaves it where it was."""
    segments: list[LaneSegment] = []
    label, kind, since, traffic = "as deployed", "idle", start, None
    for intent in journal:
        if intent.outcome not in _MOVED:
            continue
        operation = intent.operation
        traffic = operation.traffic if operation.op is Op.SET_TRAFFIC else traffic
        stand = _stand(operation.op, traffic, operation.version)
        if stand == (label, kind):
            continue
        if intent.created_at > since:
            segments.append(LaneSegment(since, intent.created_at, label, kind))
        (label, kind), since = stand, intent.created_at
    segments.append(LaneSegment(since, max(end, since), label, kind))
    return segments


def _stand(op: Op, traffic: int | None, version: str | None) -> tuple[str, str]:
    at = f" at {traffic}%" if traffic is not None else ""
    return {
        Op.SET_TRAFFIC: (f"{traffic}%", "traffic"),
        Op.PAUSE: (f"paused{at}", "paused"),
        Op.RESUME: (f"{traffic}%" if traffic is not None else "resumed", "traffic"),
        Op.ROLLBACK: (f"rolled back to {version}", "rolled_back"),
        Op.DISABLE: ("off", "off"),
        Op.ENABLE: ("on", "on"),
    }[op]


def manual_and_pages(store: Store, rollout_id: RolloutId) -> tuple[list[ManualAct], list[PageRow]]:
    acts, pages = [], []
    for entry in store.audit_log(rollout_id):
        payload = json.loads(entry.payload_json)
        if entry.kind == "manual":
            result = f"{payload.get('from')} → {payload.get('to')} at {payload.get('traffic')}%"
            acts.append(
                ManualAct(
                    entry.at,
                    entry.actor,
                    str(payload.get("trigger", "")),
                    str(payload.get("reason", "")),
                    result,
                )
            )
        elif entry.kind == "page":
            pages.append(PageRow(entry.at, str(payload.get("target", "")), str(payload.get("reason", ""))))
    return acts, pages


def audit(store: Store, rollout_id: RolloutId) -> AuditStatus:
    report = store.verify_audit()
    mine = len(store.audit_log(rollout_id))
    return AuditStatus(report.ok, report.rows, mine, report.first_bad, report.reason)
