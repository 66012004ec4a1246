"""Backtest end to end against `csv.reader` alone on the same file (the issue's yardstick).

30 days of 10 s scrapes for ten signals (two of them ratios, so twelve CSV series: about
3.1 M rows) run through `tidegate backtest --json` as a subprocess: interpreter start,
imports, CSV parsing, every tick, JSON out. In the same run, a bare
`for row in csv.reader(f): pass` reads the same file. Both are repeated and the median
kept; the child's peak RSS comes from `os.wait4`. Unix-seconds and RFC 3339 variants.

    .venv/bin/python -m bench.backtest_speed [--days 30] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.workload import BASELINE, OUT, START, pack_text, write_csv, write_events

TIDEGATE = Path(sys.executable).with_name("tidegate")


@dataclass(frozen=True)
class Measurement:
    variant: str
    rows: int
    csv_reader_s: float
    backtest_s: float
    ratio: float
    cpu_ratio: float  # the same ratio in CPU seconds: steadier when others share the machine
    peak_rss_mb: float
    exit_code: int
    firings: int
    decisions: int


def ensure_inputs(days: float, step: float) -> dict[str, tuple[Path, int]]:
    """Generate the data once per (days, step); later runs reuse bench/out/."""
    inputs = {}
    for variant, rfc in (("unix seconds", False), ("RFC 3339", True)):
        path = OUT / f"backtest-{days:g}d-{step:g}s-{'rfc3339' if rfc else 'unix'}.csv"
        marker = path.with_suffix(".rows")
        if not (path.exists() and marker.exists()):
            marker.write_text(str(write_csv(path, days=days, step=step, rfc=rfc)))
        inputs[variant] = (path, int(marker.read_text()))
    return inputs


def time_csv_reader(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of a bare csv.reader pass over the file."""
    started, cpu = time.perf_counter(), time.process_time()
    with path.open(newline="", encoding="utf-8-sig") as handle:  # as the replay source reads it
        for _row in csv.reader(handle):
            pass
    return time.perf_counter() - started, time.process_time() - cpu


def run_backtest(args: list[str], stdout: Path) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS in MB, exit status, CPU seconds) of one `tidegate backtest` child."""
    with stdout.open("wb") as out:
        started = time.perf_counter()
        pid = os.posix_spawn(
            str(TIDEGATE),
            [str(TIDEGATE), *args],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1)],
        )
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), cpu


def measure(variant: str, path: Path, rows: int, pack: Path, events: Path, repeat: int) -> Measurement:
    out = OUT / "backtest-output.json"
    args = ["backtest", "--policy", str(pack), "--data", str(path), "--events", str(events)]
    args += ["--start", f"{START + BASELINE:.0f}", "--interval", "10s", "--json"]
    readers, runs = [], []
    for _ in range(repeat):  # interleaved, so both see the same machine state
        readers.append(time_csv_reader(path))
        runs.append(run_backtest(args, out))
    elapsed = statistics.median(r[0] for r in runs)
    reader = statistics.median(r[0] for r in readers)
    cpu_ratio = statistics.median(r[3] for r in runs) / statistics.median(r[1] for r in readers)
    result = json.loads(out.read_text())
    return Measurement(
        variant=variant,
        rows=rows,
        csv_reader_s=reader,
        backtest_s=elapsed,
        ratio=elapsed / reader,
        cpu_ratio=cpu_ratio,
        peak_rss_mb=max(r[1] for r in runs),
        exit_code=runs[-1][2],
        firings=len(result["firings"]),
        decisions=len(result["decisions"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--step", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args()
    pack = OUT / "bench-pack.yaml"
    pack.parent.mkdir(parents=True, exist_ok=True)
    pack.write_text(pack_text(with_count=True), encoding="utf-8")
    events = OUT / f"backtest-{options.days:g}d-events.jsonl"
    write_events(events, days=options.days)
    results = [
        measure(variant, path, rows, pack, events, options.repeat)
        for variant, (path, rows) in ensure_inputs(options.days, options.step).items()
    ]
    if options.json:
        print(json.dumps([asdict(r) for r in results]))
        return
    for r in results:
        print(
            f"{r.variant}: {r.rows:,} rows; csv.reader {r.csv_reader_s:.2f} s; "
            f"tidegate backtest {r.backtest_s:.2f} s ({r.ratio:.2f}×, CPU {r.cpu_ratio:.2f}×); "
            f"peak RSS {r.peak_rss_mb:.0f} MB; "
            f"exit {r.exit_code}, {r.firings} firings, {r.decisions} decisions"
        )


if __name__ == "__main__":
    main()
