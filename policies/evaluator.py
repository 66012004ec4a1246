"""The incremental evaluator: one rollout's rules over its signals, tick by tick.

Time is always an argument: samples arrive with their timestamps, `tick(t)` judges every
rule at t. Nothing here reads a clock or does I/O, so the backtest and the live controller
run the very same code — the backtest bulk-loads history and ticks through it, the
controller appends what its sources just read and ticks at its interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum

from policies.errors import TidegateError
from policies.rules.base import Rule, RuleState, Status
from policies.rules.count import EventCount, EventStream
from policies.rules.drift import PlainDrift, RatioDrift
from policies.rules.threshold import PlainThreshold, RatioThreshold
from policies.schema import CountPolicy, Policy, ThresholdPolicy
from policies.series import Event, RatioSeries, Series

_FORGET_EVERY = 32  # ticks between forgetting old samples; amortises the bookkeeping


class SignalKind(Enum):
    PLAIN = "plain"  # one value per sample (a p95, a backlog)
    RATIO = "ratio"  # num/den counters (errors/requests, conversions/sessions)
    EVENTS = "events"  # discrete events (incidents, alerts)


class BindingError(TidegateError):
    """A policy cannot read the signal it names the way the data provides it."""


class Evaluator:
    def __init__(
        self,
        policies: Iterable[Policy],
        *,
        start: float,
        kinds: Mapping[str, SignalKind],
    ) -> None:
        self.start = start
        self.plain: dict[str, Series] = {}
        self.ratio: dict[str, RatioSeries] = {}
        self.streams: dict[str, EventStream] = {}
        self.rules: list[Rule] = []
        self.unbound: list[Policy] = []
        self._retention: dict[Series, float] = {}  # how far back each series must reach
        self._ticks = 0
        self._last_tick = -math.inf
        for policy in policies:
            kind = SignalKind.EVENTS if isinstance(policy, CountPolicy) else kinds.get(policy.signal)
            if kind is None:
                self.unbound.append(policy)
                continue
            self.rules.append(self._bind(policy, kind))

    # --- binding -----------------------------------------------------------------------

    def _bind(self, policy: Policy, kind: SignalKind) -> Rule:
        if isinstance(policy, CountPolicy):
            rule = EventCount(policy)
            self.streams.setdefault(policy.signal, EventStream()).rules.append(rule)
            return rule
        if kind is SignalKind.EVENTS:
            raise BindingError(f"policy {policy.id!r}: {policy.signal} is an event stream; use count:")
        if kind is SignalKind.RATIO:
            signal = self.ratio.setdefault(policy.signal, RatioSeries(Series(), Series()))
            ratio_rule: Rule = (
                RatioThreshold(policy, signal)
                if isinstance(policy, ThresholdPolicy)
                else RatioDrift(policy, signal, self.start)
            )
            self._keep(signal.num, ratio_rule.retention())
            self._keep(signal.den, ratio_rule.retention())
            return ratio_rule
        series = self.plain.get(policy.signal)
        if series is None:
            series = self.plain[policy.signal] = Series(sums=False)
        plain_rule: Rule
        if isinstance(policy, ThresholdPolicy):
            if policy.confidence is not None or policy.min_samples:
                raise BindingError(
                    f"policy {policy.id!r}: confidence and min_samples need a ratio signal "
                    f"(num/den), but {policy.signal} has plain values"
                )
            plain_rule = PlainThreshold(policy, series)
        else:
            series.keep_sums()
            plain_rule = PlainDrift(policy, series, self.start)
        self._keep(series, plain_rule.retention())
        return plain_rule

    def _keep(self, series: Series, seconds: float) -> None:
        self._retention[series] = max(self._retention.get(series, 0.0), seconds)

    @property
    def policies(self) -> list[Policy]:
        return [rule.policy for rule in self.rules]

    def rule(self, policy_id: str) -> Rule:
        for rule in self.rules:
            if rule.policy.id == policy_id:
                return rule
        raise KeyError(policy_id)

    # --- ingestion ---------------------------------------------------------------------

    def observe(self, signal: str, time: float, value: float) -> None:
        series = self.plain.get(signal)
        if series is not None:
            series.append(time, value)

    def observe_ratio(self, signal: str, time: float, num: float, den: float) -> None:
        pair = self.ratio.get(signal)
        if pair is not None:
            pair.num.append(time, num)
            pair.den.append(time, den)

    def load(self, signal: str, times: Sequence[float], values: Sequence[float]) -> None:
        """Bulk-load a sorted plain history (or one counter: `name:num` / `name:den`)."""
        name, _, part = signal.partition(":")
        if part:
            pair = self.ratio.get(name)
            if pair is not None:
                (pair.num if part == "num" else pair.den).extend(times, values)
            return
        series = self.plain.get(name)
        if series is not None:
            series.extend(times, values)

    def observe_event(self, event: Event) -> bool:
        stream = self.streams.get(event.signal)
        return stream.add(event) if stream is not None else False

    # --- evaluation --------------------------------------------------------------------

    def tick(self, time: float) -> list[RuleState]:
        if time < self._last_tick:
            raise ValueError(f"ticks must not go back in time ({time} < {self._last_tick})")
        self._last_tick = time
        states = [rule.judge(time) for rule in self.rules]
        self._ticks += 1
        if self._ticks % _FORGET_EVERY == 0:
            self._forget(time)
        return states

    def _forget(self, time: float) -> None:
        for series, keep in self._retention.items():
            series.forget_through(time - keep)
        for rule in self.rules:
            if isinstance(rule, PlainDrift):
                rule.forget_through(time - rule.window)
        for stream in self.streams.values():
            longest = max((r.within for r in stream.rules), default=0.0)
            stream.forget_through(time - longest)


def statuses_of(states: list[RuleState]) -> list[Status]:
    """The statuses of a tick's states, for a caller that compares ticks (the backtest).
    Here rather than `map(attrgetter("status"), …)` in the caller: compiled, reading the
    attribute is a C field load instead of a generic attribute lookup per rule."""
    return [state.status for state in states]
