"""Rule states at one tick → one decision, with the policies that caused it.

Severity ladder (DESIGN.md): notify < hold < step_down < rollback; nothing breaching (and,
in a rollout, the bake done) means advance. A rule scoped to named targets is a
mitigation: it acts on those targets and never raises the rollout-wide decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from policies.rules.base import RuleState, Status
from policies.schema import Action, OnNoData


class Decision(Enum):
    ADVANCE = "advance"
    NOTIFY = "notify"
    HOLD = "hold"
    STEP_DOWN = "step_down"
    ROLLBACK = "rollback"

    @property
    def severity(self) -> int:
        return 0 if self is Decision.ADVANCE else Action(self.value).severity

    @property
    def lowers_traffic(self) -> bool:
        return self in (Decision.STEP_DOWN, Decision.ROLLBACK)


@dataclass(frozen=True)
class Mitigation:
    policy: str
    action: Action
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    policies: tuple[str, ...]  # the rules that raised the decision to its level
    mitigations: tuple[Mitigation, ...] = ()


def effective_action(state: RuleState) -> Action | None:
    """What a rule asks for at this tick, `on_no_data` applied; None when it asks nothing."""
    if state.status is Status.BREACH:
        return state.policy.action
    if state.status is Status.NO_DATA:
        mode = state.policy.on_no_data
        if mode is OnNoData.BREACH:
            return state.policy.action
        if mode is OnNoData.HOLD:
            return Action.HOLD
    return None


def decide(states: Iterable[RuleState]) -> Verdict:
    level, causes, mitigations = Decision.ADVANCE, [], []
    for state in states:
        action = effective_action(state)
        if action is None:
            continue
        if state.policy.targets:
            mitigations.append(Mitigation(state.policy.id, action, state.policy.targets))
            continue
        decision = Decision(action.value)
        if decision.severity > level.severity:
            level, causes = decision, [state.policy.id]
        elif decision is level:
            causes.append(state.policy.id)
    return Verdict(level, tuple(causes), tuple(mitigations))
