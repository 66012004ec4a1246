"""A transition × each target's capabilities → the concrete operations, and what no API can do.

The planner never observes or calls a target: it maps intent onto declared capabilities,
so `tidegate plan` can print exactly what a decision would do without doing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from policies.operations import ManualStep, Op, Operation


class Intent(Enum):
    """What a transition asks of the targets."""

    ADVANCE = "advance"  # start / next forward step: traffic up to the step
    STEP_DOWN = "step_down"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"


@dataclass(frozen=True)
class TargetView:
    """What the planner needs to know of a target: its declared abilities and overrides."""

    name: str
    kind: str
    capabilities: frozenset[Op]
    overrides: Mapping[Intent, Op | None] = field(default_factory=dict)  # rollout.yaml `on:`


@dataclass(frozen=True)
class TargetPlan:
    target: str
    operations: tuple[Operation, ...]
    manual: ManualStep | None = None
    note: str = ""


@dataclass(frozen=True)
class Plan:
    intent: Intent | None  # None: a transition that touches no target (complete, fail, recover)
    traffic: int | None
    targets: tuple[TargetPlan, ...]

    @property
    def operations(self) -> list[Operation]:
        return [op for target in self.targets for op in target.operations]

    @property
    def manual_steps(self) -> list[ManualStep]:
        return [t.manual for t in self.targets if t.manual is not None]


def plan(intent: Intent, traffic: int | None, previous_version: str, targets: Sequence[TargetView]) -> Plan:
    return Plan(intent, traffic, tuple(_for_target(intent, traffic, previous_version, t) for t in targets))


def _for_target(intent: Intent, traffic: int | None, previous: str, target: TargetView) -> TargetPlan:
    if intent in target.overrides:
        op = target.overrides[intent]
        if op is None:
            return TargetPlan(target.name, (), note="on: override: none")
        return TargetPlan(target.name, (_operation(target.name, op, traffic, previous),), note="on: override")
    return _DEFAULTS[intent](target, traffic, previous)


def _operation(name: str, op: Op, traffic: int | None, previous: str) -> Operation:
    if op is Op.SET_TRAFFIC:
        return Operation(name, op, traffic=traffic)
    if op is Op.ROLLBACK:
        return Operation(name, op, version=previous)
    return Operation(name, op)


def _rollback(target: TargetView, traffic: int | None, previous: str) -> TargetPlan:
    caps, name = target.capabilities, target.name
    if Op.ROLLBACK in caps:
        return TargetPlan(name, (Operation(name, Op.ROLLBACK, version=previous),))
    if Op.DISABLE in caps:
        return TargetPlan(
            name, (Operation(name, Op.DISABLE),), note="flag off: everyone gets the previous behaviour"
        )
    manual = ManualStep(name, f"{target.kind} cannot roll back by API: ship {previous} (or a fix) by hand")
    if Op.PAUSE in caps:
        return TargetPlan(
            name, (Operation(name, Op.PAUSE),), manual, "paused; a human must finish the rollback"
        )
    return TargetPlan(name, (), manual, "no rollback, disable or pause by API")


def _step_down(target: TargetView, traffic: int | None, previous: str) -> TargetPlan:
    caps, name = target.capabilities, target.name
    if Op.SET_TRAFFIC in caps:
        return TargetPlan(name, (Operation(name, Op.SET_TRAFFIC, traffic=traffic),))
    if Op.PAUSE in caps:
        return TargetPlan(name, (Operation(name, Op.PAUSE),), note="no traffic steps: paused instead")
    return TargetPlan(name, (), note="no traffic steps or pause: unchanged")


def _advance(target: TargetView, traffic: int | None, previous: str) -> TargetPlan:
    if Op.SET_TRAFFIC in target.capabilities:
        return TargetPlan(target.name, (Operation(target.name, Op.SET_TRAFFIC, traffic=traffic),))
    return TargetPlan(target.name, (), note="no traffic steps: follows the release as deployed")


def _promote(target: TargetView, traffic: int | None, previous: str) -> TargetPlan:
    operations = []
    if Op.SET_TRAFFIC in target.capabilities:
        operations.append(Operation(target.name, Op.SET_TRAFFIC, traffic=100))
    if Op.RESUME in target.capabilities:
        operations.append(Operation(target.name, Op.RESUME))
    return TargetPlan(target.name, tuple(operations), note="" if operations else "nothing to promote by API")


def _pause(target: TargetView, traffic: int | None, previous: str) -> TargetPlan:
    if Op.PAUSE in target.capabilities:
        return TargetPlan(target.name, (Operation(target.name, Op.PAUSE),))
    return TargetPlan(target.name, (), note="cannot pause: holds at its current traffic")


def _resume(target: TargetView, traffic: int | None, previous: str) -> TargetPlan:
    operations = []
    if Op.RESUME in target.capabilities:
        operations.append(Operation(target.name, Op.RESUME))
    if Op.SET_TRAFFIC in target.capabilities:
        operations.append(Operation(target.name, Op.SET_TRAFFIC, traffic=traffic))
    return TargetPlan(target.name, tuple(operations), note="" if operations else "nothing to resume by API")


_DEFAULTS = {
    Intent.ROLLBACK: _rollback,
    Intent.STEP_DOWN: _step_down,
    Intent.ADVANCE: _advance,
    Intent.PROMOTE: _promote,
    Intent.PAUSE: _pause,
    Intent.RESUME: _resume,
}
