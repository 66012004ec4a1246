"""Option values the commands share, checked the same way: a bad one is exit 2 naming the option."""

from __future__ import annotations

import click

from policies.durations import parse_duration


def positive_duration(name: str, text: str) -> float:
    """`--interval 2s` in seconds; a duration that is not one, or is not longer than 0, is a usage error."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0", param_hint=name)
    return seconds
