"""How progress looks: plain lines when output is piped or logged, colour on a terminal.

Whether `run`, `gate` and `status` draw a live rich view instead is decided once, here
(`wants_live`); the view itself is controller/cli/live.py (run, gate) and status.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TextIO

from rich.console import Console
from rich.text import Text

from controller.runtime import Event, Observer
from controller.store.base import Intent, SourceHealth
from policies.errors import TidegateError
from policies.timestamps import format_timestamp

VIEW_ENV = "TIDEGATE_VIEW"  # live | plain: what --live / --plain say, for a whole shell or CI job

EVENT_STYLE = {
    "firing": "bold red",
    "recovered": "green",
    "decision": "bold",
    "transition": "bold cyan",
    "action": "",
    "page": "bold white on red",
    "recovery": "yellow",
}


def plain_line(event: Event) -> str:
    return f"{format_timestamp(event.at)}  {event.kind:<10} {event.text}"


def observer_for(stream: TextIO | None = None) -> Observer:
    """An observer printing each event to `stream` (stderr by default)."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        return lambda event: print(plain_line(event), file=out, flush=True)
    console = Console(file=out, highlight=False)

    def show(event: Event) -> None:
        line = Text(format_timestamp(event.at), style="dim")
        line.append(f"  {event.kind:<10} {event.text}", style=EVENT_STYLE.get(event.kind, ""))
        console.print(line)  # Text, not markup: event text may contain [brackets]

    return show


def wants_live(choice: bool | None, stream: TextIO, *, as_json: bool) -> bool:
    """--live / --plain first, then $TIDEGATE_VIEW, else live when `stream` is a terminal and the
    result is not --json (a script reading JSON is not a person watching)."""
    if choice is not None:
        return choice
    setting = os.environ.get(VIEW_ENV, "").strip().lower()
    if setting in ("live", "plain"):
        return setting == "live"
    if setting:
        raise TidegateError(f"{VIEW_ENV}={setting!r}: expected live or plain")
    return stream.isatty() and not as_json


def last_told(intents: Iterable[Intent]) -> dict[str, Intent]:
    """Per target, the last operation the journal holds for it (in journal order)."""
    return {intent.operation.target: intent for intent in intents}


def source_health_line(health: SourceHealth) -> str:
    """One source of a rollout in `tidegate status`: its read counts and last error."""
    line = (
        f"source {health.source}: {health.ok_reads} ok / {health.failed_reads} failed reads, "
        f"{health.consecutive_failures} consecutive failures"
    )
    if health.last_error_at is not None:
        line += f", last error at {format_timestamp(health.last_error_at)}: {health.last_error}"
    return line


def source_health_json(health: SourceHealth) -> dict[str, object]:
    def stamp(at: float | None) -> str | None:
        return None if at is None else format_timestamp(at)

    return {
        "source": health.source,
        "ok_reads": health.ok_reads,
        "failed_reads": health.failed_reads,
        "consecutive_failures": health.consecutive_failures,
        "last_ok_at": stamp(health.last_ok_at),
        "last_error_at": stamp(health.last_error_at),
        "last_error": health.last_error or None,
    }
