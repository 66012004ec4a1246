"""The live evaluator at scale: 10,000 rollouts × 10 rules, one tick after one new sample.

Each rollout is a `policies.evaluator.Evaluator` with the bench pack's ten rules, fed the
way the controller feeds it: an hour of baseline before its start, then two hours or so
of 30 s scrapes, each followed by a tick. Rollouts started at different moments (their
histories differ by up to 32 ticks), as they do in a real controller, so housekeeping that
runs every few ticks is spread over ticks rather than landing on one.

The measured step, repeated: append one new sample to every signal of every rollout
(ingest), then tick every rollout once (tick). Reported: the median and the worst of the
runs, and the process's RSS afterwards. `--naive` runs `bench.naive.NaiveEvaluator`, which
re-scans every window at every tick, through the very same step.

    .venv/bin/python -m bench.live_tick [--rollouts 10000] [--runs 15] [--naive] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from bench.naive import NaiveEvaluator
from bench.workload import BASELINE, KINDS, PLAINS, RATIOS, SignalModel, pack_text
from policies.evaluator import Evaluator
from policies.loader import parse_pack
from policies.rules.base import RuleState
from policies.schema import Policy

STEP = 30.0
NOW = 1_790_100_000.0  # the wall-clock moment of the first measured tick
HISTORY_TICKS = 120  # two hours at 30 s: one hour ticked after the start, at least
POOL = 64  # distinct signal histories; rollouts scale them so no two hold equal values


class Rollout(Protocol):
    def observe(self, signal: str, time: float, value: float) -> None: ...
    def observe_ratio(self, signal: str, time: float, num: float, den: float) -> None: ...
    def tick(self, time: float) -> list[RuleState]: ...


Scrape = tuple[float, ...]  # in the order RATIOS (num, den each), then PLAINS


@dataclass(frozen=True)
class LiveResult:
    evaluator: str
    rollouts: int
    rules: int
    runs: int
    tick_ms_median: float
    tick_ms_worst: float
    tick_cpu_ms_median: float  # process CPU time: what the tick costs when the machine is shared
    step_ms_median: float  # ingest + tick
    step_ms_worst: float
    rss_mb: float
    peak_rss_mb: float
    setup_s: float


def scrapes(seed: int, count: int, first: float) -> list[Scrape]:
    model = SignalModel(seed)
    return [tuple(value for _, value in model.sample(first + k * STEP)) for k in range(count)]


def scale_of(rollout: int) -> float:
    """Each rollout's own traffic level (0.5–2×), so no two rollouts hold the same values."""
    return 0.5 + 1.5 * (rollout * 37 % 101) / 100


def feed(rollout: Rollout, scrape: Scrape, at: float, scale: float) -> None:
    """One scrape of every signal: counters scaled by traffic, gauges nudged a little."""
    for index, name in enumerate(RATIOS):
        num, den = scrape[2 * index], scrape[2 * index + 1]
        rollout.observe_ratio(name, at, float(round(num * scale)), float(round(den * scale) or 1))
    offset, nudge = 2 * len(RATIOS), 0.95 + scale / 20
    for index, name in enumerate(PLAINS):
        rollout.observe(name, at, scrape[offset + index] * nudge)


def build(factory: Callable[[list[Policy], float], Rollout], count: int, tick_history: bool) -> list[Rollout]:
    """`count` rollouts, each fed (and, if asked, ticked) through its history up to NOW."""
    policies = list(parse_pack(pack_text(with_count=False), "bench-pack.yaml").policies)
    longest = HISTORY_TICKS + 32 + round(BASELINE / STEP)
    pool = [scrapes(seed, longest + 64, 0.0) for seed in range(POOL)]
    rollouts = []
    for index in range(count):
        ticks = HISTORY_TICKS + index % 32
        start = NOW - ticks * STEP
        first = start - BASELINE
        rollout, history, scale = factory(policies, start), pool[index % POOL], scale_of(index)
        for k in range(round(BASELINE / STEP) + ticks):
            at = first + k * STEP
            feed(rollout, history[k], at, scale)
            if tick_history and at >= start:
                rollout.tick(at)
        rollouts.append(rollout)
    return rollouts


def measure(rollouts: list[Rollout], runs: int) -> tuple[list[float], list[float], list[float]]:
    """(tick seconds, ingest + tick seconds, tick CPU seconds) per run."""
    pool = [scrapes(1000 + run, POOL, 0.0) for run in range(3)]
    ticks, steps, cpu = [], [], []
    for run in range(runs):
        at = NOW + run * STEP
        new = pool[run % 3]
        started = time.perf_counter()
        for index, rollout in enumerate(rollouts):
            feed(rollout, new[index % POOL], at, scale_of(index))
        ingested, cpu_started = time.perf_counter(), time.process_time()
        for rollout in rollouts:
            rollout.tick(at)
        done = time.perf_counter()
        cpu.append(time.process_time() - cpu_started)
        ticks.append(done - ingested)
        steps.append(done - started)
    return ticks, steps, cpu


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def run(naive: bool, count: int, runs: int) -> LiveResult:
    started = time.perf_counter()
    if naive:
        rollouts = build(lambda p, s: NaiveEvaluator(p, start=s, kinds=KINDS), count, tick_history=False)
    else:
        rollouts = build(lambda p, s: Evaluator(p, start=s, kinds=KINDS), count, tick_history=True)
    setup = time.perf_counter() - started
    gc.collect()
    ticks, steps, cpu = measure(rollouts, runs)
    return LiveResult(
        evaluator="naive re-scan (bench/naive.py)" if naive else "tidegate Evaluator",
        rollouts=count,
        rules=10,
        runs=runs,
        tick_ms_median=statistics.median(ticks) * 1000,
        tick_ms_worst=max(ticks) * 1000,
        tick_cpu_ms_median=statistics.median(cpu) * 1000,
        step_ms_median=statistics.median(steps) * 1000,
        step_ms_worst=max(steps) * 1000,
        rss_mb=rss_mb(),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        setup_s=setup,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--naive", action="store_true", help="time the naive re-scanning evaluator")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args()
    result = run(options.naive, options.rollouts, options.runs)
    if options.json:
        print(json.dumps(asdict(result)))
        return
    print(
        f"{result.evaluator}: {result.rollouts:,} rollouts × {result.rules} rules; "
        f"tick {result.tick_ms_median:.1f} ms (worst {result.tick_ms_worst:.1f}, "
        f"CPU {result.tick_cpu_ms_median:.1f}), "
        f"ingest + tick {result.step_ms_median:.1f} ms (worst {result.step_ms_worst:.1f}); "
        f"RSS {result.rss_mb:.0f} MB (peak {result.peak_rss_mb:.0f}); setup {result.setup_s:.0f} s"
    )


if __name__ == "__main__":
    main()
