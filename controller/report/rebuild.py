"""Re-run the evaluator tick by tick: what every rule saw at every tick of a rollout.

The store keeps the decisions but not the samples. The evaluator is a pure function of the
data and the tick times, so the same data through the same rules at the same ticks
(start + k·interval, as the controller and `backtest.py` tick) gives back each rule's value,
its pending and breach streaks and the evidence at each firing — the pictures' content.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.backtest import DecisionChange
from controller.bootstrap import Signals, build_evaluator
from controller.core.decide import decide
from controller.report.model import Firing, Point, RuleChart, Span, SpanKind, Window
from controller.report.readable import change, number
from policies.explain import condition, explain
from policies.rules.base import Rule, RuleState, Status
from policies.rules.drift import PlainDrift, RatioDrift
from policies.schema import CountPolicy, Direction, DriftPolicy, Policy, ThresholdPolicy
from policies.series import Series

MAX_POINTS = 1500  # per chart: a month of 30 s ticks would otherwise be 86,400 points
_STREAK = {Status.PENDING: SpanKind.PENDING, Status.BREACH: SpanKind.BREACH}


@dataclass
class Rebuilt:
    rules: list[RuleChart]
    decisions: list[DecisionChange]  # each change of (decision, causes), like the backtest's
    ticks: int
    judged: dict[str, tuple[list[float], list[float | None]]] = field(default_factory=dict)

    def judged_at(self, policy: str, at: float) -> float | None:
        """The value `policy` judged at the last tick at or before `at` (None: none)."""
        times, values = self.judged.get(policy, ([], []))
        index = bisect_right(times, at) - 1
        return values[index] if index >= 0 else None


def rebuild(
    policies: Sequence[Policy],
    signals: Signals,
    *,
    start: float,
    until: float,
    interval: float,
    end: float | None = None,
) -> Rebuilt:
    """Tick from `start` through `until`; `end` (default `until`) is when the rollout ended:
    what a rule did after it does not count towards its `worst`."""
    evaluator = build_evaluator(list(policies), Signals(signals.data, start, until, signals.events_given))
    tracks = [_Track(rule, rule.policy.signal in evaluator.ratio) for rule in evaluator.rules]
    decisions: list[DecisionChange] = []
    k = 0
    while (now := start + k * interval) <= until:
        states = evaluator.tick(now)
        for track, state in zip(tracks, states, strict=True):
            track.add(now, state)
        verdict = decide(states)
        last = decisions[-1].verdict if decisions else None
        if last is None or (verdict.decision, verdict.policies) != (last.decision, last.policies):
            decisions.append(DecisionChange(now, verdict))
        k += 1
    closing = start + k * interval  # a streak still open at the last tick lasts one interval
    ended = until if end is None else end
    charts = {t.rule.policy.id: t.chart(closing, signals, start, interval, ended) for t in tracks}
    for policy in policies:
        if policy.id not in charts:
            charts[policy.id] = _unbound(policy)
    judged = {t.rule.policy.id: (t.times, t.judged) for t in tracks}
    return Rebuilt([charts[p.id] for p in policies], decisions, k, judged)


def reason(rebuilt: Rebuilt, policy: Policy, at: float) -> str:
    """`latency-p95: 26.69 (latency_p95 > 20 for 10m)` — a cause with the value it judged."""
    chart = next((c for c in rebuilt.rules if c.policy == policy.id), None)
    value = rebuilt.judged_at(policy.id, at)
    if isinstance(policy, DriftPolicy):
        text = change(value)
    else:
        text = number(value, chart.percent if chart else False)
    return f"{policy.id}: {text} ({condition(policy)})"


class _Track:
    """One rule's ticks as they come: values, streak spans, firings."""

    def __init__(self, rule: Rule, percent: bool) -> None:
        self.rule, self.percent = rule, percent
        self.times: list[float] = []
        self.judged: list[float | None] = []  # the value the rule judged (a drift's relative change)
        self.levels: list[float | None] = []  # what the chart draws
        self.spans: list[Span] = []
        self.firings: list[Firing] = []
        self.open: tuple[float, SpanKind] | None = None
        self.previous = Status.OK
        self.level = _drift_level(rule)

    def add(self, now: float, state: RuleState) -> None:
        self.times.append(now)
        self.judged.append(state.value)
        self.levels.append(self.level(now) if self.level else state.value)
        if state.status is self.previous:
            return
        self._close(now)
        kind = _STREAK.get(state.status)
        if kind is not None:
            self.open = (now, kind)
        if state.status is Status.BREACH:
            detail = self.rule.describe(now)
            since = now if state.since is None else state.since
            self.firings.append(Firing(state.policy.id, now, state.value, detail, since))
        self.previous = state.status

    def _close(self, now: float) -> None:
        if self.open is not None:
            self.spans.append(Span(self.open[0], now, self.open[1]))
            self.open = None

    def chart(self, closing: float, signals: Signals, start: float, interval: float, end: float) -> RuleChart:
        self._close(closing)
        policy = self.rule.policy
        points = [Point(t, v) for t, v in zip(self.times, self.levels, strict=True)]
        threshold, label, baseline, baseline_value = _threshold(self.rule, self.percent, start)
        if isinstance(policy, DriftPolicy) and baseline is not None:
            points = _baseline_points(policy, signals, start, interval, self.percent) + points
        thinned = _thin(points, _worse(policy, baseline_value))
        return RuleChart(
            policy=policy.id,
            signal=policy.signal,
            kind=policy.kind,
            action=policy.action.value,
            sentence=explain(policy),
            condition=condition(policy),
            percent=self.percent,
            threshold=threshold,
            threshold_label=label,
            points=tuple(thinned),
            spans=tuple(self.spans),
            baseline=baseline,
            baseline_value=baseline_value,
            firings=tuple(self.firings),
            unavailable="" if any(v is not None for v in self.levels) else "no value at any tick",
            thinned=len(thinned) < len(points),
            worst=_worst(self.spans, end),
        )


