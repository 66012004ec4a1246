"""A seeded release simulator: realistic signals for healthy and regressed releases.

It produces exactly what the replay source reads (samples per 30 s scrape, incident
events), with the artefacts that fool naive policies:

- traffic: a diurnal cycle (a sinusoid plus a harmonic, trough at `trough_ratio` of the
  peak) with slow AR(1) noise and Poisson arrivals; across specs from a few requests to
  thousands per scrape, with near-empty nights at the low end;
- errors: overdispersed (the per-scrape error ratio is Beta-distributed with concentration
  `error_dispersion`), plus optional dependency blips (30 s – 2 min of 5–50% errors, at
  least 10 minutes apart: two blips closer than that would, by the runbook's own
  definition, be an error-rate regression, not a healthy release);
- latency: requests fall into classic histogram buckets; `latency_p95` is what
  `histogram_quantile(0.95, sum by (le) (rate(bucket[5m])))` returns — Prometheus'
  interpolation, sampling noise that grows as traffic shrinks, bucket artefacts. A stall
  (GC pause) slows one scrape's requests and so lifts the p95 for the whole query window;
  a one-tick spike is a single outlying sample of a plain signal (a glitchy scrape);
- conversion: orders / checkout sessions, overdispersed, with a slow wander of a couple of
  percent around its mean;
- scrape gaps (1–6 scrapes, rarely a target missing for up to 10 minutes);
- incidents: background high-severity incidents (Poisson, optionally clustered Hawkes-
  style), more frequent low-severity ones, and at-least-once delivery (duplicates carry
  the same id, delivered up to two minutes later).

Regressions change the latent process from `onset` on; `Scenario.latent` keeps the
noise-free values (mean error ratio, true p95, mean conversion, expected requests) so a
study can score against truth rather than against what the telemetry happened to show.

Pure: every random draw comes from `random.Random` streams seeded from the spec's seed and
the component's name (independent streams, so a spec that differs only in a regression
has the very same noise until the onset). No clock, no I/O.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Literal

from adapters.sources.replay import ReplayData
from policies.series import Event

RegressionKind = Literal["error_rate", "latency", "conversion", "incidents"]
REGRESSION_KINDS: tuple[RegressionKind, ...] = ("error_rate", "latency", "conversion", "incidents")
Volume = Literal["low", "mid", "high"]
DAY = 86400.0

# Upper bounds (le) of the latency histogram's buckets, seconds; +Inf is implied.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 120.0,
)  # fmt: skip
_Z95 = 1.6448536269514722  # standard normal 0.95 quantile


@dataclass(frozen=True)
class Regression:
    """A fault that starts `onset` seconds after the rollout start.

    `size`: error_rate → the faulty error ratio (0.15 = 15%); latency → the p95 in seconds;
    conversion → the relative drop (0.2 = 20% fewer conversions); incidents → how many
    high-severity incidents arrive, the first at the onset and the rest within `spread`
    seconds after it.
    """

    kind: RegressionKind
    onset: float
    size: float
    spread: float = 1800.0


@dataclass(frozen=True)
class ReleaseSpec:
    seed: int
    peak_requests: float = 500.0  # per scrape at the diurnal peak
    trough_ratio: float = 0.1  # the diurnal trough as a fraction of the peak
    duration: float = 2 * 3600.0  # after the rollout start
    history: float = 2 * 3600.0  # samples before the start (the drift baseline)
    step: float = 30.0
    start: float = 1_790_000_000.0
    regressions: tuple[Regression, ...] = ()
    error_ratio: float = 0.01
    error_dispersion: float = 2000.0  # Beta concentration of the per-scrape error ratio
    blip_chance: float = 0.0  # per scrape, a 30 s – 2 min dependency blip (5–50% errors) starts
    blip_spacing: float = 600.0  # a blip never starts sooner than this after the last one
    latency_p95: float = 4.0  # the true p95 of a single request's latency, seconds
    latency_sigma: float = 0.5  # log-spread of a single request's latency (lognormal)
    latency_window: float = 300.0  # the p95 query's rate window
    stall_chance: float = 0.002  # per scrape, a stall slows that scrape's requests 3–8×
    conversion: float = 0.3  # orders per checkout session
    sessions_per_request: float = 0.2
    conversion_dispersion: float = 3000.0  # Beta concentration of the per-scrape conversion
    conversion_wander: float = 0.02  # amplitude of the slow relative wander of conversion
    background_incidents_per_hour: float = 0.05  # high severity (about 1.2 a day)
    incident_clustering: float = 0.0  # mean follow-ups each background incident triggers
    low_severity_per_hour: float = 1.0
    duplicate_delivery: float = 0.3
    gap_chance: float = 0.01  # per scrape, a gap of 1–6 scrapes starts
    long_gap_chance: float = 0.0005  # per scrape, a target goes missing for 2–10 minutes
    spike_chance: float = 0.01  # per scrape, a one-sample outlier in each plain signal


@dataclass
class Scenario:
    spec: ReleaseSpec
    data: ReplayData = field(default_factory=ReplayData)
    # Noise-free per-scrape truth: requests (expected), error_ratio, latency_p95, conversion.
    latent: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return self.spec.start

    @property
    def end(self) -> float:
        return self.spec.start + self.spec.duration

    def onset(self, kind: RegressionKind) -> float | None:
        for regression in self.spec.regressions:
            if regression.kind == kind:
                return self.spec.start + regression.onset
        return None


# --- random variates (stdlib `random` has no binomial before 3.12) --------------------------


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
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
    if p > 0.5:
        return n - _binomial(rng, n, 1 - p)
    mean = n * p
    if mean > 40:
        sd = math.sqrt(mean * (1 - p))
        return min(n, max(0, round(rng.gauss(mean, sd))))
    # Inversion: walk the pmf from 0; expected cost O(np).
    u = rng.random()
    prob = (1 - p) ** n
    if prob <= 0:  # underflow guard; unreachable for mean <= 40 in practice
        return round(mean)
    odds, k, cdf = p / (1 - p), 0, prob
    while u > cdf and k < n:
        prob *= odds * (n - k) / (k + 1)
        k += 1
        cdf += prob
    return k


def _beta_mean(rng: random.Random, mean: float, concentration: float) -> float:
    """A Beta draw with the given mean and concentration (a + b); exact mean when infinite."""
    if mean <= 0 or mean >= 1 or not math.isfinite(concentration):
        return min(max(mean, 0.0), 1.0)
    return rng.betavariate(mean * concentration, (1 - mean) * concentration)


# --- the latent process ----------------------------------------------------------------------


class _Traffic:
    """Expected requests per scrape: diurnal shape × slow AR(1) log-noise."""

    def __init__(self, spec: ReleaseSpec) -> None:
        rng = random.Random(f"{spec.seed}:traffic-shape")
        self.spec = spec
        self.phase = rng.uniform(0, DAY)
        self.harmonic = rng.uniform(0, 0.3)
        self.noise = 0.0
        self.rng = random.Random(f"{spec.seed}:traffic-noise")

    def expected(self, time: float) -> float:
        angle = 2 * math.pi * (time + self.phase) / DAY
        shape = math.sin(angle) + self.harmonic * math.sin(2 * angle)
        daily = (shape + 1 + self.harmonic) / (2 + 2 * self.harmonic)  # in [0, 1]
        daily = min(max(daily, 0.0), 1.0)
        spec = self.spec
        base = spec.peak_requests * (spec.trough_ratio + (1 - spec.trough_ratio) * daily)
        self.noise = 0.97 * self.noise + self.rng.gauss(0, 0.03)  # AR(1): sd ≈ 0.12, ~15 min memory
        return base * math.exp(self.noise)


def _active(spec: ReleaseSpec, kind: RegressionKind, time: float) -> Regression | None:
    for regression in spec.regressions:
        if regression.kind == kind and time >= spec.start + regression.onset:
            return regression
    return None


class _Latency:
    """Per-scrape histogram bucket counts and the windowed `histogram_quantile` over them."""

    def __init__(self, spec: ReleaseSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:latency")
        self.window = max(1, round(spec.latency_window / spec.step))
        self.recent: list[list[int]] = []

    def true_p95(self, time: float) -> float:
        regression = _active(self.spec, "latency", time)
        return regression.size if regression is not None else self.spec.latency_p95

    def scrape(self, requests: int, time: float) -> float | None:
        """Add this scrape's requests; the p95 over the query window (None: no requests)."""
        sigma = self.spec.latency_sigma
        mu = math.log(self.true_p95(time)) - _Z95 * sigma
        if self.rng.random() < self.spec.stall_chance:
            mu += math.log(self.rng.uniform(3, 8))  # a stall: this scrape's requests all slow
        counts, left, mass_left = [], requests, 1.0
        previous = 0.0
        for bound in LATENCY_BUCKETS:
            cdf = _normal_cdf((math.log(bound) - mu) / sigma)
            mass = cdf - previous
            previous = cdf
            share = mass / mass_left if mass_left > 0 else 1.0
            count = _binomial(self.rng, left, min(max(share, 0.0), 1.0))
            counts.append(count)
            left -= count
            mass_left -= mass
        counts.append(left)  # +Inf
        self.recent.append(counts)
        if len(self.recent) > self.window:
            self.recent.pop(0)
        total = [sum(column) for column in zip(*self.recent, strict=True)]
        return histogram_quantile(0.95, total)


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def histogram_quantile(q: float, counts: list[int]) -> float | None:
    """Prometheus' histogram_quantile over per-bucket (not cumulative) counts, +Inf last.

    The rank q·total is located in its bucket and interpolated linearly between the
    bucket's bounds (the first bucket's lower bound is 0); a rank in +Inf returns the
    highest finite bound. No observations: None (Prometheus returns NaN, i.e. no sample).
    """
    total = sum(counts)
    if total == 0:
        return None
    rank, below = q * total, 0
    for index, count in enumerate(counts[:-1]):
        if below + count >= rank and count > 0:
            lower = LATENCY_BUCKETS[index - 1] if index else 0.0
            upper = LATENCY_BUCKETS[index]
            return lower + (upper - lower) * (rank - below) / count
        below += count
    return LATENCY_BUCKETS[-1]


