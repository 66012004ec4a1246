"""Prometheus-style durations (`30s`, `5m`, `1h30m`), the only duration syntax packs accept."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_UNIT_ORDER = ["y", "w", "d", "h", "m", "s", "ms"]
_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; units must appear largest first and at most once, as in Prometheus."""
    if text == "0":
        return 0.0
    pos, total, last_rank = 0, 0.0, -1
    if not text:
        raise ValueError("expected a duration like 5m, got ''")
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f"expected a duration like 5m, got {text!r}")
        rank = _UNIT_ORDER.index(match.group(2))
        if rank <= last_rank:
            raise ValueError(f"expected a duration like 1h30m (units largest first), got {text!r}")
        last_rank = rank
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total


def format_duration(seconds: float) -> str:
    """The shortest Prometheus-style spelling of `seconds` (`90` → `1m30s`)."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    parts = []
    for unit in _UNIT_ORDER:
        size = round(_UNIT_SECONDS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def describe_duration(seconds: float) -> str:
    """Plain words for explanations: `300` → `5 minutes`, `5400` → `1 hour 30 minutes`."""
    names = [("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)]
    remaining, words = round(seconds), []
    for name, size in names:
        count, remaining = divmod(remaining, size)
        if count:
            words.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(words) if words else "0 seconds"
