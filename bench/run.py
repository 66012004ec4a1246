"""`make bench`: every benchmark, each in its own process, summarised as Markdown.

Each benchmark runs as a child (`python -m bench.<name> --json`) so that one's memory never
shows in another's RSS. The decision-quality study runs last when its module is present;
its own Markdown is passed through unchanged. Paste the output into docs/performance.md.

    .venv/bin/python -m bench.run [--quick] [--no-quality]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from typing import Any

BACKTEST_TARGET = 3.0  # × the time csv.reader alone needs for the same file
LIVE_TARGET_MS, LIVE_TARGET_MB = 50.0, 300.0
SOURCE_TARGET_S = 2.0


def child(module: str, *args: str) -> Any:
    """Run one benchmark in its own process and return its JSON result."""
    command = [sys.executable, "-m", module, *args, "--json"]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{module} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, nproc {os.cpu_count()}, Python {platform.python_version()}, {platform.system()}"


def backtest_table(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's yardstick: end-to-end time over csv.reader's time on the same file."""
    lines = [
        "| timestamps | CSV rows | csv.reader alone | `tidegate backtest --json` | ratio (target ≤ 3×) "
        "| same in CPU time | peak RSS | firings / decisions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "met" if r["ratio"] <= BACKTEST_TARGET else "not met"
        lines.append(
            f"| {r['variant']} | {r['rows']:,} | {r['csv_reader_s']:.2f} s | {r['backtest_s']:.2f} s "
            f"| **{r['ratio']:.2f}×** ({verdict}) | {r['cpu_ratio']:.2f}× | {r['peak_rss_mb']:.0f} MB "
            f"| {r['firings']} / {r['decisions']} |"
        )
    return lines


def live_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| evaluator | rollouts × rules | tick, median (worst) | tick CPU | ingest + tick, median (worst) "
        "| RSS |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['evaluator']} | {r['rollouts']:,} × {r['rules']} "
            f"| **{r['tick_ms_median']:.1f} ms** ({r['tick_ms_worst']:.1f}) "
            f"| {r['tick_cpu_ms_median']:.1f} ms "
            f"| {r['step_ms_median']:.1f} ms ({r['step_ms_worst']:.1f}) | {r['rss_mb']:.0f} MB |"
        )
    real = rows[0]
    if real["rollouts"] != 10_000:
        return [*lines, "", "(A quick run: the targets are for 10,000 rollouts.)"]
    lines += [
        "",
        f"Targets: tick under {LIVE_TARGET_MS:.0f} ms — "
        f"{'met' if real['tick_ms_median'] < LIVE_TARGET_MS else 'not met'}; "
        f"RSS under {LIVE_TARGET_MB:.0f} MB — {'met' if real['rss_mb'] < LIVE_TARGET_MB else 'not met'}.",
    ]
    return lines


def source_read_table(r: dict[str, Any]) -> list[str]:
    """One tick of signal reads from one real Prometheus, batched, and one query per rollout."""
    extrapolated = r["unbatched_rollouts"] < r["rollouts"]
    unbatched_requests = r["unbatched_requests"] * r["rollouts"] // max(1, r["unbatched_rollouts"])
    label = f"a query per rollout (EXTRAPOLATED from {r['unbatched_rollouts']})" if extrapolated else ""
    lines = [
        "| reads | rollouts × signals (queries) | tick, median (max) | tick CPU | HTTP requests per tick "
        "| bytes read per tick |",
        "|---|---|---|---|---|---|",
        f"| batched: `by (rollout)` + `select` | {r['rollouts']:,} × {r['signals']} ({r['columns']}) "
        f"| **{r['tick_s_median'] * 1000:.0f} ms** ({r['tick_s_max'] * 1000:.0f}) "
        f"| {r['tick_cpu_s_median'] * 1000:.0f} ms | {r['requests_per_tick']:,} | {r['bytes_per_tick']:,} |",
        f"| {label or 'a query per rollout'} "
        f"| {r['rollouts']:,} × {r['signals']} ({r['columns']}) | {r['unbatched_s_all'] * 1000:.0f} ms | — "
        f"| {unbatched_requests:,} | {'—' if extrapolated else format(r['unbatched_bytes'], ',')} |",
        "",
    ]
    if r["rollouts"] != 1000:
        return [*lines, "(A quick run: the target is for 1,000 rollouts.)"]
    verdict = "met" if r["tick_s_median"] < SOURCE_TARGET_S else "not met"
    return [*lines, f"Target: one tick under {SOURCE_TARGET_S:.0f} s — {verdict}."]


