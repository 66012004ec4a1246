"""`tidegate status`: plain lines, a rich table on a terminal, JSON, or a watch.

The rows are read once per screen — from the store (`status_rows`), or with `--server` from a
running `tidegate serve`'s API (`rows_from_server`) — and each way of showing them is a
function of the rows alone, so both look the same and `--watch` is just "read, show, sleep"
until Ctrl-C. The plain lines and the JSON are the contract scripts and CI logs rely on; the
table is for a person at a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from controller.cli import remote
from controller.cli.lookup import find_rollout
from controller.cli.options import LiveOption, ServerOption, StateOption, positive_duration
from controller.cli.view import last_told, source_health_json, source_health_line, wants_live
from controller.core.model import RolloutStatus, State
from controller.store import open_store
from controller.store.base import Intent, RolloutRecord, SourceHealth, Store
from policies.durations import format_duration
from policies.timestamps import format_timestamp, parse_timestamp

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
IN_FLIGHT = "in flight"  # the API's word for a journaled operation without a result: ours is unfinished


@dataclass(frozen=True)
class Told:
    """What a target was last told (the operation, described) and what it answered."""

    target: str
    operation: str
    outcome: str | None  # None while the journal holds no result
    at: float | None  # when it answered, or was told while unfinished; None: the server did not say

    @classmethod
    def of(cls, intent: Intent) -> Told:
        at = intent.finished_at if intent.finished_at is not None else intent.created_at
        return cls(intent.operation.target, intent.operation.describe(), intent.outcome, at)

    def line(self) -> str:
        """`web: rollback(to 1.9.0) → applied`; `unfinished` while its result is not journaled."""
        return f"{self.target}: {self.operation} → {self.outcome or 'unfinished'}"


@dataclass(frozen=True)
class StatusRow:
    """One rollout as `tidegate status` shows it."""

    id: str
    name: str
    status: RolloutStatus
    told: Sequence[Told]  # the last operation per target
    sources: Sequence[SourceHealth]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.status.state.value,
            "traffic": self.status.traffic,
            "since": format_timestamp(self.status.since),
            "reason": self.status.reason,
            "targets": [told.line() for told in self.told],
            "sources": [source_health_json(h) for h in self.sources],
        }


def status_rows(store: Store, records: Sequence[RolloutRecord]) -> list[StatusRow]:
    """The rows from the store: each target's last operation in journal order."""
    return [
        StatusRow(
            r.id,
            r.name,
            r.status,
            [Told.of(intent) for intent in last_told(store.intents(r.id)).values()],
            store.source_health(r.id),
        )
        for r in records
    ]


def rows_from_server(details: Sequence[Mapping[str, Any]]) -> list[StatusRow]:
    """The rows from `GET /api/v1/rollouts/{id}` answers (docs/api.md): targets in the spec's
    order, those never told left out as in the store's rows. An answer of another shape (not a
    tidegate server, or one too old) is a RemoteError naming what was missing."""
    try:
        return [_row_from_server(detail) for detail in details]
    except (KeyError, TypeError, ValueError) as exc:
        raise remote.RemoteError(
            f"the server's answer is not a tidegate rollout ({type(exc).__name__}: {exc})"
        ) from None


def _row_from_server(detail: Mapping[str, Any]) -> StatusRow:
    status = RolloutStatus(
        State(detail["state"]),
        int(detail["traffic"]),
        int(detail["step"]),
        parse_timestamp(detail["since"]),
        int(detail["seq"]),
        str(detail["reason"]),
    )
    told = [
        Told(
            str(target["name"]),
            str(target["last_operation"]),
            None if target["outcome"] == IN_FLIGHT else str(target["outcome"]),
            _stamp(target.get("at")),
        )
        for target in detail["targets"]
        if target["last_operation"] is not None
    ]
    sources = [
        SourceHealth(
            str(source["source"]),
            int(source["ok_reads"]),
            int(source["failed_reads"]),
            int(source["consecutive_failures"]),
            _stamp(source["last_ok_at"]),
            _stamp(source["last_error_at"]),
            source["last_error"] or "",
        )
        for source in detail["sources"]
    ]
    return StatusRow(str(detail["id"]), str(detail["name"]), status, told, sources)


def _stamp(text: str | None) -> float | None:
    return None if text is None else parse_timestamp(text)


def status_lines(rows: Sequence[StatusRow]) -> list[str]:
    """The plain output: a line per rollout, then its targets' last operations and its sources."""
    if not rows:
        return ["no rollouts yet"]
    lines = []
    for row in rows:
        status, since = row.status, format_timestamp(row.status.since)
        state, reason = status.state.value, status.reason
        lines.append(f"{row.id:<28} {state:<14} {status.traffic:>3}%  since {since}  {reason}")
        lines += [f"    {told.line()}" for told in row.told]
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
        status = row.status
        table.add_row(
            Text(row.id, style="bold"),
            Text(status.state.value, style=STATE_STYLE.get(status.state.value, "")),
            f"{status.traffic}%",
            format_timestamp(status.since),
            status.reason,
            end_section=not row.told and not row.sources,
        )
        for i, told in enumerate(row.told):
            table.add_row(*_told_cells(told), end_section=i == len(row.told) - 1 and not row.sources)
        for i, health in enumerate(row.sources):
            table.add_row(*_source_cells(health), end_section=i == len(row.sources) - 1)
    return table


def _told_cells(told: Told) -> tuple[Text, Text, str, str, str]:
    outcome = told.outcome or "unfinished"
    return (
        Text(f"  {told.target}"),
        Text(outcome, style=OUTCOME_STYLE.get(outcome, "")),
        "",
        "" if told.at is None else format_timestamp(told.at),
        told.operation,
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
    server: ServerOption = None,
) -> None:
    """Rollouts in the store (or on a server): state, traffic, last reason, targets, and how
    each source's reads went."""
    every = positive_duration("--interval", interval)
    table = not as_json and wants_live(live, sys.stdout, as_json=False)
    if server is not None:  # the same rows, read through the server's API with $TIDEGATE_TOKEN
        _show(lambda: rows_from_server(remote.status(server, rollout)), as_json, table, watch, every)
        return
    store = open_store(state)
    try:

        def collect() -> list[StatusRow]:
            return status_rows(store, [find_rollout(store, rollout)] if rollout else store.list_rollouts())

        _show(collect, as_json, table, watch, every)
    finally:
        store.close()


def _show(
    collect: Callable[[], list[StatusRow]], as_json: bool, table: bool, watch: bool, every: float
) -> None:
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


def _lines_and_gap(rows: list[StatusRow]) -> None:
    print_lines(rows)
    print(flush=True)
