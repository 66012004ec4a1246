"""`tidegate report ROLLOUT`: what tidegate saw, decided and did, as a page, a timeline or JSON."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer

from controller.bootstrap import state_dir
from controller.cli.lookup import find_rollout
from controller.cli.options import StateOption
from controller.report import RENDERERS, render, rollout_report
from controller.store import open_store


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


def report_command(
    rollout: Annotated[str, typer.Argument(help="Rollout id or name (its latest rollout).")],
    format_: Annotated[
        str, typer.Option("--format", "-f", help="html (one offline page) | md (timeline) | json.")
    ] = "html",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write; '-' for stdout. Default: stdout for md/json, "
            ".tidegate/reports/ID.html for html.",
        ),
    ] = None,
    state: StateOption = None,
) -> None:
    """Charts of every rule with its threshold, streaks and decisions; what each target was told."""
    if format_ not in RENDERERS:
        raise click.BadParameter(f"expected one of {', '.join(RENDERERS)}", param_hint="--format")
    store = open_store(state)
    try:
        record = find_rollout(store, rollout)
        text = render(rollout_report(store, record, time.time()), format_)
    finally:
        store.close()
    if output == "-" or (output is None and format_ != "html"):
        sys.stdout.write(text)
        return
    path = Path(output) if output else state_dir() / "reports" / f"{record.id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(path)
