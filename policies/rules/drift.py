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
from statistics import NormalDist
from typing import Final

from librt.vecs import append as vec_append
from librt.vecs import vec

from policies.rules.base import NO_READING, Reading, Rule
from policies.schema import Direction, DriftPolicy
from policies.series import RatioSeries, Series, bisect_left, bisect_right

# Directions as constants: compiled, a module constant is a C variable, `Direction.DOWN` a
# lookup on the class at every tick.
DOWN: Final = Direction.DOWN
UP: Final = Direction.UP
BOTH: Final = Direction.BOTH
_NO_COUNTS: Final = (False, 0.0, 0.0, 0.0, 0.0)
_NO_STATISTICS: Final = (0.0, 0.0, 0.0, 0)


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
    __slots__ = ("baseline_window", "critical", "direction", "min_samples", "start", "window")

    def __init__(self, policy: DriftPolicy, start: float) -> None:
        super().__init__(policy, policy.drift)  # the comparison is on the change
        self.start = start
        self.window = policy.window
        self.baseline_window = policy.baseline.window
        self.direction = policy.direction
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
    __slots__ = ("baseline_den", "baseline_num", "has_baseline", "signal")

    def __init__(self, policy: DriftPolicy, signal: RatioSeries, start: float) -> None:
        super().__init__(policy, start)
        self.signal = signal
        self.has_baseline = False  # frozen once found: (Σnum, Σden) before the start
        self.baseline_num = self.baseline_den = 0.0

    def _find_baseline(self) -> bool:
        num, den = self.signal
        (a, b), (c, d) = self.baseline_range(num), self.baseline_range(den)
        if b > a and d > c:
            self.baseline_num, self.baseline_den = num.total(a, b), den.total(c, d)
            self.has_baseline = True
        return self.has_baseline

    def counts(self, time: float) -> tuple[bool, float, float, float, float]:
        """(found, n0, d0, n1, d1): baseline and current counts; found is False when either
        is missing or below min_samples. A flag rather than an optional tuple: compiled,
        a plain tuple of floats is returned without allocating."""
        if not self.has_baseline and not self._find_baseline():
            return _NO_COUNTS
        # One statement each: a tuple of tuples on the right would be built as objects.
        n1, num_count = self.current_window(self.signal.num, time)
        d1, den_count = self.current_window(self.signal.den, time)
        if num_count == 0 or den_count == 0:
            return _NO_COUNTS
        n0, d0 = self.baseline_num, self.baseline_den
        if d0 <= 0 or n0 <= 0 or d1 <= 0 or d1 < self.min_samples:
            return _NO_COUNTS
        return True, n0, d0, n1, d1

    def read(self, time: float) -> Reading:
        found, n0, d0, n1, d1 = self.counts(time)
        if not found:
            return NO_READING
        rel = (n1 / d1) / (n0 / d0) - 1
        if not self.holds(signed_change(rel, self.direction)):
            return True, False, rel
        z = two_proportion_z(n0, d0, n1, d1)
        return True, significant(z, self.critical, self.direction), rel

    def describe(self, time: float) -> str:
        found, n0, d0, n1, d1 = self.counts(time)
        if not found:
            return "no baseline or no current data"
        z = two_proportion_z(n0, d0, n1, d1)
        rel = (n1 / d1) / (n0 / d0) - 1
        return (
            f"{n1:g}/{d1:g} = {n1 / d1:.4g} vs baseline {n0:g}/{d0:g} = {n0 / d0:.4g} "
            f"({rel:+.1%}, z = {z:.2f}, needs |z| ≥ {self.critical:.2f})"
        )


