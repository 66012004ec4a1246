"""What the runtime's decision and transition events say as data (`Event.details`).

The timeline prints an event's text; notifiers and the API need the facts behind it — which
policies fired with which values, where the rollout moved, how long it now bakes, which
operations were planned under which idempotency keys — without parsing that text back.
Pure functions of the runtime's own values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from controller.core.decide import Verdict
from controller.core.machine import Move, Shape
from controller.core.model import ManualStep, RolloutStatus, State
from controller.store.base import JsonValue, PlannedIntent
from policies.explain import condition
from policies.rules.base import RuleState, Status


def decision_details(
    status: RolloutStatus, states: Sequence[RuleState], verdict: Verdict
) -> dict[str, JsonValue]:
    """The decision with its causes, each with the value and the condition it was judged on,
    and where the rollout stood when it was made."""
    shown = [s for s in states if s.policy.id in verdict.policies or s.status is Status.BREACH]
    return {
        "decision": verdict.decision.value,
        "policies": list(verdict.policies),
        "breaching": [s.policy.id for s in states if s.status is Status.BREACH],
        "no_data": [s.policy.id for s in states if s.status is Status.NO_DATA],
        "values": {s.policy.id: _finite(s.value) for s in shown},
        "conditions": {s.policy.id: condition(s.policy) for s in shown},
        "since": {s.policy.id: s.since for s in shown},  # when each streak began: its identity
        "state": status.state.value,
        "traffic": status.traffic,
        "seq": status.seq,
    }


def transition_details(
    shape: Shape,
    move: Move,
    intents: Sequence[PlannedIntent],
    manual_steps: Sequence[ManualStep],
    actor: str,
) -> dict[str, JsonValue]:
    """The move, who made it and why, the operations journaled for it (their keys match the
    action events that follow) and `bake`: how long the rollout now watches before moving
    again — when the move is verified; None when it does not bake (rolling back, final)."""
    after = move.after
    ladder = {State.PROGRESSING: shape.steps, State.STEPPING_DOWN: shape.down_steps}.get(after.state, ())
    return {
        "seq": after.seq,
        "trigger": move.trigger,
        "from": move.before.state.value,
        "to": after.state.value,
        "traffic": after.traffic,
        "previous_traffic": move.before.traffic,
        "actor": actor,
        "reason": after.reason,
        "bake": ladder[after.step].bake if 0 <= after.step < len(ladder) else None,
        "operations": [
            {"target": i.operation.target, "operation": i.operation.describe(), "key": i.key} for i in intents
        ],
        "manual_steps": [{"target": s.target, "reason": s.reason} for s in manual_steps],
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None  # JSON has no NaN
