"""`tidegate signals check rollout.yaml`: read every bound source once and show what came back.

How a user verifies a binding before trusting it with a release: per source, the columns
with their sample counts and newest values, the latency of the read, or the error. Exit 0
when every source answered, 1 when one did not, 2 on a configuration error.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated

import typer

from adapters.sources.replay import read_replay
from controller.bootstrap import live_sources
from controller.spec import ReplaySource, load_rollout
from policies.durations import parse_duration
from policies.errors import TidegateError
from policies.timestamps import format_timestamp


def register(app: typer.Typer) -> None:
    signals = typer.Typer(help="Check where a rollout's signals come from.", no_args_is_help=True)
    signals.command("check")(check_command)
    app.add_typer(signals, name="signals")


def check_command(
    rollout: Annotated[str, typer.Argument(help="rollout.yaml")],
    window: Annotated[str, typer.Option(help="How far back to read, e.g. 5m.")] = "5m",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Run every bound query once and print values, sample counts and latency."""
    spec = load_rollout(rollout)
    seconds = parse_duration(window)
    rows: list[dict[str, object]] = []
    for source in spec.sources:
        if isinstance(source, ReplaySource):
            data = read_replay(source.data, source.events)
            rows.append(_row("replay", "replay", data.columns, len(data.events), 0.0, None))
    now = time.time()
    for live in live_sources(spec):
        began = time.perf_counter()
        try:
            result = live.read(now - seconds, now)
        except TidegateError as exc:
            rows.append(_row(live.name, "live", {}, 0, time.perf_counter() - began, str(exc)))
            continue
        rows.append(
            _row(live.name, "live", result.columns, len(result.events), time.perf_counter() - began, None)
        )
    failed = any(row["error"] for row in rows)
    if as_json:
        print(json.dumps({"ok": not failed, "sources": rows}))
    else:
        for row in rows:
            _print(row)
    raise typer.Exit(1 if failed else 0)


def _row(
    name: str,
    kind: str,
    columns: dict[str, tuple[list[float], list[float]]],
    events: int,
    latency: float,
    error: str | None,
) -> dict[str, object]:
    signals = {
        column: {
            "samples": len(times),
            "last_at": format_timestamp(times[-1]) if times else None,
            "last_value": values[-1] if values and math.isfinite(values[-1]) else None,
        }
        for column, (times, values) in sorted(columns.items())
    }
    return {
        "source": name,
        "kind": kind,
        "latency_ms": round(latency * 1000, 1),
        "signals": signals,
        "events": events,
        "error": error,
    }


def _print(row: dict[str, object]) -> None:
    head = f"{row['source']} ({row['kind']}, {row['latency_ms']} ms)"
    if row["error"]:
        print(f"{head}: FAILED — {row['error']}")
        return
    print(f"{head}: ok, {row['events']} events")
    signals = row["signals"]
    assert isinstance(signals, dict)
    if not signals:
        print("    no samples in the window (no value, not zero: check the query)")
    for column, info in signals.items():
        print(
            f"    {column:<32} {info['samples']:>6} samples  last {info['last_value']} at {info['last_at']}"
        )
