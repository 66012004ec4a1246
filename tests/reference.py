"""A literal reference for the rule semantics of DESIGN.md ("Policy language"), for property tests.

Written from the definitions, not from `policies/rules`: it keeps every sample it was ever
given, in delivery order, and at every tick re-scans all of them. It is slow on purpose;
what matters is that each line can be checked against one sentence of the design:

- threshold, plain signal: the value is the newest sample in (t − staleness, t]; of several
  samples with that same newest timestamp the one delivered last wins (a re-scrape corrects);
- threshold, ratio signal: Σnum / Σden over (t − window, t]; no value when Σden < min_samples,
  when Σden is 0, or when num or den has no sample at all in the window (a missing counter is
  missing data, never a zero). With `confidence` the condition is judged on the one-sided
  Wilson score bound, z = Φ⁻¹(confidence): the lower bound for > >=, the upper for < <=; the
  reported value stays the point estimate;
- `for`: pending from the first tick t0 whose condition holds, breach at every tick with
  t − t0 ≥ for; a false condition or no value resets (Prometheus alerting rules);
- count: events of the stream with time in (t − within, t] whose fields equal every `match`
  entry; an id seen before is ignored (the first delivery wins, fields and time included);
- drift (policies/rules/drift.py docstring): baseline over [start − baseline.window, start),
  current over (t − window, t] ∩ [start, ∞); rel = p1 / p0 − 1 (p = Σnum/Σden for a ratio KPI,
  the mean for a plain signal); magnitude −rel for down, rel for up, |rel| for both; evidence
  for a ratio KPI is the pooled two-proportion z-test, for a plain signal Mann-Whitney U of
  the current samples against the baseline's (ties count ½, no tie correction), normal
  approximation; one-sided at `confidence` for up/down, two-sided for both. No value when a
  side has no samples, p0 is 0 or (ratio) the current Σden is below min_samples.

The reference only needs the validated policy models (the input format), never our rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

from policies.schema import CountPolicy, Direction, DriftPolicy, Policy, ThresholdPolicy

OK, PENDING, BREACH, NO_DATA = "ok", "pending", "breach", "no_data"
PLAIN, RATIO, EVENTS = "plain", "ratio", "events"

Sample = tuple[float, float]  # (time, value)


def holds(op: str, x: float, bound: float) -> bool:
    if op == ">":
        return x > bound
    if op == ">=":
        return x >= bound
    if op == "<":
        return x < bound
    if op == "<=":
        return x <= bound
    raise ValueError(op)


@dataclass(frozen=True)
class RefEvent:
    time: float
    id: str | None
    fields: Mapping[str, object]


@dataclass
class History:
    """Everything delivered so far, per signal, in delivery order."""

    plain: dict[str, list[Sample]] = field(default_factory=dict)
    num: dict[str, list[Sample]] = field(default_factory=dict)
    den: dict[str, list[Sample]] = field(default_factory=dict)
    events: dict[str, list[RefEvent]] = field(default_factory=dict)


# --- readings: (condition holds | None for no value, value | None) ----------------------

Reading = tuple[bool | None, float | None]


def newest(samples: Iterable[Sample], t: float, staleness: float) -> float | None:
    fresh = [(time, order, value) for order, (time, value) in enumerate(samples) if t - staleness < time <= t]
    if not fresh:
        return None
    return max(fresh)[2]  # latest time; among equal times the latest delivery


def in_window(samples: Iterable[Sample], t: float, window: float, start: float | None = None) -> list[float]:
    return [v for time, v in samples if t - window < time <= t and (start is None or time >= start)]


def in_baseline(samples: Iterable[Sample], start: float, window: float) -> list[float]:
    return [v for time, v in samples if start - window <= time < start]


def wilson(successes: float, trials: float, z: float) -> tuple[float, float]:
    """Wilson score interval. At p̂ = 0 the lower bound is exactly 0, at p̂ = 1 the upper is 1."""
    p = min(max(successes / trials, 0.0), 1.0)  # Σnum > Σden is not a proportion: judged as 1
    n = trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if p == 0 else max(0.0, centre - half)
    high = 1.0 if p == 1 else min(1.0, centre + half)
    return low, high


def threshold_reading(policy: ThresholdPolicy, kind: str, history: History, t: float) -> Reading:
    op, limit = policy.when.op, policy.when.value
    if kind == PLAIN:
        value = newest(history.plain.get(policy.signal, []), t, policy.staleness)
        if value is None:
            return None, None
        return holds(op, value, limit), value
    nums = in_window(history.num.get(policy.signal, []), t, policy.window)
    dens = in_window(history.den.get(policy.signal, []), t, policy.window)
    if not nums or not dens:
        return None, None
    num, den = math.fsum(nums), math.fsum(dens)
    if den == 0 or den < policy.min_samples:
        return None, None
    ratio = num / den
    if policy.confidence is None:
        return holds(op, ratio, limit), ratio
    low, high = wilson(num, den, NormalDist().inv_cdf(policy.confidence))
    return holds(op, low if op in (">", ">=") else high, limit), ratio


def count_reading(policy: CountPolicy, history: History, t: float) -> Reading:
    first_delivery: set[str] = set()
    counted: list[RefEvent] = []
    for event in history.events.get(policy.signal, []):
        if event.id is not None:
            if event.id in first_delivery:
                continue
            first_delivery.add(event.id)
        counted.append(event)
    n = sum(
        1
        for e in counted
        if t - policy.within < e.time <= t
        and all(k in e.fields and e.fields[k] == v for k, v in policy.match.items())
    )
    return holds(policy.count.op, n, policy.count.value), float(n)


def magnitude(rel: float, direction: Direction) -> float:
    return {Direction.DOWN: -rel, Direction.UP: rel, Direction.BOTH: abs(rel)}[direction]


def evidence(z: float, confidence: float, direction: Direction) -> bool:
    if direction is Direction.BOTH:
        return abs(z) >= NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    critical = NormalDist().inv_cdf(confidence)
    return z >= critical if direction is Direction.UP else z <= -critical


def drift_reading(policy: DriftPolicy, kind: str, history: History, t: float, start: float) -> Reading:
    if kind == RATIO:
        return _ratio_drift(policy, history, t, start)
    samples = history.plain.get(policy.signal, [])
    base = in_baseline(samples, start, policy.baseline.window)
    cur = in_window(samples, t, policy.window, start)
    if not base or not cur:
        return None, None
    mean0, mean1 = math.fsum(base) / len(base), math.fsum(cur) / len(cur)
    if mean0 == 0:
        return None, None
    rel = mean1 / mean0 - 1
    if not holds(policy.drift.op, magnitude(rel, policy.direction), policy.drift.value):
        return False, rel
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in cur for y in base)
    n1, n2 = len(cur), len(base)
    z = (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return evidence(z, policy.confidence, policy.direction), rel


def _ratio_drift(policy: DriftPolicy, history: History, t: float, start: float) -> Reading:
    num, den = history.num.get(policy.signal, []), history.den.get(policy.signal, [])
    b_num, b_den = (
        in_baseline(num, start, policy.baseline.window),
        in_baseline(den, start, policy.baseline.window),
    )
    c_num, c_den = in_window(num, t, policy.window, start), in_window(den, t, policy.window, start)
    if not (b_num and b_den and c_num and c_den):
        return None, None
    n0, d0, n1, d1 = math.fsum(b_num), math.fsum(b_den), math.fsum(c_num), math.fsum(c_den)
    if d0 <= 0 or n0 <= 0 or d1 <= 0 or d1 < policy.min_samples:
        return None, None
    p0, p1 = n0 / d0, n1 / d1
    rel = p1 / p0 - 1
    if not holds(policy.drift.op, magnitude(rel, policy.direction), policy.drift.value):
        return False, rel
    pooled = (n0 + n1) / (d0 + d1)
    variance = pooled * (1 - pooled) * (1 / d0 + 1 / d1)
    z = (p1 - p0) / math.sqrt(variance) if variance > 0 else 0.0
    return evidence(z, policy.confidence, policy.direction), rel


# --- the evaluator's twin -------------------------------------------------------------


class Reference:
    """Feed it what the evaluator is fed; `tick(t)` gives (status, value) per policy."""

    def __init__(self, policies: Iterable[Policy], *, start: float, kinds: Mapping[str, str]) -> None:
        self.policies = list(policies)
        self.start = start
        self.kinds = kinds
        self.history = History()
        self.since: dict[str, float | None] = {p.id: None for p in self.policies}

    def observe(self, signal: str, time: float, value: float) -> None:
        self.history.plain.setdefault(signal, []).append((time, value))

    def observe_ratio(self, signal: str, time: float, num: float, den: float) -> None:
        self.observe_counter(signal, "num", time, num)
        self.observe_counter(signal, "den", time, den)

    def observe_counter(self, signal: str, part: str, time: float, value: float) -> None:
        target = self.history.num if part == "num" else self.history.den
        target.setdefault(signal, []).append((time, value))

    def observe_event(self, signal: str, event: RefEvent) -> None:
        self.history.events.setdefault(signal, []).append(event)

    def reading(self, policy: Policy, t: float) -> Reading:
        if isinstance(policy, CountPolicy):
            return count_reading(policy, self.history, t)
        kind = self.kinds[policy.signal]
        if isinstance(policy, ThresholdPolicy):
            return threshold_reading(policy, kind, self.history, t)
        return drift_reading(policy, kind, self.history, t, self.start)

    def tick(self, t: float) -> list[tuple[str, float | None]]:
        out: list[tuple[str, float | None]] = []
        for policy in self.policies:
            condition, value = self.reading(policy, t)
            if not condition:
                self.since[policy.id] = None
                out.append((NO_DATA, None) if condition is None else (OK, value))
                continue
            since = self.since[policy.id]
            if since is None:
                since = self.since[policy.id] = t
            out.append((BREACH if t - since >= policy.for_ else PENDING, value))
        return out
