"""Ratio signals (Σnum / Σden over a window) and the confidence bound that judges them."""

from __future__ import annotations

import math
from statistics import NormalDist

from policies.series import RatioSeries


def z_for(confidence: float) -> float:
    """One-sided normal quantile: a 95% bound uses z = 1.645."""
    return NormalDist().inv_cdf(confidence)


def wilson_bounds(successes: float, trials: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and keeps its
    coverage at the small counts low-traffic canaries produce (1 error in 6 requests).
    """
    if trials <= 0:
        return (0.0, 1.0)
    # Clamps as conditionals, not min()/max() calls: the same floats (NaN and -0.0 too),
    # a third of the cost on a path the live controller runs for every ratio rule.
    p = successes / trials
    p = 0.0 if p < 0.0 else 1.0 if p > 1.0 else p
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1); rounding must not turn
    # "0 errors" into a bound above 0 that would satisfy `> 0`.
    low, high = centre - half, centre + half
    low = 0.0 if p == 0 or not low > 0.0 else low
    high = 1.0 if p == 1 or not high < 1.0 else high
    return (low, high)


def window_ratio(signal: RatioSeries, start: float, end: float) -> tuple[float, float, bool]:
    """(Σnum, Σden, found) over (start, end]; found is False when either counter has no
    sample there.

    A counter with no sample is missing data, not zero: inventing a 0 for the numerator
    would report a perfect error rate for a canary whose error metric vanished. (A flag,
    not an optional tuple: compiled, a plain tuple is returned without an allocation.)
    """
    num, num_count = signal.num.window(start, end)
    den, den_count = signal.den.window(start, end)
    return num, den, num_count != 0 and den_count != 0
