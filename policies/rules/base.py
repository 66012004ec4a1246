"""What every rule kind shares: the reading it produces and the `for` streak on top of it."""

from __future__ import annotations

from enum import Enum
from typing import Final

from mypy_extensions import mypyc_attr

from policies.schema import Comparison, Policy


class Status(Enum):
    OK = "ok"
    PENDING = "pending"
    BREACH = "breach"
    NO_DATA = "no_data"


@mypyc_attr(acyclic=True)
class RuleState:
    """A rule at one tick: its status, the value it judged, and since when it has held.

    Immutable (mypy enforces `Final`), compared by value. A plain class, not a NamedTuple:
    the evaluator builds one per rule per tick, and compiled (docs/performance.md) a class
    is built in C, where a tuple subclass still goes through `tuple.__new__`. It refers to
    nothing that could refer back to it, so the compiled class is kept out of the cyclic
    garbage collector (`acyclic`; the decorator does nothing when interpreted).
    """

    __slots__ = ("policy", "since", "status", "value")

    def __init__(self, policy: Policy, status: Status, value: float | None, since: float | None) -> None:
        self.policy: Final = policy
        self.status: Final = status
        self.value: Final = value
        self.since: Final = since  # start of the current pending/breach streak

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleState):
            return NotImplemented
        return (self.policy, self.status, self.value, self.since) == (
            other.policy,
            other.status,
            other.value,
            other.since,
        )

    __hash__ = None  # type: ignore[assignment]  # compared by value: not a dict key

    def __repr__(self) -> str:
        return f"RuleState({self.policy.id!r}, {self.status}, {self.value!r}, since={self.since!r})"


# (holds, value); holds is None when the rule has no value at this tick. A bare tuple, not
# a NamedTuple: rules build one per tick, 100,000 a tick in a big controller.
Reading = tuple[bool | None, float | None]
NO_READING: Reading = (None, None)


class Bound:
    """A rule's comparison, `> 0.05`, as the three fields a tick needs.

    Same answers as `Comparison.holds`, for floats and ints alike (NaN holds nothing).
    Compiled, `holds` compares two doubles in C; the bound method `(0.05).__lt__` it
    replaces was a generic call that builds an argument tuple at every tick.
    """

    __slots__ = ("above", "limit", "strict")

    def __init__(self, comparison: Comparison) -> None:
        self.limit = float(comparison.value)
        self.above = comparison.op in (">", ">=")
        self.strict = comparison.op in (">", "<")

    def holds(self, value: float) -> bool:
        if self.above:
            return value > self.limit if self.strict else value >= self.limit
        return value < self.limit if self.strict else value <= self.limit


class Rule:
    """What the evaluator asks of every rule kind.

    A base class rather than a Protocol: compiled with mypyc (docs/performance.md), a call
    through a base class is a C-level method-table lookup, through a Protocol a generic
    Python call. Interpreted, the two cost the same.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def read(self, time: float) -> Reading:
        raise NotImplementedError

    def describe(self, time: float) -> str:
        """The evidence behind the reading at `time`, in words (off the hot path)."""
        raise NotImplementedError

    def retention(self) -> float:
        """How far back from a tick this rule may still look (seconds)."""
        raise NotImplementedError


# Statuses as constants: compiled, a module constant is a C variable, `Status.BREACH` a
# lookup on the class at every tick.
OK: Final = Status.OK
PENDING: Final = Status.PENDING
BREACH: Final = Status.BREACH
NO_DATA: Final = Status.NO_DATA


class Streak:
    """Prometheus alerting `for`: pending from the first tick that holds, breach once
    `time − since ≥ for`; a false condition or no value ends the streak (rules/alerting.go)."""

    __slots__ = ("hold_for", "since")

    def __init__(self, hold_for: float) -> None:
        self.hold_for = hold_for
        self.since: float | None = None

    def update(self, holds: bool | None, time: float) -> Status:
        if holds:
            since = self.since
            if since is None:
                since = self.since = time
            return BREACH if time - since >= self.hold_for else PENDING
        self.since = None
        return NO_DATA if holds is None else OK
