"""`drift`: the current window against the hour (or so) before the rollout started.

A breach needs magnitude AND evidence (DESIGN.md): the relative change must exceed the
bound in the rule's direction, and the change must be statistically significant at the
rule's `confidence`, so that low-volume noise is never read as a regression.

- Ratio KPIs (conversions/sessions): one-sided two-proportion z-test with pooled variance
  on the window counts (two-sided at the same confidence for `direction: both`).
- Plain signals (a latency, a queue depth): Mann-Whitney U of the current window's samples
  against the baseline's, normal approximation without tie correction (which only makes
  it more conservative). Each sample's rank against the frozen baseline is computed once,
  so the window's U is a difference of running sums like every other window here.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from statistics import NormalDist
from typing import Final

from policies.rules.base import NO_READING, Bound, Reading, Rule
from policies.schema import Direction, DriftPolicy
from policies.series import RatioSeries, Series

# Directions as constants: compiled, a module constant is a C variable, `Direction.DOWN` a
# lookup on the class at every tick.
DOWN: Final = Direction.DOWN
UP: Final = Direction.UP
BOTH: Final = Direction.BOTH


def critical_z(confidence: float, direction: Direction) -> float:
    tail = 1 - confidence
    if direction is BOTH:
        tail /= 2
    return NormalDist().inv_cdf(1 - tail)


def signed_change(rel: float, direction: Direction) -> float:
    """The change as the rule's direction reads it: a 12% drop is +0.12 for `down`."""
    if direction is DOWN:
        return -rel
    if direction is UP:
        return rel
    return abs(rel)


def significant(z: float, critical: float, direction: Direction) -> bool:
    if direction is DOWN:
        return z <= -critical
    if direction is UP:
        return z >= critical
    return abs(z) >= critical


def two_proportion_z(n0: float, d0: float, n1: float, d1: float) -> float:
    pooled = (n0 + n1) / (d0 + d1)
    variance = pooled * (1 - pooled) * (1 / d0 + 1 / d1)
    if variance <= 0:
        return 0.0
    return (n1 / d1 - n0 / d0) / math.sqrt(variance)


class _DriftBase(Rule):
    __slots__ = ("baseline_window", "critical", "direction", "exceeds", "min_samples", "start", "window")

    def __init__(self, policy: DriftPolicy, start: float) -> None:
        super().__init__(policy)
        self.start = start
        self.window = policy.window
        self.baseline_window = policy.baseline.window
        self.direction = policy.direction
        self.exceeds = Bound(policy.drift)
        self.critical = critical_z(policy.confidence, policy.direction)
        self.min_samples = policy.min_samples

    def retention(self) -> float:
        return self.window

    def current_range(self, series: Series, time: float) -> tuple[int, int]:
        """Indices of samples in (time − window, time] that are not before the start."""
        end = series.upto(time)
        begin = min(series.after(time - self.window), end)
        if time - self.window < self.start:  # only then can the start cut the window
            begin = max(begin, series.before(self.start))
        return begin, max(begin, end)

    def current_window(self, series: Series, time: float) -> tuple[float, int]:
        """(sum, count) of the samples `current_range` names."""
        if time - self.window >= self.start:  # the usual case: a plain window query
            return series.window(time - self.window, time)
        begin, end = self.current_range(series, time)
        return series.total(begin, end), end - begin

    def baseline_range(self, series: Series) -> tuple[int, int]:
        return series.before(self.start - self.baseline_window), series.before(self.start)