# --- the scrape loop ----------------------------------------------------------------------------


class _Errors:
    """Errors per scrape: an overdispersed draw around the latent ratio, or a blip."""

    def __init__(self, spec: ReleaseSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:errors")
        self.blips = random.Random(f"{spec.seed}:blips")
        self.left, self.level, self.ended = 0, 0.0, -math.inf

    def scrape(self, requests: int, time: float) -> tuple[int, float]:
        """(errors, latent error ratio) of one scrape."""
        spec = self.spec
        error = _active(spec, "error_rate", time)
        mean = error.size if error is not None else spec.error_ratio
        ratio = _beta_mean(self.rng, mean, spec.error_dispersion)
        starts = self.blips.random() < spec.blip_chance
        if self.left == 0 and starts and time - self.ended >= spec.blip_spacing:
            self.left, self.level = self.blips.randint(1, 4), self.blips.uniform(0.05, 0.5)
        if self.left:
            self.left -= 1
            ratio, mean = max(ratio, self.level), max(mean, self.level)
            self.ended = time + spec.step
        return _binomial(self.rng, requests, ratio), mean


class _Conversion:
    """Orders / checkout sessions around a slowly wandering, overdispersed mean."""

    def __init__(self, spec: ReleaseSpec) -> None:
        self.spec = spec
        self.phase = random.Random(f"{spec.seed}:conversion-shape").uniform(0, 2 * math.pi)
        self.sessions = random.Random(f"{spec.seed}:sessions")
        self.rng = random.Random(f"{spec.seed}:conversion")

    def scrape(self, requests: int, time: float) -> tuple[int, int, float]:
        """(orders, sessions, latent conversion) of one scrape."""
        spec = self.spec
        drop = _active(spec, "conversion", time)
        wander = spec.conversion_wander * math.sin(2 * math.pi * time / (8 * 3600) + self.phase)
        mean = spec.conversion * (1 + wander) * (1 - drop.size if drop is not None else 1.0)
        sessions = _poisson(self.sessions, requests * spec.sessions_per_request)
        rate = _beta_mean(self.rng, mean, spec.conversion_dispersion)
        return _binomial(self.rng, sessions, rate), sessions, mean


class _Gaps:
    """Whether a scrape is missing: short gaps of 1–6 scrapes, rarely 2–10 minutes."""

    def __init__(self, spec: ReleaseSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:gaps")
        self.left = 0

    def missing(self) -> bool:
        if self.left == 0:
            if self.rng.random() < self.spec.gap_chance:
                self.left = self.rng.randint(1, 6)
            elif self.rng.random() < self.spec.long_gap_chance:
                self.left = self.rng.randint(4, 20)
        if self.left:
            self.left -= 1
            return True
        return False


Columns = dict[str, tuple[list[float], list[float]]]


def _append(columns: Columns, name: str, time: float, value: float) -> None:
    times, values = columns.setdefault(name, ([], []))
    times.append(time)
    values.append(value)


def simulate(spec: ReleaseSpec) -> Scenario:
    scenario = Scenario(spec)
    columns, latent = scenario.data.columns, scenario.latent
    traffic, latency, errors, conversion = _Traffic(spec), _Latency(spec), _Errors(spec), _Conversion(spec)
    gaps = _Gaps(spec)
    arrivals = random.Random(f"{spec.seed}:requests")
    others = random.Random(f"{spec.seed}:others")
    spikes = random.Random(f"{spec.seed}:spikes")
    steps = round((spec.history + spec.duration) / spec.step)
    for index in range(steps + 1):
        time = spec.start - spec.history + index * spec.step
        expected = traffic.expected(time)
        requests = _poisson(arrivals, expected)
        failed, error_ratio = errors.scrape(requests, time)
        orders, sessions, conversion_rate = conversion.scrape(requests, time)
        p95 = latency.scrape(requests, time)
        sample = _others(spec, others, requests)
        _append(latent, "requests", time, expected)
        _append(latent, "error_ratio", time, error_ratio)
        _append(latent, "latency_p95", time, latency.true_p95(time))
        _append(latent, "conversion", time, conversion_rate)
        # A scrape gap drops everything the scrape would have produced (the latent goes on).
        if gaps.missing():
            continue
        sample["error_rate:num"], sample["error_rate:den"] = float(failed), float(requests)
        sample["checkout_conversion:num"], sample["checkout_conversion:den"] = float(orders), float(sessions)
        if p95 is not None:
            sample["latency_p95"] = p95
        for name in _SPIKY:
            glitch = spikes.random() < spec.spike_chance
            if glitch and name in sample:
                sample[name] *= spikes.uniform(3, 8)  # one glitchy sample
        for name, value in sample.items():
            _append(columns, name, time, value)
    scenario.data.events.extend(_incidents(spec))
    return scenario


_SPIKY = ("latency_p95", "queue_p95", "lcp_p75")


def _others(spec: ReleaseSpec, rng: random.Random, requests: int) -> dict[str, float]:
    webhooks = _poisson(rng, requests / 10)
    return {
        "queue_p95": 0.12 * math.exp(rng.gauss(0, 0.15)),
        "webhook_5xx_ratio:num": float(_binomial(rng, webhooks, 0.002)),
        "webhook_5xx_ratio:den": float(webhooks),
        "db_connection_utilization": min(1.0, max(0.0, rng.gauss(0.45, 0.05))),
        "worker_backlog": float(max(0, round(rng.gauss(60, 15)))),
        "worker_oldest_pending_minutes": max(0.0, rng.gauss(2.0, 0.6)),
        "lcp_p75": 2.0 * math.exp(rng.gauss(0, 0.08)),
    }


def _incidents(spec: ReleaseSpec) -> list[Event]:
    rng = random.Random(f"{spec.seed}:incidents")
    begin, end = spec.start - spec.history, spec.start + spec.duration
    events: list[Event] = []
    serial = 0
    for severity, per_hour in (
        ("high", spec.background_incidents_per_hour),
        ("low", spec.low_severity_per_hour),
    ):
        roots, time = [], begin
        while per_hour > 0:
            time += rng.expovariate(per_hour / 3600)
            if time > end:
                break
            roots.append(time)
        queue = list(roots)
        while queue:  # Hawkes-style clustering: an incident may trigger follow-ups
            at = queue.pop()
            serial += 1
            events.append(_incident(f"{severity}-{spec.seed}-{serial}", at, severity))
            if severity == "high":
                for _ in range(_poisson(rng, spec.incident_clustering)):
                    follow = at + rng.expovariate(1 / 900)
                    if follow <= end:
                        queue.append(follow)
    for regression in spec.regressions:
        if regression.kind != "incidents":
            continue
        onset = spec.start + regression.onset
        for number in range(round(regression.size)):
            at = onset + (rng.uniform(0, regression.spread) if number else 0.0)
            events.append(_incident(f"reg-{spec.seed}-{number}", at, "high"))
    deliveries = []
    for event in events:
        deliveries.append(event)
        if rng.random() < spec.duplicate_delivery:  # webhooks are delivered at least once
            deliveries.append(event._replace(time=event.time + rng.uniform(1, 120)))
    deliveries.sort(key=lambda e: (e.time, e.id or ""))
    return [e for e in deliveries if e.time <= end]


def _incident(ident: str, time: float, severity: str) -> Event:
    return Event(time, "incidents", ident, {"severity": severity})


def regression_incident_times(scenario: Scenario) -> list[float]:
    """When each injected (not background) incident first arrives, in time order."""
    first: dict[str, float] = {}
    for event in scenario.data.events:
        if event.id is not None and event.id.startswith("reg-"):
            first.setdefault(event.id, event.time)
    return sorted(first.values())


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
        long_gap_chance=0.0,
        spike_chance=0.01,
    )


# --- the decision-quality study's population ---------------------------------------------------

# Peak requests per 30 s scrape for regression cells; the trough is TIER_TROUGH of the peak,
# so "low" stays at a few requests per scrape (about 2 to 8) for the whole release.
VOLUME_PEAKS: dict[Volume, tuple[float, float]] = {
    "low": (5.0, 8.0),
    "mid": (60.0, 150.0),
    "high": (1500.0, 3000.0),
}
TIER_TROUGH = 0.35
ONSET_RANGE = (10 * 60.0, 60 * 60.0)  # after the start; at least an hour remains after it


def healthy_spec(seed: int) -> ReleaseSpec:
    """A healthy release of the study: volume, noise and artefacts all drawn from `seed`.

    Peak traffic is log-uniform from 2 to 3000 requests per scrape with a trough at 5–35% of
    it (so the quietest releases have near-empty scrapes); error ratios of 0.1–2% with
    mild to strong overdispersion; p95 latencies of 2–8 s with 0.4–0.7 log-spread; conversion
    20–40%; gaps, spikes, stalls, blips, background incidents (0.05/h high severity, 1/h low) and
    duplicated deliveries.
    """
    rng = random.Random(f"healthy-spec:{seed}")
    return ReleaseSpec(
        seed=seed,
        peak_requests=math.exp(rng.uniform(math.log(2.0), math.log(3000.0))),
        trough_ratio=rng.uniform(0.05, 0.35),
        error_ratio=rng.choice((0.001, 0.005, 0.01, 0.02)),
        error_dispersion=rng.choice((50.0, 300.0, 2000.0)),
        blip_chance=rng.choice((0.0, 1 / 240, 1 / 120)),
        latency_p95=rng.uniform(2.0, 8.0),
        latency_sigma=rng.uniform(0.4, 0.7),
        stall_chance=rng.choice((0.0, 0.002, 0.005)),
        conversion=rng.uniform(0.2, 0.4),
        conversion_dispersion=rng.choice((1000.0, 3000.0, math.inf)),
        conversion_wander=rng.uniform(0.0, 0.02),
        gap_chance=rng.uniform(0.0, 0.02),
        long_gap_chance=rng.choice((0.0, 0.0005, 0.002)),
        spike_chance=rng.uniform(0.0, 0.02),
        duplicate_delivery=rng.uniform(0.1, 0.5),
    )


def regressed_spec(seed: int, kind: RegressionKind, size: float, volume: Volume) -> ReleaseSpec:
    """A healthy release of the given volume tier that regresses by `size` at a random onset."""
    base = healthy_spec(seed)
    rng = random.Random(f"regression-spec:{seed}:{kind}:{size}:{volume}")
    low, high = VOLUME_PEAKS[volume]
    onset = rng.uniform(*ONSET_RANGE)
    spread = rng.uniform(600.0, 3000.0) if kind == "incidents" else 1800.0
    return replace(
        base,
        peak_requests=rng.uniform(low, high),
        trough_ratio=TIER_TROUGH,
        regressions=(Regression(kind, onset=onset, size=size, spread=spread),),
    )
