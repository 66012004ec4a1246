"""Numbers and times as a person reads them in a report (every format uses these)."""

from __future__ import annotations

from datetime import UTC, datetime

from policies.durations import format_duration


def number(value: float | None, percent: bool = False) -> str:
    """`0.1709` → `17.09%` for a ratio, `26.6889` → `26.69`; None reads "no value"."""
    if value is None:
        return "no value"
    if percent:
        return f"{value * 100:.4g}%"
    return f"{value:.4g}"


def change(value: float | None) -> str:
    """A drift rule's relative change: `-0.123` → `-12.3% vs baseline`."""
    return "no value" if value is None else f"{value:+.1%} vs baseline"


def utc(at: float) -> str:
    """`2026-09-21 15:04:50 UTC`: the form runbooks ask timelines to use."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(at: float) -> str:
    """`15:04:50`: within a timeline whose date is already said."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%H:%M:%S")


def day(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d")


def span(start: float, end: float) -> str:
    """`1h15m`, rounded to the second."""
    seconds = max(0, round(end - start))
    return format_duration(seconds) if seconds else "0s"
