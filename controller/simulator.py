"""A seeded release simulator: realistic signals for healthy and regressed releases.

It produces exactly what the replay source reads (samples per 30 s scrape, incident
events), with the artefacts that fool naive policies: diurnal traffic from a few requests
to thousands per scrape, overdispersed error rates, noisy conversion, one-scrape latency
spikes, scrape gaps, background incidents and duplicated incident deliveries. Pure: all
randomness comes from `random.Random(seed)`; no clock, no I/O.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from adapters.sources.replay import ReplayData
from policies.series import Event

RegressionKind = Literal["error_rate", "latency", "conversion", "incidents"]
DAY = 86400.0


@dataclass(frozen=True)
class Regression:
    """A fault that starts `onset` seconds after the rollout start.

    `size`: error_rate → the faulty error ratio (0.15 = 15%); latency → the p95 in seconds;
    conversion → the relative drop (0.2 = 20% fewer conversions); incidents → how many
    high-severity incidents arrive within `spread` seconds.
    """

    kind: RegressionKind
    onset: float
    size: float
    spread: float = 1800.0


@dataclass(frozen=True)
class ReleaseSpec:
    seed: int
    peak_requests: float = 500.0  # per scrape at the diurnal peak; the trough is 1/10 of it
    duration: float = 2 * 3600.0  # after the rollout start
    history: float = 3600.0  # samples before the start (the drift baseline)
    step: float = 30.0
    start: float = 1_790_000_000.0
    regressions: tuple[Regression, ...] = ()
    error_ratio: float = 0.01
    error_dispersion: float = 2000.0  # Beta concentration of the per-scrape error ratio
    latency_p95: float = 4.0
    conversion: float = 0.04
    background_incidents_per_hour: float = 0.1
    duplicate_delivery: float = 0.3
    gap_chance: float = 0.01  # per scrape, a gap of 1–6 scrapes starts
    spike_chance: float = 0.01  # per scrape, a one-scrape latency spike


@dataclass
class Scenario:
    spec: ReleaseSpec
    data: ReplayData = field(default_factory=ReplayData)

    @property
    def start(self) -> float:
        return self.spec.start

    def onset(self, kind: RegressionKind) -> float | None:
        for regression in self.spec.regressions:
            if regression.kind == kind:
                return self.spec.start + regression.onset
        return None


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n > 100:
        mean, sd = n * p, math.sqrt(n * p * (1 - p))
        return min(n, max(0, round(rng.gauss(mean, sd))))
    return sum(1 for _ in range(n) if rng.random() < p)


def _traffic(spec: ReleaseSpec, phase: float, time: float) -> float:
    daily = 0.5 + 0.5 * math.sin(2 * math.pi * (time + phase) / DAY)
    return spec.peak_requests * (0.1 + 0.9 * daily)


def _active(spec: ReleaseSpec, kind: RegressionKind, time: float) -> Regression | None:
    for regression in spec.regressions:
        if regression.kind == kind and time >= spec.start + regression.onset:
            return regression
    return None


def simulate(spec: ReleaseSpec) -> Scenario:
    rng = random.Random(spec.seed)
    phase = rng.uniform(0, DAY)
    scenario = Scenario(spec)
    columns = scenario.data.columns
    gap_left = 0
    steps = round((spec.history + spec.duration) / spec.step)
    for index in range(steps + 1):
        time = spec.start - spec.history + index * spec.step
        if gap_left == 0 and rng.random() < spec.gap_chance:
            gap_left = rng.randint(1, 6)
        if gap_left:
            gap_left -= 1
            rng.random()  # keep the stream aligned across specs that differ only in gaps
            continue
        for name, value in _scrape(spec, rng, phase, time).items():
            times, values = columns.setdefault(name, ([], []))
            times.append(time)
            values.append(value)
    scenario.data.events.extend(_incidents(spec, rng))
    return scenario


def _scrape(spec: ReleaseSpec, rng: random.Random, phase: float, time: float) -> dict[str, float]:
    requests = _poisson(rng, _traffic(spec, phase, time))
    error = _active(spec, "error_rate", time)
    base = spec.error_ratio
    alpha = base * spec.error_dispersion
    ratio = rng.betavariate(alpha, spec.error_dispersion - alpha) if alpha > 0 else 0.0
    if error is not None:
        ratio = max(ratio, error.size * ratio / base) if base > 0 else error.size
    errors = _binomial(rng, requests, min(ratio, 1.0))
    sessions = _poisson(rng, requests / 4)
    drop = _active(spec, "conversion", time)
    conversion = spec.conversion * (1 - drop.size if drop else 1.0)
    conversions = _binomial(rng, sessions, conversion)
    latency = _latency(spec, rng, requests, time)
    webhooks = _poisson(rng, requests / 10)
    return {
        "error_rate:num": float(errors),
        "error_rate:den": float(requests),
        "checkout_conversion:num": float(conversions),
        "checkout_conversion:den": float(sessions),
        "latency_p95": latency,
        "queue_p95": 0.12 * math.exp(rng.gauss(0, 0.15)),
        "webhook_5xx_ratio:num": float(_binomial(rng, webhooks, 0.002)),
        "webhook_5xx_ratio:den": float(webhooks),
        "db_connection_utilization": min(1.0, max(0.0, rng.gauss(0.45, 0.05))),
        "worker_backlog": float(max(0, round(rng.gauss(60, 15)))),
        "worker_oldest_pending_minutes": max(0.0, rng.gauss(2.0, 0.6)),
        "lcp_p75": 2.0 * math.exp(rng.gauss(0, 0.08)),
    }


def _latency(spec: ReleaseSpec, rng: random.Random, requests: int, time: float) -> float:
    # A p95 over few requests is itself noisy: the spread shrinks with traffic.
    spread = 0.08 + 0.6 / math.sqrt(max(requests, 1))
    value = spec.latency_p95 * math.exp(rng.gauss(0, spread))
    regression = _active(spec, "latency", time)
    if regression is not None:
        value *= regression.size / spec.latency_p95
    if rng.random() < spec.spike_chance:
        value *= rng.uniform(3, 8)  # one slow scrape: GC pause, cold cache
    return value


def _incidents(spec: ReleaseSpec, rng: random.Random) -> list[Event]:
    events: list[Event] = []
    begin, end = spec.start - spec.history, spec.start + spec.duration
    rate = spec.background_incidents_per_hour / 3600
    time, serial = begin, 0
    while rate > 0:
        time += rng.expovariate(rate)
        if time > end:
            break
        serial += 1
        events.append(_incident(f"bg-{spec.seed}-{serial}", time, "high"))
        serial += 1
        events.append(_incident(f"low-{spec.seed}-{serial}", time + rng.uniform(0, 900), "low"))
    for regression in spec.regressions:
        if regression.kind != "incidents":
            continue
        for number in range(round(regression.size)):
            at = spec.start + regression.onset + rng.uniform(0, regression.spread) * (number > 0)
            events.append(_incident(f"reg-{spec.seed}-{number}", at, "high"))
    deliveries = []
    for event in events:
        deliveries.append(event)
        if rng.random() < spec.duplicate_delivery:  # webhooks are delivered at least once
            deliveries.append(event._replace(time=event.time + rng.uniform(1, 120)))
    deliveries.sort(key=lambda e: e.time)
    return [e for e in deliveries if e.time <= end]


def _incident(ident: str, time: float, severity: str) -> Event:
    return Event(time, "incidents", ident, {"severity": severity})


def demo_spec() -> ReleaseSpec:
    """The demo's story: p95 latency degrades 40 minutes in, errors follow at 70 minutes."""
    return ReleaseSpec(
        seed=7,
        peak_requests=400.0,
        duration=100 * 60.0,
        regressions=(
            Regression("latency", onset=40 * 60.0, size=26.0),
            Regression("error_rate", onset=70 * 60.0, size=0.14),
        ),
        gap_chance=0.0,
        spike_chance=0.01,
    )
