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

import struct
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from itertools import accumulate
from typing import NamedTuple

_FORGET_BATCH = 16  # fewest stale samples worth a forget (a copy of what stays)
_NEVER = float("-inf")
_UNKNOWN = float("nan")


class Series:
    """One numeric signal. Indices are local; `dropped` counts samples already forgotten."""

    __slots__ = (
        "cums",
        "dropped",
        "end",
        "end_high",
        "end_low",
        "end_sum",
        "end_value",
        "hint",
        "hint_high",
        "hint_low",
        "hint_sum",
        "last_sum",
        "last_time",
        "last_value",
        "late",
        "times",
        "values",
    )

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
        self.last_sum = 0.0  # cums[-1]
        # The last `after` answer (an absolute index: where a window began), the times of
        # the samples on either side of it (NaN when unknown, so that no time matches) and
        # the running sum there. Array reads box a float each; these are plain floats.
        self.hint = 0
        self.hint_low = self.hint_high = _UNKNOWN
        self.hint_sum = 0.0
        # The same for the last `upto` answer that was not the whole series (a window's
        # end behind the newest sample: the backtest, which loads samples ahead of the
        # clock), with the running sum there, or for a series without sums the value of
        # the newest sample up to it (what `latest` answers).
        self.end = 0
        self.end_low = self.end_high = _UNKNOWN
        self.end_sum = self.end_value = 0.0

    def __len__(self) -> int:
        return len(self.times)

    def keep_sums(self) -> None:
        """Start keeping running sums (a rule that reads window sums was bound to this)."""
        if not self.cums:
            self.cums = array("d", accumulate(self.values, initial=0.0))
            self.last_sum = self.cums[-1]
            self._unhint()

    def append(self, time: float, value: float) -> None:
        if time < self.last_time:
            self._insert_late(time, value)
            return
        self.times.append(time)
        self.values.append(value)
        cums = self.cums
        if cums:
            total = self.last_sum + value
            cums.append(total)
            self.last_sum = total
        self.last_time, self.last_value = time, value

    def extend(self, times: Sequence[float], values: Sequence[float]) -> None:
        """Bulk-load samples already sorted by time (the backtest's path)."""
        if not times:
            return
        if self.times and times[0] < self.times[-1]:
            for time, value in zip(times, values, strict=True):
                self.append(time, value)
            return
        self.times.frombytes(_packed(times))
        self.values.frombytes(_packed(values))
        if self.cums:
            sums = accumulate(values, initial=self.cums[-1])
            next(sums)  # accumulate starts by repeating the initial value
            self.cums.frombytes(struct.pack(f"{len(values)}d", *sums))
            self.last_sum = self.cums[-1]
        self.last_time, self.last_value = self.times[-1], self.values[-1]

    def _insert_late(self, time: float, value: float) -> None:
        # Late samples are rare (a delayed scrape); rebuilding the sums behind them is fine.
        index = bisect_right(self.times, time)
        self.late += 1
        self._unhint()
        insort(self.times, time)
        self.values.insert(index, value)
        if self.cums:
            base = self.cums[index]
            self.cums[index + 1 :] = array("d", accumulate(self.values[index:], initial=base))[1:]
            self.last_sum = self.cums[-1]

    def upto(self, time: float) -> int:
        """Number of samples with timestamp ≤ time (the end index of a (…, time] window).

        Live, the end is the newest sample. In the backtest samples are loaded ahead of
        the clock, so the end slides through the series tick by tick like a window's
        start, and is found the same way (`after`), from its own cursor.
        """
        if time >= self.last_time:
            return len(self.times)
        index = self.end - self.dropped
        if self.end_low <= time < self.end_high:
            return index
        times = self.times
        size = len(times)
        following = times[index + 1] if self.end_high <= time and 0 <= index < size - 1 else _UNKNOWN
        if following > time:  # slid past one sample: the usual backtest tick
            low, high, index = self.end_high, following, index + 1
        else:
            index = bisect_right(times, time)
            low = times[index - 1] if index > 0 else _NEVER
            high = times[index] if index < size else _UNKNOWN
        self.end, self.end_low, self.end_high = index + self.dropped, low, high
        if self.cums:
            self.end_sum = self.cums[index]
        elif index > 0:
            self.end_value = self.values[index - 1]
        return index

    def after(self, time: float) -> int:
        """Number of samples with timestamp ≤ time (`bisect_right`), for a window's start.

        A window slides forward tick by tick, so its start is usually where it was last
        time, between the same two samples, or one sample further. The times of those two
        samples are kept as plain floats: then the answer costs two comparisons, or one
        read of the array, where a binary search reads about log2(n) samples, each read
        boxing a float. Appending never moves them; a late insert or a forget that
        reaches them resets them (`_unhint`).
        """
        index = self.hint - self.dropped
        if self.hint_low <= time < self.hint_high:
            return index
        times = self.times
        size = len(times)
        following = times[index + 1] if self.hint_high <= time and 0 <= index < size - 1 else _UNKNOWN
        if following > time:  # slid past one sample: the usual live tick
            low, high, index = self.hint_high, following, index + 1
        else:
            index = bisect_right(times, time)
            low = times[index - 1] if index > 0 else _NEVER
            high = times[index] if index < size else _UNKNOWN
        self.hint, self.hint_low, self.hint_high = index + self.dropped, low, high
        self.hint_sum = self.cums[index] if self.cums else 0.0
        return index

    def _unhint(self) -> None:
        self.hint_low = self.hint_high = _UNKNOWN
        self.end_low = self.end_high = _UNKNOWN

    def before(self, time: float) -> int:
        """Number of samples with timestamp < time."""
        return bisect_left(self.times, time)

    def latest(self, time: float, staleness: float) -> tuple[bool, float]:
        """(found, value): the newest value in (time − staleness, time]; found is False
        when there is none. (A flag, not `float | None`: compiled, the float stays a C
        double instead of being boxed, unboxed and boxed again by the caller.)"""
        if time >= self.last_time:  # every live tick: the newest sample is the answer
            return self.last_time > time - staleness, self.last_value
        end = self.upto(time)
        if end == 0 or self.end_low <= time - staleness:
            return False, 0.0
        return True, self.values[end - 1] if self.cums else self.end_value

    def total(self, start: int, end: int) -> float:
        return self.cums[end] - self.cums[start]

    def window(self, start_time: float, end_time: float) -> tuple[float, int]:
        """(sum, count) of samples in (start_time, end_time]."""
        if end_time >= self.last_time:  # every live tick
            end, end_sum = len(self.times), self.last_sum
        else:
            end = self.upto(end_time)
            end_sum = self.end_sum
        start = self.after(start_time)
        if start >= end:
            return end_sum - end_sum, 0
        return end_sum - self.hint_sum, end - start

    def forget_through(self, time: float) -> None:
        """Drop samples at or before `time`, in batches: keeping the rest copies it, so it
        waits until the stale part is at least a fifth of the series (amortised O(1)).

        The rest goes to fresh arrays rather than being shifted down in place: a buffer
        that once held a long history (a backfilled baseline) is then freed whole instead
        of staying pinned, mostly empty, in the C heap — that is most of a big
        controller's RSS otherwise.
        """
        times = self.times
        need = max(_FORGET_BATCH, (len(times) + 4) // 5)  # the fewest worth a copy
        if len(times) < need or times[need - 1] > time:
            return  # fewer than that to drop: one read instead of a binary search
        count = bisect_right(times, time)
        self.times = self.times[count:]
        self.values = self.values[count:]
        self.cums = self.cums[count:]
        self.dropped += count
        if self.hint <= self.dropped:  # the sample below the start cursor is gone
            self.hint_low = self.hint_high = _UNKNOWN
        if self.end <= self.dropped:  # the same for the end cursor
            self.end_low = self.end_high = _UNKNOWN
        if not self.times:
            self.last_time, self.last_value = _NEVER, 0.0


def _packed(numbers: Sequence[float]) -> bytes:
    """The numbers as C doubles, for `array.frombytes`. An array stores each float it is
    given through a generic argument parser (~200 instructions a number, most of a bulk
    load); `struct` converts them at less than half of that."""
    return struct.pack(f"{len(numbers)}d", *numbers)


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
