"""Options the commands share, checked the same way: a bad value is exit 2 naming the option."""

from __future__ import annotations

from typing import Annotated

import click
import typer

from policies.durations import parse_duration

StateOption = Annotated[str | None, typer.Option("--state", help="Store file (default .tidegate/state.db).")]
LiveOption = Annotated[
    bool | None,
    typer.Option(
        "--live/--plain",
        help="Live view, or one plain line per event (default: live on a terminal; $TIDEGATE_VIEW).",
    ),
]
ServerOption = Annotated[
    str | None, typer.Option("--server", help="A tidegate serve URL; the token comes from $TIDEGATE_TOKEN.")
]


def positive_duration(name: str, text: str) -> float:
    """`--interval 2s` in seconds; a duration that is not one, or is not longer than 0, is a usage error."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0", param_hint=name)
    return seconds
