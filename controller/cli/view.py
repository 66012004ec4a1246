"""How progress looks: plain lines when output is piped or logged, colour on a terminal."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

from controller.runtime import Event, Observer
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
