"""Where a backtest's CPU time goes: reading the CSV, then the ticks, in one process.

`bench.backtest_speed` times the whole `tidegate backtest` child; this splits the work it
does after its imports (`time.process_time()` around `read_replay` and `run_backtest`, the
same calls the CLI makes). The ticks run inside the process's one `functools.reduce`, so
that callgrind can count their instructions alone, which, unlike times, do not move with
whatever else the machine runs (a short file keeps valgrind's run to a minute):

    .venv/bin/python -m bench.backtest_phases [--days 30]
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=bench/out/backtest.callgrind .venv/bin/python -m bench.backtest_phases --days 3

It prints a digest of the JSON result, so two builds can be checked to decide alike.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from functools import reduce

from adapters.sources.replay import read_replay
from bench.workload import BASELINE, OUT, START, pack_text, write_csv, write_events
from controller.backtest import BacktestResult, run_backtest
from policies.loader import load_packs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    days = parser.parse_args().days
    OUT.mkdir(parents=True, exist_ok=True)
    pack = OUT / "bench-pack.yaml"
    pack.write_text(pack_text(with_count=True), encoding="utf-8")
    events = OUT / f"backtest-{days:g}d-events.jsonl"
    write_events(events, days=days)
    data = OUT / f"backtest-{days:g}d-10s-unix.csv"
    if not data.exists():
        write_csv(data, days=days, step=10, rfc=False)
    policies = [p for loaded in load_packs([str(pack)]) for p in loaded.policies]
    started = time.process_time()
    recorded = read_replay(str(data), str(events))
    read = time.process_time()
    results: list[BacktestResult] = []

    def ticks(_: int, __: int) -> int:
        start = START + BASELINE
        results.append(run_backtest(policies, recorded, start=start, interval=10.0, events_given=True))
        return 0

    reduce(ticks, [0, 0])  # the only reduce: callgrind counts inside it
    done = time.process_time()
    result = results[0]
    digest = hashlib.sha256(json.dumps(result.to_json()).encode()).hexdigest()[:12]
    print(
        f"reading {read - started:.2f} s CPU, {result.ticks:,} ticks {done - read:.2f} s CPU; "
        f"{len(result.firings)} firings, {len(result.decisions)} decisions, result {digest}"
    )


if __name__ == "__main__":
    main()