class PlainDrift(_DriftBase):
    """Mann-Whitney U of the current window against the frozen baseline.

    Each sample from the rollout start on is ranked once against the sorted baseline;
    `rank_sums` holds their running sum by the series' own (absolute) sample index, so the
    U of the current window is a difference of two entries at the indices of the window
    the mean already needs: no second series of ranks, no second window search.
    """

    __slots__ = (
        "baseline_mean",
        "late_seen",
        "rank_origin",
        "rank_sums",
        "rank_total",
        "ranked",
        "series",
        "sorted_baseline",
    )

    def __init__(self, policy: DriftPolicy, series: Series, start: float) -> None:
        super().__init__(policy, start)
        self.series = series
        # Empty until the baseline is found (it then has at least one sample). Not an
        # optional vec: compiled, that would be a boxed object to unwrap at every read.
        self.sorted_baseline: vec[float] = vec[float]()
        self.baseline_mean = 0.0
        # rank_sums[k] = Σ ranks (baseline values below, +½ per tie) of the samples with
        # absolute index rank_origin … rank_origin + k − 1; origin -1 until the first rank.
        self.rank_sums: vec[float] = vec[float]([0.0])
        self.rank_origin = -1
        self.rank_total = 0.0  # rank_sums[-1]
        self.ranked = 0  # absolute index of the next sample of `series` to rank
        self.late_seen = 0  # series.late when ranked; a late insert shifts indices: re-rank

    def _rank_new_samples(self, end: int) -> None:
        baseline = self.sorted_baseline
        series, sums = self.series, self.rank_sums
        first = self.ranked - series.dropped  # below `end`: the caller checked
        last = len(series.times) - 1  # live, the one new sample: read beside the vecs
        if first < 0 or (series.last_time if first == last else series.times[first]) < self.start:
            first = max(first, series.before(self.start))  # ranks begin at the rollout start
        if self.rank_origin < 0:
            self.rank_origin = first + series.dropped
        elif first + series.dropped > self.ranked:  # samples forgotten unranked: they add 0
            for _ in range(first + series.dropped - self.ranked):
                sums = vec_append(sums, self.rank_total)
        size = len(baseline)
        total = self.rank_total
        for index in range(first, end):
            value = series.last_value if index == last else series.values[index]
            below = bisect_left(baseline, value, 0, size)
            # Ties with the baseline are rare on continuous data: only then search again.
            tied = below < size and baseline[below] == value
            upto = bisect_right(baseline, value, below, size) if tied else below
            total += below + (upto - below) / 2
            sums = vec_append(sums, total)
        self.rank_sums = sums
        self.rank_total = total
        self.ranked = series.dropped + max(end, first)

    def _rank_total(self, begin: int, end: int) -> float:
        """Σ ranks of the samples with absolute index in [begin, end) (all ranked)."""
        sums, origin = self.rank_sums, self.rank_origin
        return sums[max(end - origin, 0)] - sums[max(begin - origin, 0)]

    def statistics(self, time: float) -> tuple[float, float, float, int]:
        """(baseline mean, current mean, U z-score, current count); the count is 0 when
        there is no baseline or no current sample (a flag, not an optional tuple: see
        `RatioDrift.counts`)."""
        series = self.series
        if len(self.sorted_baseline) == 0:
            a, b = self.baseline_range(series)
            if b == a:
                return _NO_STATISTICS
            ordered = sorted(series.values[a:b])
            self.sorted_baseline = vec[float](ordered)
            self.baseline_mean = math.fsum(ordered) / (b - a)
        end = series.upto(time)
        if series.late != self.late_seen:
            self.rank_sums, self.rank_origin, self.rank_total, self.ranked = vec[float]([0.0]), -1, 0.0, 0
            self.late_seen = series.late
        if end > self.ranked - series.dropped:
            self._rank_new_samples(end)
        total, n1 = self.current_window(series, time)
        n2 = len(self.sorted_baseline)
        if n1 == 0:
            return _NO_STATISTICS
        mean1 = total / n1
        u = self._rank_total(series.dropped + end - n1, series.dropped + end)
        sigma = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
        return self.baseline_mean, mean1, (u - n1 * n2 / 2) / sigma, n1

    def read(self, time: float) -> Reading:
        mean0, mean1, z, n1 = self.statistics(time)
        # min_samples on a plain signal counts the current window's samples (it used to be
        # silently ignored here, while the ratio drift honoured it).
        if n1 == 0 or mean0 == 0 or n1 < self.min_samples:
            return NO_READING
        rel = mean1 / mean0 - 1
        if not self.holds(signed_change(rel, self.direction)):
            return True, False, rel
        return True, significant(z, self.critical, self.direction), rel

    def describe(self, time: float) -> str:
        mean0, mean1, z, n1 = self.statistics(time)
        if n1 == 0:
            return "no baseline or no current data"
        return f"mean {mean1:.4g} over {n1:g} samples vs baseline {mean0:.4g} (U z = {z:.2f})"

    def forget_through(self, time: float) -> None:
        """Drop the ranks of samples the series has forgotten (no window reaches them), in
        batches like `Series.forget_through`; `time` is implied by what the series kept."""
        drop = self.series.dropped - self.rank_origin
        if self.rank_origin >= 0 and drop >= 16 and drop * 5 >= len(self.rank_sums):
            self.rank_sums = self.rank_sums[drop:]
            self.rank_origin += drop
