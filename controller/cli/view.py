"""How progress looks: plain lines when output is piped or logged, colour on a terminal."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

from controller.runtime import Event, Observer
from controller.store.base import SourceHealth
from policies.timestamps import format_timestamp

_STYLE = {
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
        line.append(f"  {event.kind:<10} {event.text}", style=_STYLE.get(event.kind, ""))
        console.print(line)  # Text, not markup: event text may contain [brackets]

    return show


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
