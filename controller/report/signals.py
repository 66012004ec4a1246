"""A stored rollout's signals, read again from where the rollout read them.

The rollout's stored spec names its sources: replay files are read again
(`bootstrap.read_signals`), live sources are asked for the rollout's time range
(`bootstrap.read_history`, from the rules' lookback before the start). A source that is gone —
a deleted file, an unreachable Prometheus, a missing token, data past its retention — never
fails the report: the answer says why, and the report shows the store's records without charts.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.bootstrap import Signals, live_sources, lookback, read_history, read_signals
from controller.report.readable import utc
from controller.spec import LiveSource, ReplaySource, RolloutSpec
from policies.errors import TidegateError
from policies.schema import Policy


@dataclass(frozen=True)
class Reread:
    signals: Signals | None  # None: no chart can be drawn
    notes: tuple[str, ...]  # how the data was read again, or why it could not be


def reread(spec: RolloutSpec, policies: list[Policy], start: float, end: float) -> Reread:
    """The rollout's data over (start − lookback, end], with the rollout starting at `start`."""
    if any(isinstance(s, LiveSource) for s in spec.sources):
        return _live(spec, policies, start, end)
    replay = [s for s in spec.sources if isinstance(s, ReplaySource)]
    if not replay:
        return Reread(None, ("the rollout names no sources, so there is nothing to read again",))
    files = ", ".join(f for s in replay for f in (s.data, s.events) if f)
    try:
        signals = read_signals(spec)
    except TidegateError as exc:
        return Reread(None, (f"the replay files cannot be read again: {exc}",))
    return Reread(
        Signals(signals.data, start, end, signals.events_given),
        (f"signals read again from the replay files {files}",),
    )


def _live(spec: RolloutSpec, policies: list[Policy], start: float, end: float) -> Reread:
    try:
        sources = live_sources(spec)
    except TidegateError as exc:
        return Reread(None, (f"the live sources cannot be set up: {exc}",))
    since = start - lookback(policies)
    signals, reads = read_history(sources, since, end, policies)
    notes = [
        f"signals read again from the live sources ({', '.join(s.name for s in sources)}) "
        f"for {utc(since)} → {utc(end)}; samples that arrived late or were deleted since "
        f"(retention) make the charts differ from what the rollout saw"
    ]
    failed = [read for read in reads if read.error is not None]
    notes += [f"source {read.source} could not be read: {read.error}" for read in failed]
    if reads and len(failed) == len(reads):
        return Reread(None, tuple(notes))
    return Reread(Signals(signals.data, start, end, signals.events_given), tuple(notes))
