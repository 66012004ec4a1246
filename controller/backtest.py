"""`tidegate backtest`: replay recorded signals through the live evaluator and decide.

Ticks at start + k·interval up to the last timestamp of the data (DESIGN.md backtest
contract). The evaluator and `decide` are the ones the controller runs; only the source of
samples differs, which is the point of a backtest.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.sources.replay import ReplayData
from controller.core.decide import Verdict, decide
from policies.evaluator import Evaluator, SignalKind, statuses_of
from policies.rules.base import RuleState, Status
from policies.schema import CountPolicy, Policy
from policies.timestamps import format_timestamp


@dataclass(frozen=True)
class Transition:
    """A rule changing status at a tick, with the evidence in words."""

    policy: str
    at: float
    before: Status
    after: Status
    value: float | None
    detail: str


@dataclass(frozen=True)
class DecisionChange:
    at: float
    verdict: Verdict


@dataclass
class BacktestResult:
    start: float
    end: float
    interval: float
    ticks: int = 0
    policies: list[Policy] = field(default_factory=list)
    unbound: list[Policy] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    decisions: list[DecisionChange] = field(default_factory=list)

    @property
    def firings(self) -> list[Transition]:
        return [t for t in self.transitions if t.after is Status.BREACH]

    @property
    def lowered_traffic(self) -> bool:
        """True when some tick decided step_down or rollback (exit status 1)."""
        return any(change.verdict.decision.lowers_traffic for change in self.decisions)

    def to_json(self) -> dict[str, Any]:
        return {
            "firings": [
                {"policy": f.policy, "at": format_timestamp(f.at), "value": _json_number(f.value)}
                for f in self.firings
            ],
            "decisions": [
                {
                    "at": format_timestamp(change.at),
                    "decision": change.verdict.decision.value,
                    "policies": list(change.verdict.policies),
                }
                for change in self.decisions
            ],
        }


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def bound_kinds(policies: Sequence[Policy], data: ReplayData, events_given: bool) -> dict[str, SignalKind]:
    """Signals the data provides. An event stream counts as present whenever an events file
    was given: a healthy release with no incidents has an empty stream, not a missing one."""
    kinds = data.kinds()
    if events_given:
        for policy in policies:
            if isinstance(policy, CountPolicy):
                kinds.setdefault(policy.signal, SignalKind.EVENTS)
    return kinds


def run_backtest(
    policies: Sequence[Policy],
    data: ReplayData,
    *,
    start: float | None,
    interval: float,
    events_given: bool,
) -> BacktestResult:
    span = data.span()
    if span is None:
        first = last = start if start is not None else 0.0
    else:
        first, last = span
    begin = first if start is None else start
    kinds = bound_kinds(policies, data, events_given)
    # Count rules with no stream in the data are unbound, like any other missing signal.
    evaluator = Evaluator(
        [p for p in policies if not isinstance(p, CountPolicy) or p.signal in kinds],
        start=begin,
        kinds=kinds,
    )
    unbound = evaluator.unbound + [
        p for p in policies if isinstance(p, CountPolicy) and p.signal not in kinds
    ]
    for event in data.events:
        evaluator.observe_event(event)
    result = BacktestResult(begin, last, interval, policies=evaluator.policies, unbound=unbound)
    if span is not None:  # no sample and no event: no last timestamp, so no tick (not one at 1970)
        feed = _Feed(evaluator, data.columns, _FEED_TICKS * interval)
        _tick_through(evaluator, feed, result, begin, last, interval)
    return result


_FEED_TICKS = 128  # ticks of samples handed to the evaluator at a time


class _Feed:
    """The recorded samples, handed to the evaluator a block of ticks ahead of the clock.

    Loaded all at once, every series would hold the whole recording, so every window query
    would search a month of samples and the process would keep two copies of it. A block
    ahead, the evaluator holds what a live controller holds — recent samples, older ones
    forgotten — and reads the same: every query stops at the tick's time.
    """

    def __init__(
        self, evaluator: Evaluator, columns: dict[str, tuple[list[float], list[float]]], ahead: float
    ) -> None:
        self.evaluator, self.columns, self.ahead = evaluator, columns, ahead
        self.loaded = dict.fromkeys(columns, 0)
        self.until = -math.inf  # every sample with timestamp ≤ until is loaded

    def load_through(self, time: float) -> None:
        self.until = time + self.ahead
        for column, (times, values) in self.columns.items():
            start = self.loaded[column]
            end = bisect_right(times, self.until, start)
            if end > start:
                self.evaluator.load(column, times[start:end], values[start:end])
                self.loaded[column] = end


def _tick_through(
    evaluator: Evaluator, feed: _Feed, result: BacktestResult, begin: float, last: float, interval: float
) -> None:
    """Tick, and look closer only at ticks where some rule changed status.

    A month at 10 s is 260,000 ticks and almost none of them changes anything. `decide`
    reads nothing but the rules' statuses, so an unchanged status list means an unchanged
    decision: comparing two lists (in C) replaces a Python loop and a `decide` per tick.
    """
    previous = [Status.OK] * len(evaluator.rules)
    last_verdict: Verdict | None = None
    tick = evaluator.tick
    k = 0
    while (now := begin + k * interval) <= last:
        if now > feed.until:
            feed.load_through(now)
        states = tick(now)
        statuses = statuses_of(states)
        if statuses != previous or last_verdict is None:
            _record_transitions(evaluator, result, states, previous, now)
            previous = statuses
            verdict = decide(states)
            # A change of decision or of its causes; a mitigation alone is a rule transition, not one.
            if last_verdict is None or (verdict.decision, verdict.policies) != (
                last_verdict.decision,
                last_verdict.policies,
            ):
                result.decisions.append(DecisionChange(now, verdict))
                last_verdict = verdict
        k += 1
    result.ticks = k


def _record_transitions(
    evaluator: Evaluator, result: BacktestResult, states: list[RuleState], previous: list[Status], now: float
) -> None:
    for index, state in enumerate(states):
        if state.status is not previous[index]:
            rule = evaluator.rules[index]
            result.transitions.append(
                Transition(
                    state.policy.id, now, previous[index], state.status, state.value, rule.describe(now)
                )
            )
