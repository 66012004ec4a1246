"""What every rule kind shares: the reading it produces and the `for` streak on top of it."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import NamedTuple, Protocol

from policies.schema import Comparison, Policy


class Status(Enum):
    OK = "ok"
    PENDING = "pending"
    BREACH = "breach"
    NO_DATA = "no_data"


class RuleState(NamedTuple):
    """A rule at one tick: its status, the value it judged, and since when it has held."""

    policy: Policy
    status: Status
    value: float | None
    since: float | None  # start of the current pending/breach streak


# (holds, value); holds is None when the rule has no value at this tick. A bare tuple, not
# a NamedTuple: rules build one per tick, 100,000 a tick in a big controller.
Reading = tuple[bool | None, float | None]
NO_READING: Reading = (None, None)


def predicate(comparison: Comparison) -> Callable[[float], bool]:
    """`> 0.05` as the C-level bound method `(0.05).__lt__`: no Python frame per tick.

    Same answers as `comparison.holds` (x > v is v < x), for floats and ints alike. One
    object per distinct comparison, shared by every rollout's rule.
    """
    return _flipped(comparison.op, float(comparison.value))


@cache
def _flipped(op: str, limit: float) -> Callable[[float], bool]:
    return {">": limit.__lt__, ">=": limit.__le__, "<": limit.__gt__, "<=": limit.__ge__}[op]


class Rule(Protocol):
    @property
    def policy(self) -> Policy: ...

    def read(self, time: float) -> Reading: ...

    def describe(self, time: float) -> str:
        """The evidence behind the reading at `time`, in words (off the hot path)."""
        ...

    def retention(self) -> float:
        """How far back from a tick this rule may still look (seconds)."""
        ...


class Streak:
    """Prometheus alerting `for`: pending from the first tick that holds, breach once
    `time − since ≥ for`; a false condition or no value ends the streak (rules/alerting.go)."""

    __slots__ = ("hold_for", "since")

    def __init__(self, hold_for: float) -> None:
        self.hold_for = hold_for
        self.since: float | None = None

    def update(self, holds: bool | None, time: float) -> Status:
        if holds:
            if self.since is None:
                self.since = time
            return Status.BREACH if time - self.since >= self.hold_for else Status.PENDING
        self.since = None
        return Status.NO_DATA if holds is None else Status.OK
