"""What the dashboard's rule history costs `tidegate serve`: memory per rollout, time a tick.

Each held rollout keeps its rules' last `chart_ticks` readings (`policies.trace.Trace`,
controller.yaml `chart_ticks`, default 120). Measured with tracemalloc over 1,000 traces
filled to the most they hold before a trim, for 1 and for 10 rules; and the time of one
`record` (one tick of every rule of one rollout), the cost the step thread pays.

    .venv/bin/python -m bench.chart_trace [--ticks 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from dataclasses import asdict, dataclass

from policies.loader import parse_pack
from policies.rules.base import RuleState, Status
from policies.schema import Policy
from policies.trace import Trace

TRACES = 1000
RECORDS = 100_000


@dataclass(frozen=True)
class TraceCost:
    rules: int
    ticks: int
    kib_per_rollout: float  # at its fullest, just before a trim
    record_us: float


def policies(count: int) -> list[Policy]:
    rules = "".join(f'\n  - {{id: r{i}, signal: s{i}, when: "> 1", action: notify}}' for i in range(count))
    text = f"apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {{name: bench}}\npolicies:{rules}\n"
    return list(parse_pack(text, "bench.yaml").policies)


def measure(rules: int, ticks: int, *, traces: int = TRACES, records: int = RECORDS) -> TraceCost:
    chosen = policies(rules)
    states = [RuleState(p, Status.OK, 0.5, 0.0) for p in chosen]
    fullest = ticks + max(16, ticks // 4) - 1
    tracemalloc.start()
    kept = [Trace(chosen, ticks) for _ in range(traces)]
    for trace in kept:
        for k in range(fullest):
            trace.record(float(k), states)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    trace = Trace(chosen, ticks)
    started = time.perf_counter()
    for k in range(records):
        trace.record(float(k), states)
    elapsed = time.perf_counter() - started
    return TraceCost(rules, ticks, size / traces / 1024, elapsed / records * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=120)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(rules, args.ticks) for rules in (1, 10)]
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
        return
    for r in results:
        print(
            f"{r.rules:>2} rule(s), {r.ticks} ticks kept: {r.kib_per_rollout:.1f} KiB per rollout "
            f"at its fullest; record() {r.record_us:.2f} µs a tick"
        )


if __name__ == "__main__":
    main()