def _worst(spans: Sequence[Span], end: float) -> str:
    kinds = {span.kind for span in spans if span.start <= end}
    if SpanKind.BREACH in kinds:
        return "breach"
    return "pending" if SpanKind.PENDING in kinds else "quiet"


def _drift_level(rule: Rule) -> Callable[[float], float | None] | None:
    """A drift rule's chart shows the signal's level over its window, not the relative change:
    the baseline and the bound are then lines a person can compare it with."""
    if isinstance(rule, RatioDrift):

        def ratio_level(now: float) -> float | None:
            found, _, _, num, den = rule.counts(now)
            return num / den if found else None

        return ratio_level
    if isinstance(rule, PlainDrift):

        def plain_level(now: float) -> float | None:
            _, mean, _, count = rule.statistics(now)
            return mean if count else None

        return plain_level
    return None


def _threshold(
    rule: Rule, percent: bool, start: float
) -> tuple[float | None, str, Window | None, float | None]:
    """(threshold line, its label, the drift baseline window, the baseline level)."""
    policy = rule.policy
    if isinstance(policy, ThresholdPolicy):
        return policy.when.value, f"{policy.when.op} {number(policy.when.value, percent)}", None, None
    if isinstance(policy, CountPolicy):
        return policy.count.value, f"{policy.count.op} {policy.count.value:g} events", None, None
    window = Window(start - policy.baseline.window, start)
    base: float | None = None
    if isinstance(rule, RatioDrift) and rule.has_baseline and rule.baseline_den:
        base = rule.baseline_num / rule.baseline_den
    elif isinstance(rule, PlainDrift) and rule.sorted_baseline is not None:
        base = rule.baseline_mean
    bound = policy.drift.value
    if base is None:
        return None, "no baseline", window, None
    text = f"baseline {number(base, percent)}"
    if policy.direction is Direction.DOWN:
        return base * (1 - bound), f"{text} − {bound:.0%}", window, base
    if policy.direction is Direction.UP:
        return base * (1 + bound), f"{text} + {bound:.0%}", window, base
    return None, f"{text} ± {bound:.0%}", window, base


def _baseline_points(
    policy: DriftPolicy, signals: Signals, start: float, interval: float, ratio: bool
) -> list[Point]:
    """The signal's level over the rule's window at ticks through the baseline window, so the
    chart shows the hour(s) the rollout is compared with, not only the line they produced."""
    columns = signals.data.columns
    names = (f"{policy.signal}:num", f"{policy.signal}:den") if ratio else (policy.signal,)
    series = []
    for name in names:
        times, values = columns.get(name, ([], []))
        one = Series()
        one.extend(times, values)
        series.append(one)
    points = []
    steps = math.ceil(policy.baseline.window / interval)
    for k in range(steps, 0, -1):
        now = start - k * interval
        sums = [s.window(now - policy.window, now) for s in series]
        if ratio:
            (num, _), (den, count) = sums
            points.append(Point(now, num / den if count and den > 0 else None))
        else:
            ((total, count),) = sums
            points.append(Point(now, total / count if count else None))
    return points


def _worse(policy: Policy, baseline: float | None) -> Callable[[float], float]:
    """How alarming a value is, for thinning: the direction in which the rule fires."""
    if isinstance(policy, DriftPolicy):
        if policy.direction is Direction.DOWN:
            return lambda v: -v
        if policy.direction is Direction.BOTH and baseline is not None:
            return lambda v: abs(v - baseline)
        return lambda v: v
    comparison = policy.when if isinstance(policy, ThresholdPolicy) else policy.count
    return (lambda v: -v) if comparison.op in ("<", "<=") else (lambda v: v)


def _thin(points: list[Point], worse: Callable[[float], float]) -> list[Point]:
    """At most MAX_POINTS: each bucket keeps its most alarming value (a spike stays a spike);
    a bucket without any value stays a gap."""
    if len(points) <= MAX_POINTS:
        return points
    size = math.ceil(len(points) / MAX_POINTS)
    kept = []
    for begin in range(0, len(points), size):
        bucket = points[begin : begin + size]
        valued = [p for p in bucket if p.v is not None]
        kept.append(max(valued, key=lambda p: worse(p.v or 0.0)) if valued else bucket[0])
    return kept


def _unbound(policy: Policy) -> RuleChart:
    return RuleChart(
        policy=policy.id,
        signal=policy.signal,
        kind=policy.kind,
        action=policy.action.value,
        sentence=explain(policy),
        condition=condition(policy),
        percent=False,
        threshold=None,
        threshold_label="",
        points=(),
        spans=(),
        unavailable=f"{policy.signal} is not in the data (the rule was not bound)",
    )