class RatioDrift(_DriftBase):
    __slots__ = ("baseline", "signal")

    def __init__(self, policy: DriftPolicy, signal: RatioSeries, start: float) -> None:
        super().__init__(policy, start)
        self.signal = signal
        self.baseline: tuple[float, float] | None = None

    def _baseline(self) -> tuple[float, float] | None:
        if self.baseline is None:
            num, den = self.signal
            (a, b), (c, d) = self.baseline_range(num), self.baseline_range(den)
            if b > a and d > c:
                self.baseline = (num.total(a, b), den.total(c, d))
        return self.baseline

    def counts(self, time: float) -> tuple[float, float, float, float] | None:
        baseline = self._baseline()
        if baseline is None:
            return None
        num, den = self.signal
        (n1, num_count), (d1, den_count) = self.current_window(num, time), self.current_window(den, time)
        if num_count == 0 or den_count == 0:
            return None
        n0, d0 = baseline
        if d0 <= 0 or n0 <= 0 or d1 <= 0 or d1 < self.min_samples:
            return None
        return n0, d0, n1, d1

    def read(self, time: float) -> Reading:
        counts = self.counts(time)
        if counts is None:
            return NO_READING
        n0, d0, n1, d1 = counts
        rel = (n1 / d1) / (n0 / d0) - 1
        if not self.exceeds.holds(signed_change(rel, self.direction)):
            return False, rel
        z = two_proportion_z(n0, d0, n1, d1)
        return significant(z, self.critical, self.direction), rel

    def describe(self, time: float) -> str:
        counts = self.counts(time)
        if counts is None:
            return "no baseline or no current data"
        n0, d0, n1, d1 = counts
        z = two_proportion_z(n0, d0, n1, d1)
        rel = (n1 / d1) / (n0 / d0) - 1
        return (
            f"{n1:g}/{d1:g} = {n1 / d1:.4g} vs baseline {n0:g}/{d0:g} = {n0 / d0:.4g} "
            f"({rel:+.1%}, z = {z:.2f}, needs |z| ≥ {self.critical:.2f})"
        )


class PlainDrift(_DriftBase):
    __slots__ = ("baseline_mean", "late_seen", "ranked", "ranks", "series", "sorted_baseline")

    def __init__(self, policy: DriftPolicy, series: Series, start: float) -> None:
        super().__init__(policy, start)
        self.series = series
        self.sorted_baseline: array[float] | None = None
        self.baseline_mean = 0.0
        self.ranks = Series()  # per current sample: baseline values below it (+½ per tie)
        self.ranked = 0  # absolute index of the next sample of `series` to rank
        self.late_seen = 0  # series.late when ranked; a late insert shifts indices: re-rank

    def _rank_new_samples(self, end: int) -> None:
        baseline = self.sorted_baseline
        assert baseline is not None
        series, ranks = self.series, self.ranks
        first = self.ranked - series.dropped  # below `end`: the caller checked
        last = len(series.times) - 1  # live, the one new sample: read beside the arrays
        if first < 0 or (series.last_time if first == last else series.times[first]) < self.start:
            first = max(first, series.before(self.start))  # ranks begin at the rollout start
        size = len(baseline)
        for index in range(first, end):
            if index == last:
                time, value = series.last_time, series.last_value
            else:
                time, value = series.times[index], series.values[index]
            below = bisect_left(baseline, value)
            # Ties with the baseline are rare on continuous data: only then search again.
            tied = below < size and baseline[below] == value
            upto = bisect_right(baseline, value, below) if tied else below
            ranks.append(time, below + (upto - below) / 2)
        self.ranked = series.dropped + max(end, first)

    def statistics(self, time: float) -> tuple[float, float, float, float] | None:
        """(baseline mean, current mean, U z-score, current count) or None."""
        series = self.series
        if self.sorted_baseline is None:
            a, b = self.baseline_range(series)
            if b == a:
                return None
            self.sorted_baseline = array("d", sorted(series.values[a:b]))
            self.baseline_mean = math.fsum(self.sorted_baseline) / (b - a)
        end = series.upto(time)
        if series.late != self.late_seen:
            self.ranks, self.ranked, self.late_seen = Series(), 0, series.late
        if end > self.ranked - series.dropped:
            self._rank_new_samples(end)
        total, n1 = self.current_window(series, time)
        n2 = len(self.sorted_baseline)
        if n1 == 0:
            return None
        mean1 = total / n1
        u, _ = self.ranks.window(time - self.window, time)
        sigma = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
        return self.baseline_mean, mean1, (u - n1 * n2 / 2) / sigma, n1

    def read(self, time: float) -> Reading:
        stats = self.statistics(time)
        # min_samples on a plain signal counts the current window's samples (it used to be
        # silently ignored here, while the ratio drift honoured it).
        if stats is None or stats[0] == 0 or stats[3] < self.min_samples:
            return NO_READING
        mean0, mean1, z, _ = stats
        rel = mean1 / mean0 - 1
        if not self.exceeds.holds(signed_change(rel, self.direction)):
            return False, rel
        return significant(z, self.critical, self.direction), rel

    def describe(self, time: float) -> str:
        stats = self.statistics(time)
        if stats is None:
            return "no baseline or no current data"
        mean0, mean1, z, n1 = stats
        return f"mean {mean1:.4g} over {n1:g} samples vs baseline {mean0:.4g} (U z = {z:.2f})"

    def forget_through(self, time: float) -> None:
        self.ranks.forget_through(time)
