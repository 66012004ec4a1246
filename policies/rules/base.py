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

    Immutable, compared by value. `value` is None when the status is NO_DATA (the rule had
    nothing to judge) and `since`, the start of the current streak, is None unless the
    status is PENDING or BREACH: both follow from the status, so the constructor takes
    plain floats and the properties answer None where the status says there is none.
    Compiled, the floats are then C doubles inside the object: the evaluator builds one
    state per rule per tick (100,000 a tick in a big controller), and an optional float
    would be a float object allocated and freed beside each. Use `RuleState.of` to build
    one from optional values.

    A plain class, not a NamedTuple: compiled, a class is built in C, where a tuple
    subclass still goes through `tuple.__new__`. It refers to nothing that could refer
    back to it, so the compiled class is kept out of the cyclic garbage collector
    (`acyclic`; the decorator does nothing when interpreted).
    """

    __slots__ = ("_since", "_value", "policy", "status")

    def __init__(self, policy: Policy, status: Status, value: float, since: float) -> None:
        self.policy: Final = policy
        self.status: Final = status
        self._value: Final = value
        self._since: Final = since

    @staticmethod
    def of(policy: Policy, status: Status, value: float | None, since: float | None) -> RuleState:
        """A state from optional values (tests, tools); a None the status contradicts, a
        PENDING state without `since` say, is refused rather than read as 0."""
        if value is None and status is not NO_DATA:
            raise ValueError(f"a {status.value} state needs a value")
        if since is None and (status is PENDING or status is BREACH):
            raise ValueError(f"a {status.value} state needs since")
        return RuleState(policy, status, 0.0 if value is None else value, 0.0 if since is None else since)

    @property
    def value(self) -> float | None:
        return None if self.status is NO_DATA else self._value

    @property
    def since(self) -> float | None:
        status = self.status
        return self._since if status is PENDING or status is BREACH else None

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


# (found, holds, value): found is False when the rule has no value at this tick (holds and
# value then mean nothing). Flags and a float rather than `bool | None, float | None`:
# compiled, a tuple of C values is returned in registers, where an optional float is a
# float object allocated and freed for every rule at every tick (100,000 a tick in a big
# controller).
Reading = tuple[bool, bool, float]
NO_READING: Final[Reading] = (False, False, 0.0)


# Statuses as constants: compiled, a module constant is a C variable, `Status.BREACH` a
# lookup on the class at every tick.
OK: Final = Status.OK
PENDING: Final = Status.PENDING
BREACH: Final = Status.BREACH
NO_DATA: Final = Status.NO_DATA


class Rule:
    """What the evaluator asks of every rule kind, and what they share: the comparison and
    the `for` streak.

    The streak is Prometheus alerting `for`: pending from the first tick that holds, breach
    once `time − since ≥ for`; a false condition or no value ends it (rules/alerting.go).

    The comparison (`> 0.05`) is kept as three plain fields, with the same answers as
    `Comparison.holds` for floats and ints alike (NaN holds nothing). The comparison and
    the streak live in the rule itself, not in objects of their own: a live controller
    ticks 10,000 rollouts' rules from memory the caches no longer hold, and every object
    a tick visits is another cache miss (docs/performance.md).

    A base class rather than a Protocol: compiled with mypyc, a call through a base class
    is a C-level method-table lookup, through a Protocol a generic Python call.
    """

    __slots__ = ("above", "hold_for", "holding", "limit", "policy", "since", "strict")

    def __init__(self, policy: Policy, comparison: Comparison) -> None:
        self.policy = policy
        self.limit = float(comparison.value)
        self.above = comparison.op in (">", ">=")
        self.strict = comparison.op in (">", "<")
        self.hold_for = policy.for_
        # `since` means something only while `holding` (a flag beside a float rather than
        # an optional float: compiled, both stay C values).
        self.holding = False
        self.since = 0.0

    def holds(self, value: float) -> bool:
        if self.above:
            return value > self.limit if self.strict else value >= self.limit
        return value < self.limit if self.strict else value <= self.limit

    def judge(self, time: float) -> RuleState:
        """The rule's state at `time`: its reading, then the streak on top of it."""
        found, holds, value = self.read(time)
        if found and holds:
            if not self.holding:
                self.holding, self.since = True, time
            status = BREACH if time - self.since >= self.hold_for else PENDING
        else:
            self.holding = False
            status = OK if found else NO_DATA
        return RuleState(self.policy, status, value, self.since)

    def read(self, time: float) -> Reading:
        raise NotImplementedError

    def describe(self, time: float) -> str:
        """The evidence behind the reading at `time`, in words (off the hot path)."""
        raise NotImplementedError

    def retention(self) -> float:
        """How far back from a tick this rule may still look (seconds)."""
        raise NotImplementedError
