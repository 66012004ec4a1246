"""`when` + `for` on a plain signal (newest sample within staleness) or a ratio signal."""

from __future__ import annotations

from policies.rules.base import NO_READING, Reading, Rule
from policies.rules.ratio import wilson_bounds, window_ratio, z_for
from policies.schema import ThresholdPolicy
from policies.series import RatioSeries, Series


class PlainThreshold(Rule):
    __slots__ = ("series", "staleness")

    def __init__(self, policy: ThresholdPolicy, series: Series) -> None:
        super().__init__(policy, policy.when)
        self.series = series
        self.staleness = policy.staleness

    def read(self, time: float) -> Reading:
        found, value = self.series.latest(time, self.staleness)
        if not found:
            return NO_READING
        return True, self.holds(value), value

    def describe(self, time: float) -> str:
        found, value = self.series.latest(time, self.staleness)
        return f"{value:g}" if found else "no sample within staleness"

    def retention(self) -> float:
        return self.staleness


class RatioThreshold(Rule):
    """Σnum/Σden over (t − window, t]; below `min_samples` of Σden there is no value.

    With `confidence`, the condition is judged on the Wilson bound on the side that makes
    the claim hardest to make: the lower bound for `>`/`>=`, the upper for `<`/`<=`.
    """

    __slots__ = ("confidence", "min_samples", "signal", "upper", "window", "z")

    def __init__(self, policy: ThresholdPolicy, signal: RatioSeries) -> None:
        super().__init__(policy, policy.when)
        self.signal = signal
        self.window = policy.window
        self.min_samples = policy.min_samples
        self.confidence = policy.confidence
        # z = 0 stands for "no confidence bound" (a real bound has z > 0): a plain float,
        # not an optional one, so that compiled it stays a C double.
        self.z = z_for(policy.confidence) if policy.confidence is not None else 0.0
        self.upper = policy.when.op in ("<", "<=")

    def read(self, time: float) -> Reading:
        num, den, found = window_ratio(self.signal, time - self.window, time)
        if not found:
            return NO_READING
        if den <= 0 or den < self.min_samples:
            return NO_READING
        ratio = num / den
        if self.z == 0.0:
            return True, self.holds(ratio), ratio
        low, high = wilson_bounds(num, den, self.z)
        return True, self.holds(high if self.upper else low), ratio

    def describe(self, time: float) -> str:
        num, den, found = window_ratio(self.signal, time - self.window, time)
        if not found:
            return "no samples in the window"
        if den <= 0 or den < self.min_samples:
            return f"{den:g} in the window, fewer than min_samples {self.min_samples:g}"
        text = f"{num:g}/{den:g} = {num / den:.4g}"
        if self.z != 0.0:
            low, high = wilson_bounds(num, den, self.z)
            side, bound = ("upper", high) if self.upper else ("lower", low)
            text += f", {side} {self.confidence:g} bound {bound:.4g}"
        return text

    def retention(self) -> float:
        return self.window
