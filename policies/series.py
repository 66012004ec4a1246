"""Signal histories the rules read: samples in time order with running sums.

A window query is two binary searches and one subtraction of running sums, never a scan,
so a tick costs O(log n) per rule whatever the window, and ingesting a sample is O(1)
amortised. The evaluator forgets samples no rule can need any more (`forget_through`).
The backtest bulk-loads recorded history a block of ticks ahead with `extend` (C-speed
`accumulate`); the live controller appends sample by sample. Both then read through the
same queries.

Samples live in `array("d")`, not lists: 8 bytes a number instead of a pointer to a
24-byte float object, which is what lets one process hold 10,000 rollouts' windows
(docs/performance.md). A value read back from the arrays is therefore a float.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from itertools import accumulate
from typing import NamedTuple

_FORGET_BATCH = 16  # fewest stale samples worth a forget (a copy of what stays)
_NEVER = float("-inf")


class Series:
    """One numeric signal. Indices are local; `dropped` counts samples already forgotten."""

    __slots__ = ("cums", "dropped", "last_time", "last_value", "late", "times", "values")

    def __init__(self, *, sums: bool = True) -> None:
        self.times: array[float] = array("d")
        self.values: array[float] = array("d")
        # cums[i] = sum(values[:i]) (+ what was forgotten); left empty when no rule reads a
        # window sum (a plain threshold), which spares an array per gauge per rollout.
        self.cums: array[float] = array("d", (0.0,)) if sums else array("d")
        self.dropped = 0
        self.late = 0  # samples inserted behind newer ones: they shift indices readers keep
        # The newest sample, kept beside the arrays: a live tick mostly wants just that, and
        # reading it here spares four memory loads (two arrays and their buffers) per rule.
        self.last_time = _NEVER
        self.last_value = 0.0

    def __len__(self) -> int:
        return len(self.times)

    def keep_sums(self) -> None:
        """Start keeping running sums (a rule that reads window sums was bound to this)."""
        if not self.cums:
            self.cums = array("d", accumulate(self.values, initial=0.0))

    def append(self, time: float, value: float) -> None:
        if time < self.last_time:
            self._insert_late(time, value)
            return
        self.times.append(time)
        self.values.append(value)
        cums = self.cums
        if cums:
            cums.append(cums[-1] + value)
        self.last_time, self.last_value = time, value

    def extend(self, times: Sequence[float], values: Sequence[float]) -> None:
        """Bulk-load samples already sorted by time (the backtest's path)."""
        if not times:
            return
        if self.times and times[0] < self.times[-1]:
            for time, value in zip(times, values, strict=True):
                self.append(time, value)
            return
        self.times.extend(times)
        self.values.extend(values)
        if self.cums:
            sums = accumulate(values, initial=self.cums[-1])
            next(sums)  # accumulate starts by repeating the initial value
            self.cums.extend(sums)
        self.last_time, self.last_value = self.times[-1], self.values[-1]

    def _insert_late(self, time: float, value: float) -> None:
        # Late samples are rare (a delayed scrape); rebuilding the sums behind them is fine.
        index = bisect_right(self.times, time)
        self.late += 1
        insort(self.times, time)
        self.values.insert(index, value)
        if self.cums:
            base = self.cums[index]
            self.cums[index + 1 :] = array("d", accumulate(self.values[index:], initial=base))[1:]

    def upto(self, time: float) -> int:
        """Number of samples with timestamp ≤ time (the end index of a (…, time] window)."""
        if time >= self.last_time:
            return len(self.times)
        return bisect_right(self.times, time)

    def before(self, time: float) -> int:
        """Number of samples with timestamp < time."""
        return bisect_left(self.times, time)

    def latest(self, time: float, staleness: float) -> float | None:
        """The newest value in (time − staleness, time], or None when there is none."""
        if time >= self.last_time:  # every live tick: the newest sample is the answer
            return self.last_value if self.last_time > time - staleness else None
        times = self.times
        end = bisect_right(times, time)
        if end == 0 or times[end - 1] <= time - staleness:
            return None
        return self.values[end - 1]

    def total(self, start: int, end: int) -> float:
        return self.cums[end] - self.cums[start]

    def window(self, start_time: float, end_time: float) -> tuple[float, int]:
        """(sum, count) of samples in (start_time, end_time]."""
        times = self.times
        end = len(times) if end_time >= self.last_time else bisect_right(times, end_time)
        start = bisect_right(times, start_time, 0, end)
        cums = self.cums
        return cums[end] - cums[start], end - start

    def forget_through(self, time: float) -> None:
        """Drop samples at or before `time`, in batches: keeping the rest copies it, so it
        waits until the stale part is at least a fifth of the series (amortised O(1)).

        The rest goes to fresh arrays rather than being shifted down in place: a buffer
        that once held a long history (a backfilled baseline) is then freed whole instead
        of staying pinned, mostly empty, in the C heap — that is most of a big
        controller's RSS otherwise.
        """
        count = bisect_right(self.times, time)
        if count < _FORGET_BATCH or count * 5 < len(self.times):
            return
        self.times = self.times[count:]
        self.values = self.values[count:]
        self.cums = self.cums[count:]
        self.dropped += count
        if not self.times:
            self.last_time, self.last_value = _NEVER, 0.0


class RatioSeries(NamedTuple):
    """A ratio signal as its two counters: Σnum / Σden over a window is its value."""

    num: Series
    den: Series


class Event(NamedTuple):
    """One event of an event stream (incidents, alerts); `fields` are what `match` compares."""

    time: float
    signal: str
    id: str | None
    fields: dict[str, object]
