"""Signal histories the rules read: samples in time order with running sums.

A window query is two binary searches and one subtraction of running sums, never a scan,
so a tick costs O(log n) per rule whatever the window, and ingesting a sample is O(1)
amortised. The evaluator forgets samples no rule can need any more (`forget_through`).
The backtest bulk-loads recorded history a block of ticks ahead with `extend` (C-speed
`accumulate`); the live controller appends sample by sample. Both then read through the
same queries.

Samples live in `librt.vecs.vec[float]` (librt ships with mypyc and is pinned with it):
8 bytes a number instead of a pointer to a 24-byte float object, which is what lets one
process hold 10,000 rollouts' windows (docs/performance.md). Compiled, a vec is a length
and a buffer pointer inside the object and reading an element loads a C double; an
`array("d")`, used before, boxed a float object for every element read. A vec is a
value: `append` and `extend` return the vec to keep (they may have moved its buffer), so
each is stored back at once and no two fields ever share a buffer. Interpreted, a vec is
an ordinary sequence object, slower but the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Final, NamedTuple

from librt.vecs import append as vec_append
from librt.vecs import extend as vec_extend
from librt.vecs import vec

# Final: compiled, a C variable; otherwise a lookup in the module's dict at every use.
_FORGET_BATCH: Final = 16  # fewest stale samples worth a forget (a copy of what stays)
_NEVER: Final = float("-inf")
_UNKNOWN: Final = float("nan")


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
        # Compiled, the fields are laid out in the order of first assignment here, so the
        # ones a live tick reads come first and share the object's first cache lines: at
        # 10,000 rollouts every line a tick touches is a likely miss (docs/performance.md).
        #
        # The newest sample, kept beside the vecs: a live tick mostly wants just that, and
        # reading it here spares loads from the vecs' buffers elsewhere in memory.
        self.last_time = _NEVER
        self.last_value = 0.0
        self.last_sum = 0.0  # cums[-1]
        # The last `after` answer (an absolute index: where a window began), the times of
        # the samples on either side of it (NaN when unknown, so that no time matches) and
        # the running sum there: a window that slid by one sample reads one buffer, not
        # three, and one that did not move reads none.
        self.hint = 0
        self.hint_low = self.hint_high = _UNKNOWN
        self.hint_sum = 0.0
        self.dropped = 0
        self.times: vec[float] = vec[float]()
        # cums[i] = sum(values[:i]) (+ what was forgotten); left empty when no rule reads a
        # window sum (a plain threshold), which spares a buffer per gauge per rollout.
        self.cums: vec[float] = vec[float]([0.0]) if sums else vec[float]()
        self.values: vec[float] = vec[float]()
        self.late = 0  # samples inserted behind newer ones: they shift indices readers keep
        # The same as `hint` for the last `upto` answer that was not the whole series (a
        # window's end behind the newest sample: the backtest, which loads samples ahead of
        # the clock), with the running sum there, or for a series without sums the value of
        # the newest sample up to it (what `latest` answers).
        self.end = 0
        self.end_low = self.end_high = _UNKNOWN
        self.end_sum = self.end_value = 0.0

    def __len__(self) -> int:
        return len(self.times)

    def keep_sums(self) -> None:
        """Start keeping running sums (a rule that reads window sums was bound to this)."""
        if len(self.cums) == 0:
            self.cums = vec[float](accumulate(self.values, initial=0.0))
            self.last_sum = self.cums[len(self.cums) - 1]
            self._unhint()

    def append(self, time: float, value: float) -> None:
        if time < self.last_time:
            self._insert_late(time, value)
            return
        self.times = vec_append(self.times, time)
        self.values = vec_append(self.values, value)
        if len(self.cums) != 0:
            total = self.last_sum + value
            self.cums = vec_append(self.cums, total)
            self.last_sum = total
        self.last_time, self.last_value = time, value

    def extend(self, times: Sequence[float], values: Sequence[float]) -> None:
        """Bulk-load samples already sorted by time (the backtest's path)."""
        if not times:
            return
        if times[0] < self.last_time:
            for time, value in zip(times, values, strict=True):
                self.append(time, value)
            return
        self.times = vec_extend(self.times, times)
        self.values = vec_extend(self.values, values)
        if len(self.cums) != 0:
            sums = accumulate(values, initial=self.last_sum)
            next(sums)  # accumulate starts by repeating the initial value
            self.cums = vec_extend(self.cums, sums)
            self.last_sum = self.cums[len(self.cums) - 1]
        last = len(self.times) - 1
        self.last_time, self.last_value = self.times[last], self.values[last]

    def _insert_late(self, time: float, value: float) -> None:
        # Late samples are rare (a delayed scrape); rebuilding the sums behind them is fine.
        index = bisect_right(self.times, time, 0, len(self.times))
        self.late += 1
        self._unhint()
        self.times = _inserted(self.times, index, time)
        self.values = _inserted(self.values, index, value)
        if len(self.cums) != 0:
            rest = accumulate(self.values[index:], initial=self.cums[index])
            self.cums = vec_extend(self.cums[:index], rest)
            self.last_sum = self.cums[len(self.cums) - 1]

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
        index, low, high = _slide(self.times, index, self.end_high, time)  # the usual backtest tick
        self.end, self.end_low, self.end_high = index + self.dropped, low, high
        if len(self.cums) != 0:
            self.end_sum = self.cums[index]
        elif index > 0:
            self.end_value = self.values[index - 1]
        return index

    def after(self, time: float) -> int:
        """Number of samples with timestamp ≤ time (`bisect_right`), for a window's start.

        A window slides forward tick by tick, so its start is usually where it was last
        time, between the same two samples, or one sample further. The times of those two
        samples are kept in the object: then the answer costs two comparisons, or one
        read of the buffer (`_slide`), where a binary search reads about log2(n) samples,
        each likely a cache miss in a big controller. Appending never moves them; a late
        insert or a forget that reaches them resets them (`_unhint`).
        """
        index = self.hint - self.dropped
        if self.hint_low <= time < self.hint_high:
            return index
        index, low, high = _slide(self.times, index, self.hint_high, time)  # the usual live tick
        self.hint, self.hint_low, self.hint_high = index + self.dropped, low, high
        self.hint_sum = self.cums[index] if len(self.cums) != 0 else 0.0
        return index

    def _unhint(self) -> None:
        self.hint_low = self.hint_high = _UNKNOWN
        self.end_low = self.end_high = _UNKNOWN

    def before(self, time: float) -> int:
        """Number of samples with timestamp < time."""
        return bisect_left(self.times, time, 0, len(self.times))

    def latest(self, time: float, staleness: float) -> tuple[bool, float]:
        """(found, value): the newest value in (time − staleness, time]; found is False
        when there is none. (A flag, not `float | None`: compiled, the float stays a C
        double instead of being boxed, unboxed and boxed again by the caller.)"""
        if time >= self.last_time:  # every live tick: the newest sample is the answer
            return self.last_time > time - staleness, self.last_value
        end = self.upto(time)
        if end == 0 or self.end_low <= time - staleness:
            return False, 0.0
        return True, self.values[end - 1] if len(self.cums) != 0 else self.end_value

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

        The rest goes to fresh vecs rather than being shifted down in place: a buffer
        that once held a long history (a backfilled baseline) is then freed whole instead
        of staying pinned, mostly empty, in the C heap — that is most of a big
        controller's RSS otherwise.
        """
        times = self.times
        need = max(_FORGET_BATCH, (len(times) + 4) // 5)  # the fewest worth a copy
        if len(times) < need or times[need - 1] > time:
            return  # fewer than that to drop: one read instead of a binary search
        count = bisect_right(times, time, 0, len(times))
        self.times = self.times[count:]
        self.values = self.values[count:]
        self.cums = self.cums[count:]
        self.dropped += count
        if self.hint <= self.dropped:  # the sample below the start cursor is gone
            self.hint_low = self.hint_high = _UNKNOWN
        if self.end <= self.dropped:  # the same for the end cursor
            self.end_low = self.end_high = _UNKNOWN
        if len(self.times) == 0:
            self.last_time, self.last_value = _NEVER, 0.0


def _slide(times: vec[float], index: int, high: float, time: float) -> tuple[int, float, float]:
    """A cursor that stood at `index` (times[index - 1] ≤ its time < `high`), moved to
    `time`: (bisect_right(times, time), the sample times either side of it). One sample
    further, the common case, costs one read; anything else a binary search."""
    size = len(times)
    following = times[index + 1] if high <= time and 0 <= index < size - 1 else _UNKNOWN
    if following > time:  # slid past one sample
        return index + 1, high, following
    index = bisect_right(times, time, 0, size)
    low = times[index - 1] if index > 0 else _NEVER
    return index, low, times[index] if index < size else _UNKNOWN


def bisect_right(items: vec[float], x: float, low: int, high: int) -> int:
    """`bisect.bisect_right` for a vec, which `bisect` cannot read. Compiled, each probe is
    a load of a C double, where `bisect` over an array boxed a float per probe."""
    while low < high:
        middle = (low + high) // 2
        if x < items[middle]:
            high = middle
        else:
            low = middle + 1
    return low


def bisect_left(items: vec[float], x: float, low: int, high: int) -> int:
    """`bisect.bisect_left` for a vec (see `bisect_right`)."""
    while low < high:
        middle = (low + high) // 2
        if items[middle] < x:
            low = middle + 1
        else:
            high = middle
    return low


def _inserted(items: vec[float], index: int, item: float) -> vec[float]:
    """A copy of `items` with `item` at `index` (a late sample: rare)."""
    head = vec_append(items[:index], item)
    return vec_extend(head, items[index:])


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
