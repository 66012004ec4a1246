"""The rollout's vocabulary: states, operations, steps and status, as closed types.

Plain frozen data; no I/O. `Op` and `State` are Enums so mypy checks every use, never strings
compared across the code base (STYLE.md §3, §9).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import NewType

from policies.operations import ManualStep, Op, Operation

__all__ = ["ManualStep", "Op", "Operation", "RolloutId", "RolloutStatus", "State", "Step"]

RolloutId = NewType("RolloutId", str)


class State(Enum):
    PENDING = "pending"
    PROGRESSING = "progressing"  # at forward step k, baking
    PAUSED = "paused"  # a human decides: resume or roll back
    STEPPING_DOWN = "stepping_down"  # at down step k, baking
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    PROMOTED = "promoted"
    FAILED = "failed"  # actuation failed after retries; humans were paged

    @property
    def terminal(self) -> bool:
        return self in (State.ROLLED_BACK, State.PROMOTED)


@dataclass(frozen=True)
class Step:
    traffic: int  # percent of users on the new version
    bake: float  # seconds to watch at this step before moving on


@dataclass(frozen=True)
class RolloutStatus:
    """Where a rollout is. `since` starts the bake at the current step; `seq` numbers the
    transitions and makes idempotency keys unique per transition."""

    state: State
    traffic: int
    step: int
    since: float
    seq: int = 0
    reason: str = ""

    def moved(self, state: State, *, traffic: int, step: int, since: float, reason: str) -> RolloutStatus:
        return replace(
            self, state=state, traffic=traffic, step=step, since=since, seq=self.seq + 1, reason=reason
        )
