"""Timestamps as data files and the CLI write them: RFC 3339 or unix seconds, UTC out."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def parse_timestamp(text: str) -> float:
    """Unix seconds from `1700000000`, `1700000000.5` or `2026-11-28T03:00:00Z`.

    RFC 3339 needs an explicit offset: a naive local time would silently shift a backtest.
    """
    text = text.strip()
    if text[4:5] == "-":  # shaped like 2026-…: no number is, so skip a float() that would fail
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass  # not a date after all: the checks below say what is wrong with it
        else:
            return _rfc3339(text, moment)
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"expected a timestamp (RFC 3339 or unix seconds), got {text!r}")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a timestamp (RFC 3339 or unix seconds), got {text!r}") from None
    return _rfc3339(text, moment)


def _rfc3339(text: str, moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset (add Z or +00:00)")
    return moment.timestamp()


def format_timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with a trailing Z; sub-second digits only when there are some."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0") + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