def service_tables(reaction: dict[str, Any], scale: dict[str, Any]) -> list[str]:
    """`tidegate serve`: webhook-to-target reaction, and one replica holding many rollouts."""
    verdict = "met" if reaction["met"] else "not met"
    keeps_up = "keeps up" if scale["steps_per_s"] >= 0.95 * scale["needed_steps_per_s"] else "FALLS BEHIND"
    return [
        "| trials | p50 | p90 | p99 (target < 1 s) | worst |",
        "|---|---|---|---|---|",
        f"| {reaction['trials']} | {reaction['p50_ms']:.0f} ms | {reaction['p90_ms']:.0f} ms "
        f"| **{reaction['p99_ms']:.0f} ms** ({verdict}) | {reaction['worst_ms']:.0f} ms |",
        "",
        "| rollouts (interval) | loaded in | steps/s (needed) | step mean / p99 ≤ | RSS "
        "| API GET rollout: req/s, p50, p99 |",
        "|---|---|---|---|---|---|",
        f"| {scale['rollouts']:,} ({scale['interval_s']:.0f} s) | {scale['load_s']:.0f} s "
        f"| {scale['steps_per_s']:.0f} ({scale['needed_steps_per_s']:.0f}, {keeps_up}) "
        f"| {scale['step_mean_ms']:.1f} ms / {scale['step_p99_le_ms']:.0f} ms | {scale['rss_mb']:.0f} MB "
        f"| {scale['api_rps']:.0f}, {scale['api_p50_ms']:.0f} ms, **{scale['api_p99_ms']:.0f} ms** |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.add_argument("--no-quality", action="store_true", help="skip the decision-quality study")
    options = parser.parse_args()
    days, rollouts = ("2", "1000") if options.quick else ("30", "10000")
    print(f"Machine: {machine()}\n")
    print(f"## Backtest: {days} days at 10 s, 10 signals (2 ratios), end to end\n")
    print("\n".join(backtest_table(child("bench.backtest_speed", "--days", days))))
    print("\n## Live evaluator: one tick after one new sample per signal\n")
    live = [
        child("bench.live_tick", "--rollouts", rollouts),
        child("bench.live_tick", "--rollouts", rollouts, "--naive", "--runs", "3"),
    ]
    print("\n".join(live_table(live)))
    print("\n## Signal reads: one tick from one real Prometheus\n")
    read = child("bench.source_read", "--rollouts", "100" if options.quick else "1000")
    print("\n".join(source_read_table(read)))
    print("\n## tidegate serve: reaction and scale\n")
    reaction = child("bench.reaction", "--trials", "50" if options.quick else "500")
    scale = child("bench.serve_scale", "--rollouts", "1000" if options.quick else "10000")
    print("\n".join(service_tables(reaction, scale)))
    if not options.no_quality and importlib.util.find_spec("bench.decision_quality") is not None:
        print("\n## Decision quality\n", flush=True)
        quality = ["--markdown"] + (
            ["--healthy", "20", "--per-cell", "4", "--stress", "10"] if options.quick else []
        )
        subprocess.run([sys.executable, "-m", "bench.decision_quality", *quality], check=True)


if __name__ == "__main__":
    main()
