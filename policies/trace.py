"""The recent history of one rollout's rules, tick by tick: what a live chart draws.

The evaluator keeps only the samples its rules can still need (a threshold's staleness, a
window), so the last hour of a rule cannot be recomputed from it. The live controller
therefore records each tick's rule states here: the value each rule judged, against the
bound it judges it by, and its status, from which the pending and breach spans follow.

Bounded: the newest `keep` ticks (trimmed in batches). Values are single-precision floats
(a chart needs no more) and statuses one byte, so a rule costs about 5 bytes a tick.

Read while written: the controller records in a step thread while its API reads. Appends
go time first, then each rule in order, and a reader cuts every column to the shortest;
a trim builds new columns and swaps them in with one assignment. So a reader always sees a
consistent prefix of some generation, without a lock.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from policies.durations import format_duration
from policies.rules.base import RuleState, Status
from policies.rules.drift import signed_change
from policies.schema import CountPolicy, Direction, DriftPolicy, Policy, ThresholdPolicy

_STATUSES = tuple(Status)  # status ↔ one-byte code
_CODE = {status: code for code, status in enumerate(_STATUSES)}
_SPANNED = (Status.PENDING, Status.BREACH)


@dataclass(frozen=True)
class Span:
    """Ticks in a row with the same pending or breach status; `end` is the tick that ended
    the run, or the last recorded tick while it lasts."""

    start: float
    end: float
    status: Status


@dataclass(frozen=True)
class RuleHistory:
    policy: Policy
    points: tuple[tuple[float, float | None], ...]  # (tick time, judged value or None)
    spans: tuple[Span, ...]


class _Columns:
    __slots__ = ("statuses", "times", "values")

    def __init__(self, rules: int) -> None:
        self.times: array[float] = array("d")
        self.values: list[array[float]] = [array("f") for _ in range(rules)]
        self.statuses: list[array[int]] = [array("b") for _ in range(rules)]


class Trace:
    def __init__(self, policies: Sequence[Policy], keep: int = 240) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.policies = tuple(policies)
        self.keep = keep
        self._slack = max(16, keep // 4)  # trim once this many ticks too many were kept
        self._index = {policy.id: i for i, policy in enumerate(self.policies)}
        self._columns = _Columns(len(self.policies))

    def __len__(self) -> int:
        return len(self._columns.times)

    def record(self, time: float, states: Sequence[RuleState]) -> None:
        """One tick's states, in the order of the policies this trace was made with."""
        if len(states) != len(self.policies):
            raise ValueError(f"expected {len(self.policies)} rule states, got {len(states)}")
        columns = self._columns
        columns.times.append(time)
        for values, statuses, state in zip(columns.values, columns.statuses, states, strict=True):
            judged = judged_value(state.policy, state.value)
            values.append(math.nan if judged is None else judged)
            statuses.append(_CODE[state.status])
        if len(columns.times) >= self.keep + self._slack:
            self._trim(columns)

    def _trim(self, old: _Columns) -> None:
        new = _Columns(len(self.policies))
        new.times = old.times[-self.keep :]
        new.values = [values[-self.keep :] for values in old.values]
        new.statuses = [statuses[-self.keep :] for statuses in old.statuses]
        self._columns = new

    def history(self, policy_id: str) -> RuleHistory:
        """The kept ticks of one rule (KeyError for a policy this trace does not hold)."""
        index = self._index[policy_id]
        columns = self._columns  # one generation, whatever the writer does meanwhile
        times, values, statuses = columns.times, columns.values[index], columns.statuses[index]
        count = min(len(times), len(values), len(statuses))
        kept_times = times[:count]
        points = tuple(
            (t, None if math.isnan(v) else v) for t, v in zip(kept_times, values[:count], strict=True)
        )
        kept_statuses = [_STATUSES[code] for code in statuses[:count]]
        return RuleHistory(self.policies[index], points, _spans(kept_times, kept_statuses))


def _spans(times: Sequence[float], statuses: Sequence[Status]) -> tuple[Span, ...]:
    spans: list[Span] = []
    begin = 0
    for index in range(1, len(statuses) + 1):
        if index < len(statuses) and statuses[index] is statuses[begin]:
            continue
        if statuses[begin] in _SPANNED:
            end = times[index] if index < len(times) else times[index - 1]
            spans.append(Span(times[begin], end, statuses[begin]))
        begin = index
    return tuple(spans)


def judged_value(policy: Policy, value: float | None) -> float | None:
    """The reading as the rule compares it with `bound(policy)`: a drift's relative change
    signed by its direction (a 12% drop is +0.12 for `direction: down`, |change| for both)."""
    if value is None or not isinstance(policy, DriftPolicy):
        return value
    return signed_change(value, policy.direction)


def bound(policy: Policy) -> float:
    """The number the rule's condition compares the judged value with."""
    if isinstance(policy, ThresholdPolicy):
        return policy.when.value
    if isinstance(policy, CountPolicy):
        return policy.count.value
    return policy.drift.value


def bound_label(policy: Policy) -> str:
    """The condition in chart words: `> 0.05`, `>= 3 within 1h`, `drop > 5% vs baseline`."""
    if isinstance(policy, ThresholdPolicy):
        return str(policy.when)
    if isinstance(policy, CountPolicy):
        return f"{policy.count} within {format_duration(policy.within)}"
    way = {Direction.DOWN: "drop", Direction.UP: "rise", Direction.BOTH: "change"}[policy.direction]
    return f"{way} {policy.drift.op} {policy.drift.value * 100:g}% vs baseline"


def baseline_window(policy: Policy, start: float) -> tuple[float, float] | None:
    """A drift rule's pre-rollout baseline (start − window, start); None for other kinds."""
    if isinstance(policy, DriftPolicy):
        return (start - policy.baseline.window, start)
    return None
