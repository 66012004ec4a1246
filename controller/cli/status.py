"""`tidegate status`: plain lines, a rich table on a terminal, JSON, or a watch.

The rows are read once per screen (`status_rows`); each way of showing them is a function of
the rows alone, so `--watch` is just "read, show, sleep" until Ctrl-C. The plain lines and the
JSON are the contract scripts and CI logs rely on; the table is for a person at a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from controller.cli.lookup import find_rollout
from controller.cli.options import LiveOption, StateOption, positive_duration
from controller.cli.view import last_told, source_health_json, source_health_line, told_line, wants_live
from controller.store import open_store
from controller.store.base import Intent, RolloutRecord, SourceHealth, Store
from policies.durations import format_duration
from policies.timestamps import format_timestamp

STATE_STYLE = {
    "pending": "dim",
    "progressing": "cyan",
    "paused": "yellow",
    "stepping_down": "bold yellow",
    "rolling_back": "bold red",
    "rolled_back": "red",
    "promoted": "bold green",
    "failed": "bold white on red",
}
OUTCOME_STYLE = {
    "applied": "green",
    "already_done": "green",
    "refused": "bold red",
    "failed": "bold red",
    "unfinished": "yellow",
}


@dataclass(frozen=True)
class StatusRow:
    """One rollout as `tidegate status` shows it."""

    record: RolloutRecord
    told: Sequence[Intent]  # the last operation per target, in journal order
    sources: Sequence[SourceHealth]

    def to_json(self) -> dict[str, object]:
        status = self.record.status
        return {
            "id": self.record.id,
            "name": self.record.name,
            "state": status.state.value,
            "traffic": status.traffic,
            "since": format_timestamp(status.since),
            "reason": status.reason,
            "targets": [told_line(intent) for intent in self.told],
            "sources": [source_health_json(h) for h in self.sources],
        }


def status_rows(store: Store, records: Sequence[RolloutRecord]) -> list[StatusRow]:
    return [
        StatusRow(r, list(last_told(store.intents(r.id)).values()), store.source_health(r.id))
        for r in records
    ]


def status_lines(rows: Sequence[StatusRow]) -> list[str]:
    """The plain output: a line per rollout, then its targets' last operations and its sources."""
    if not rows:
        return ["no rollouts yet"]
    lines = []
    for row in rows:
        status, since = row.record.status, format_timestamp(row.record.status.since)
        state, reason = status.state.value, status.reason
        lines.append(f"{row.record.id:<28} {state:<14} {status.traffic:>3}%  since {since}  {reason}")
        lines += [f"    {told_line(intent)}" for intent in row.told]
        lines += [f"    {source_health_line(source)}" for source in row.sources]
    return lines


def status_table(rows: Sequence[StatusRow]) -> RenderableType:
    """The rich table: a row per rollout, under it a row per target (what it was last told and
    what it answered) and per live source (its reads); a rule between rollouts."""
    if not rows:
        return Text("no rollouts yet")
    table = Table(title="tidegate status", title_justify="left", title_style="bold", expand=True)
    table.add_column("rollout / target", no_wrap=True)
    table.add_column("state / outcome", no_wrap=True)
    table.add_column("traffic", justify="right", no_wrap=True)
    table.add_column("since / at", no_wrap=True)
    table.add_column("reason / operation", ratio=1)
    for row in rows:
        status = row.record.status
        table.add_row(
            Text(row.record.id, style="bold"),
            Text(status.state.value, style=STATE_STYLE.get(status.state.value, "")),
            f"{status.traffic}%",
            format_timestamp(status.since),
            status.reason,
            end_section=not row.told and not row.sources,
        )
        for i, intent in enumerate(row.told):
            table.add_row(*_told_cells(intent), end_section=i == len(row.told) - 1 and not row.sources)
        for i, health in enumerate(row.sources):
            table.add_row(*_source_cells(health), end_section=i == len(row.sources) - 1)
    return table


def _told_cells(intent: Intent) -> tuple[Text, Text, str, str, str]:
    outcome = intent.outcome or "unfinished"
    at = intent.finished_at if intent.finished_at is not None else intent.created_at
    return (
        Text(f"  {intent.operation.target}"),
        Text(outcome, style=OUTCOME_STYLE.get(outcome, "")),
        "",
        format_timestamp(at),
        intent.operation.describe(),
    )


def _source_cells(health: SourceHealth) -> tuple[Text, Text, str, str, Text]:
    failing = "red" if health.consecutive_failures else ""
    reads = Text(f"{health.ok_reads} ok / {health.failed_reads} failed", style=failing)
    error = "" if health.last_error_at is None else format_timestamp(health.last_error_at)
    return (Text(f"  source {health.source}"), reads, "", error, Text(health.last_error, style="dim"))


def watch_status(
    collect: Callable[[], list[StatusRow]],
    show: Callable[[list[StatusRow]], None],
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Show the rows every `interval` seconds until Ctrl-C, which ends the watch normally."""
    try:
        while True:
            show(collect())
            sleep(interval)
    except KeyboardInterrupt:
        return


def watch_table(
    collect: Callable[[], list[StatusRow]],
    console: Console,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """`status --watch` on a terminal: the table redrawn in place; the last one stays on screen."""
    every = format_duration(interval)
    with Live(console=console, auto_refresh=False) as live:

        def show(rows: list[StatusRow]) -> None:
            caption = Text(f"every {every} · {time.strftime('%H:%M:%S')} · Ctrl-C to stop", style="dim")
            live.update(Group(status_table(rows), caption), refresh=True)

        watch_status(collect, show, interval, sleep)


def print_json(rows: Sequence[StatusRow]) -> None:
    print(json.dumps([row.to_json() for row in rows]), flush=True)


def print_lines(rows: Sequence[StatusRow]) -> None:
    for line in status_lines(rows):
        print(line, flush=True)


def status_command(
    rollout: Annotated[str | None, typer.Argument(help="Rollout id or name; all when omitted.")] = None,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Show it again every --interval until Ctrl-C.")
    ] = False,
    interval: Annotated[str, typer.Option(help="With --watch: how often, e.g. 2s.")] = "2s",
    live: LiveOption = None,
) -> None:
    """Rollouts in the store: state, traffic, last reason, targets, and how each source's reads went."""
    every = positive_duration("--interval", interval)
    table = not as_json and wants_live(live, sys.stdout, as_json=False)
    store = open_store(state)
    try:

        def collect() -> list[StatusRow]:
            return status_rows(store, [find_rollout(store, rollout)] if rollout else store.list_rollouts())

        if watch and table:
            watch_table(collect, Console(force_terminal=True, highlight=False), every)
        elif watch:  # a pipe or a log: one snapshot after another (JSON: one array per line)
            watch_status(collect, print_json if as_json else _lines_and_gap, every)
        elif as_json:
            print_json(collect())
        elif table:
            Console(force_terminal=True, highlight=False).print(status_table(collect()))
        else:
            print_lines(collect())
    finally:
        store.close()


def _lines_and_gap(rows: list[StatusRow]) -> None:
    print_lines(rows)
    print(flush=True)
