"""A naive evaluator, as peers write it: every tick re-scans every window from plain lists.

It keeps each signal as a list of `(time, value)` pairs that only grows, and at each tick
filters the list for the window each rule reads; the Mann-Whitney U of a plain drift
compares every current sample with every baseline sample. The statistics (Wilson bound,
z-tests, the `for` streak) are the real ones from `policies`, so the only difference from
`policies.evaluator.Evaluator` is how windows are found — which is what the live benchmark
compares. tests/test_bench_naive.py checks both agree tick by tick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from policies.evaluator import SignalKind
from policies.rules.base import RuleState, Status
from policies.rules.drift import critical_z, signed_change, significant, two_proportion_z
from policies.rules.ratio import wilson_bounds, z_for
from policies.schema import CountPolicy, DriftPolicy, Policy, ThresholdPolicy
from policies.series import Event

Samples = list[tuple[float, float]]
Reading = tuple[bool | None, float | None]


def in_window(samples: Samples, start: float, end: float) -> list[float]:
    """Values with timestamp in (start, end]."""
    return [v for t, v in samples if start < t <= end]


def newest(samples: Samples, time: float) -> tuple[float, float] | None:
    best = None
    for t, v in samples:
        if t <= time and (best is None or t >= best[0]):
            best = (t, v)
    return best


class Streak:
    """Prometheus alerting `for`, as literally as it reads: pending from the first tick
    that holds, breach once `time − since ≥ for`; a false condition or no value ends it."""

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


class NaiveEvaluator:
    """Same constructor, ingestion and `tick` as the real evaluator; no indexes, no forgetting."""

    def __init__(self, policies: Iterable[Policy], *, start: float, kinds: Mapping[str, SignalKind]) -> None:
        self.start = start
        self.kinds = dict(kinds)
        self.samples: dict[str, Samples] = {}
        self.events: list[Event] = []
        self.seen: set[str] = set()
        self.rules = [(policy, Streak(policy.for_)) for policy in policies]

    def observe(self, signal: str, time: float, value: float) -> None:
        self.samples.setdefault(signal, []).append((time, value))

    def observe_ratio(self, signal: str, time: float, num: float, den: float) -> None:
        self.observe(f"{signal}:num", time, num)
        self.observe(f"{signal}:den", time, den)

    def observe_event(self, event: Event) -> bool:
        if event.id is not None:
            if event.id in self.seen:
                return False
            self.seen.add(event.id)
        self.events.append(event)
        return True

    def tick(self, time: float) -> list[RuleState]:
        states = []
        for policy, streak in self.rules:
            holds, value = self.read(policy, time)
            status = streak.update(holds, time)
            shown = value if status is not Status.NO_DATA else None
            states.append(RuleState.of(policy, status, shown, streak.since))
        return states

    def read(self, policy: Policy, time: float) -> Reading:
        if isinstance(policy, CountPolicy):
            return self.count(policy, time)
        ratio = self.kinds.get(policy.signal) is SignalKind.RATIO
        if isinstance(policy, ThresholdPolicy):
            return self.ratio_threshold(policy, time) if ratio else self.threshold(policy, time)
        return self.ratio_drift(policy, time) if ratio else self.plain_drift(policy, time)

    def series(self, name: str) -> Samples:
        return self.samples.get(name, [])

    # --- one function per rule kind, each scanning from scratch ------------------------

    def threshold(self, policy: ThresholdPolicy, time: float) -> Reading:
        sample = newest(self.series(policy.signal), time)
        if sample is None or sample[0] <= time - policy.staleness:
            return None, None
        return policy.when.holds(sample[1]), sample[1]

    def ratio_threshold(self, policy: ThresholdPolicy, time: float) -> Reading:
        nums = in_window(self.series(policy.signal + ":num"), time - policy.window, time)
        dens = in_window(self.series(policy.signal + ":den"), time - policy.window, time)
        if not nums or not dens:
            return None, None
        num, den = sum(nums), sum(dens)
        if den <= 0 or den < policy.min_samples:
            return None, None
        if policy.confidence is None:
            return policy.when.holds(num / den), num / den
        low, high = wilson_bounds(num, den, z_for(policy.confidence))
        return policy.when.holds(high if policy.when.op in ("<", "<=") else low), num / den

    def current(self, name: str, policy: DriftPolicy, time: float) -> list[float]:
        """The drift window (t − window, t], never reaching back before the rollout start."""
        begin = time - policy.window
        return [v for t, v in self.series(name) if begin < t <= time and t >= self.start]

    def baseline(self, name: str, policy: DriftPolicy) -> list[float]:
        begin = self.start - policy.baseline.window
        return [v for t, v in self.series(name) if begin <= t < self.start]

    def ratio_drift(self, policy: DriftPolicy, time: float) -> Reading:
        num, den = policy.signal + ":num", policy.signal + ":den"
        base_num, base_den = self.baseline(num, policy), self.baseline(den, policy)
        nums, dens = self.current(num, policy, time), self.current(den, policy, time)
        if not (base_num and base_den and nums and dens):
            return None, None
        n0, d0, n1, d1 = sum(base_num), sum(base_den), sum(nums), sum(dens)
        if d0 <= 0 or n0 <= 0 or d1 <= 0 or d1 < policy.min_samples:
            return None, None
        rel = (n1 / d1) / (n0 / d0) - 1
        if not policy.drift.holds(signed_change(rel, policy.direction)):
            return False, rel
        critical = critical_z(policy.confidence, policy.direction)
        return significant(two_proportion_z(n0, d0, n1, d1), critical, policy.direction), rel

    def plain_drift(self, policy: DriftPolicy, time: float) -> Reading:
        base = self.baseline(policy.signal, policy)
        now = self.current(policy.signal, policy, time)
        if not base or not now:
            return None, None
        mean0, mean1 = math.fsum(base) / len(base), sum(now) / len(now)
        if mean0 == 0:
            return None, None
        u = sum(sum((b < v) + (b == v) / 2 for b in base) for v in now)
        n1, n2 = len(now), len(base)
        z = (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
        rel = mean1 / mean0 - 1
        if not policy.drift.holds(signed_change(rel, policy.direction)):
            return False, rel
        critical = critical_z(policy.confidence, policy.direction)
        return significant(z, critical, policy.direction), rel

    def count(self, policy: CountPolicy, time: float) -> Reading:
        matching = [
            e
            for e in self.events
            if e.signal == policy.signal
            and time - policy.within < e.time <= time
            and all(e.fields.get(k) == v for k, v in policy.match.items())
        ]
        return policy.count.holds(len(matching)), float(len(matching))
