"""The benchmarks' workload: one representative pack and deterministic signals for it.

Ten signals, two of them ratios (`name:num`/`name:den` rows), and ten rules that exercise
every hot path: a ratio threshold with min_samples and a confidence bound, a ratio drift
(two-proportion z-test), a plain drift (Mann-Whitney U), plain thresholds with and without
`for`. The backtest adds a count rule over an incident stream. All randomness comes from
`random.Random(seed)`, so every run reads the same bytes.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from policies.evaluator import SignalKind

OUT = Path(__file__).resolve().parent / "out"
START = 1_790_000_000.0  # 2026-09-21T14:13:20Z; the rollout starts one hour later
BASELINE = 3600.0

RULES = """\
  - id: error-rate
    signal: error_rate
    when: "> 0.05"
    for: 5m
    window: 1m
    min_samples: 50
    confidence: 0.95
    action: rollback
  - id: kpi-drift
    signal: checkout_conversion
    drift: "> 5%"
    direction: down
    baseline: {window: 1h}
    window: 15m
    confidence: 0.99
    action: rollback
  - id: latency-drift
    signal: latency_p95
    drift: "> 25%"
    direction: up
    baseline: {window: 1h}
    window: 15m
    action: step_down
  - id: queue-p95
    signal: queue_p95
    when: "> 0.3"
    for: 5m
    action: step_down
  - id: webhook-5xx
    signal: webhook_5xx_ratio
    when: "> 0.01"
    for: 10m
    action: step_down
  - id: db-connections
    signal: db_connection_utilization
    when: "> 0.8"
    on_no_data: ok
    action: notify
  - id: worker-backlog
    signal: worker_backlog
    when: "> 500"
    on_no_data: ok
    action: notify
  - id: worker-oldest-pending
    signal: worker_oldest_pending_minutes
    when: "> 15"
    on_no_data: ok
    action: notify
  - id: lcp-p75
    signal: lcp_p75
    when: "> 3"
    on_no_data: ok
    action: notify
  - id: cpu-saturation
    signal: cpu_utilization
    when: "> 0.9"
    for: 15m
    action: hold
"""

COUNT_RULE = """\
  - id: high-severity-incidents
    signal: incidents
    match: {severity: high}
    count: ">= 3"
    within: 1h
    on_no_data: ok
    action: rollback
"""

RATIOS = ("error_rate", "checkout_conversion")
PLAINS = (
    "latency_p95",
    "queue_p95",
    "webhook_5xx_ratio",
    "db_connection_utilization",
    "worker_backlog",
    "worker_oldest_pending_minutes",
    "lcp_p75",
    "cpu_utilization",
)
KINDS = {name: SignalKind.RATIO for name in RATIOS} | {name: SignalKind.PLAIN for name in PLAINS}


def pack_text(*, with_count: bool) -> str:
    header = "apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {name: bench}\ninterval: 30s\n"
    return header + "policies:\n" + RULES + (COUNT_RULE if with_count else "")


@dataclass(frozen=True)
class Incident:
    """A stretch of time in which one signal misbehaves, so rules do fire now and then."""

    signal: str
    begin: float  # seconds after START
    length: float
    factor: float


INCIDENTS = (
    Incident("error_rate", 5 * 86400 + 3600, 2400, 12.0),
    Incident("latency_p95", 12 * 86400, 3 * 3600, 1.6),
    Incident("checkout_conversion", 18 * 86400, 2 * 3600, 0.75),
    Incident("queue_p95", 22 * 86400, 1800, 4.0),
    Incident("cpu_utilization", 26 * 86400, 3600, 1.7),
)


class SignalModel:
    """Diurnal traffic with noise; `sample(t)` gives one scrape of every signal."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def factor(self, signal: str, t: float) -> float:
        for incident in INCIDENTS:
            if incident.signal == signal and 0 <= t - START - incident.begin < incident.length:
                return incident.factor
        return 1.0

    def sample(self, t: float) -> Iterator[tuple[str, float]]:
        rng, gauss = self.rng, self.rng.gauss
        load = 0.55 + 0.45 * math.sin(2 * math.pi * (t % 86400) / 86400)
        requests = max(1, round(load * 600 * rng.uniform(0.8, 1.2)))
        error_ratio = min(1.0, 0.01 * self.factor("error_rate", t) * rng.uniform(0.5, 1.5))
        spread = math.sqrt(requests * error_ratio * (1 - error_ratio))
        yield "error_rate:num", float(min(requests, max(0, round(gauss(requests * error_ratio, spread)))))
        yield "error_rate:den", float(requests)
        sessions = max(1, round(requests / 4))
        conversion = 0.04 * self.factor("checkout_conversion", t)
        yield "checkout_conversion:num", float(round(sessions * conversion * rng.uniform(0.6, 1.4)))
        yield "checkout_conversion:den", float(sessions)
        spike = 6.0 if rng.random() < 0.002 else 1.0
        yield "latency_p95", 4.0 * self.factor("latency_p95", t) * spike * math.exp(gauss(0, 0.1))
        yield "queue_p95", 0.08 * self.factor("queue_p95", t) * math.exp(gauss(0, 0.3))
        yield "webhook_5xx_ratio", abs(gauss(0.002, 0.002))
        yield "db_connection_utilization", min(1.0, 0.25 + 0.4 * load + gauss(0, 0.05))
        yield "worker_backlog", max(0.0, round(120 * load + gauss(0, 60)))
        yield "worker_oldest_pending_minutes", abs(gauss(2, 2.5))
        yield "lcp_p75", 1.8 * math.exp(gauss(0, 0.15))
        yield "cpu_utilization", min(1.0, (0.35 + 0.3 * load) * self.factor("cpu_utilization", t))


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(path: Path, *, days: float, step: float, rfc: bool, seed: int = 7) -> int:
    """Write `days` of samples every `step` seconds; returns the number of data rows."""
    model, rows = SignalModel(seed), 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("timestamp,signal,value\n")
        for k in range(round(days * 86400 / step)):
            t = START + k * step
            stamp = rfc3339(t) if rfc else f"{t:.0f}"
            lines = [f"{stamp},{name},{value:.6g}\n" for name, value in model.sample(t)]
            out.writelines(lines)
            rows += len(lines)
    return rows


def write_events(path: Path, *, days: float, seed: int = 11) -> int:
    """Background incidents (a few a day, some delivered twice) and one high-severity burst."""
    rng, events = random.Random(seed), []
    for n in range(round(days * 6)):
        t = START + rng.uniform(0, days * 86400)
        severity = "high" if rng.random() < 0.15 else "low"
        events.append({"timestamp": t, "signal": "incidents", "severity": severity, "id": f"inc-{n}"})
        if rng.random() < 0.3:
            events.append(dict(events[-1]))
    burst = START + days * 0.8 * 86400
    events += [
        {"timestamp": burst + 600 * i, "signal": "incidents", "severity": "high", "id": f"burst-{i}"}
        for i in range(4)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return len(events)
