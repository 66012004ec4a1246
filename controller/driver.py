"""The foreground loops behind `tidegate run` and `tidegate gate`, and their exit codes.

Ticks are at start + k·interval on the rollout's clock. Replayed signals run on a virtual
clock (as fast as the machine allows); a resumed rollout first re-ticks its evaluator up to
its last transition — the rule streaks are a pure function of the data, so this rebuilds
them exactly — and carries on from the next tick.

Live sources are read each tick from where their last answered read ended (`ReadCursor`):
a failed read is no data for that tick, is counted in the store (`tidegate status`), and its
interval is read again at the next tick — the tick interval is the backoff between attempts,
and what arrived during a short outage (samples, incidents) is not lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from adapters.sources.base import Source
from controller.core.decide import Decision, decide
from controller.core.model import State
from controller.runtime import LiveRollout, Reconciler
from controller.store.base import SourceRead
from policies.errors import TidegateError

EXIT_HEALTHY, EXIT_LOWERED, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3


class Mode(Enum):
    RUN = "run"  # drive the progressive rollout through its steps
    GATE = "gate"  # watch at the current traffic; step down or roll back, never up


@dataclass(frozen=True)
class Outcome:
    code: int
    summary: str


@dataclass
class ReadCursor:
    """Per source, the end of its last answered read: where its next read starts.

    A failed read moves nothing, so the next tick reads that interval again with what
    arrived since. Never further back than `horizon` before the tick (the history the rules
    need, bootstrap.lookback): after a long outage older data is outside every rule's window,
    and re-reading it would only grow each read (an incident feed's paging limit included).
    """

    answered: dict[str, float] = field(default_factory=dict)
    horizon: float = math.inf

    @classmethod
    def after_history(
        cls, reads: Sequence[SourceRead], start: float, end: float, horizon: float
    ) -> ReadCursor:
        """After the history read of (start, end]: a source that answered goes on from `end`,
        one that failed reads the whole history again at the first tick."""
        return cls({read.source: end if read.error is None else start for read in reads}, horizon)

    def start(self, source: str, end: float) -> float:
        return max(self.answered.get(source, -math.inf), end - self.horizon)


def first_tick(rollout: LiveRollout, start: float, interval: float) -> int:
    if rollout.status.seq == 0:  # nothing happened yet (a new run, or a gate watching)
        return 0
    return math.floor((rollout.status.since - start) / interval + 1e-9) + 1


def drive(
    reconciler: Reconciler,
    rollout: LiveRollout,
    *,
    start: float,
    interval: float,
    until: float,
    mode: Mode,
    on_tick: Callable[[float], None] = lambda now: None,
) -> Outcome:
    """The virtual-clock loop; `on_tick(now)` after each step (the CLI's live view redraws)."""
    resume_at = first_tick(rollout, start, interval)
    for k in range(resume_at):  # rebuild rule streaks silently
        rollout.last_states = rollout.evaluator.tick(start + k * interval)
        rollout.last_verdict = decide(rollout.last_states)
    k = resume_at
    while (now := start + k * interval) <= until:
        reconciler.step(rollout, now, watch_only=mode is Mode.GATE)
        on_tick(now)
        state = rollout.status.state
        if state.terminal or state is State.FAILED or (reconciler.dry_run and state is State.ROLLING_BACK):
            break
        k += 1
    return outcome(rollout, mode)


def outcome(rollout: LiveRollout, mode: Mode) -> Outcome:
    state = rollout.status.state
    if state in (State.ROLLED_BACK, State.ROLLING_BACK):
        return Outcome(EXIT_LOWERED, f"rolled back ({rollout.status.reason})")  # or would have, dry
    if state is State.FAILED:
        return Outcome(EXIT_LOWERED, f"failed: {rollout.status.reason}; humans were paged")
    if rollout.lowered:
        return Outcome(
            EXIT_LOWERED, f"traffic was stepped down; now {state.value} at {rollout.status.traffic}%"
        )
    if state is State.PROMOTED:
        return Outcome(EXIT_HEALTHY, "promoted to 100%")
    verdict = rollout.last_verdict
    if verdict is None or verdict.decision is Decision.HOLD:
        return Outcome(EXIT_INCONCLUSIVE, "inconclusive: not enough data to call the release healthy")
    if mode is Mode.GATE:
        return Outcome(EXIT_HEALTHY, f"healthy for the whole watch at {rollout.status.traffic}%")
    return Outcome(EXIT_INCONCLUSIVE, f"signals ended while {state.value} at {rollout.status.traffic}%")


def drive_live(
    reconciler: Reconciler,
    rollout: LiveRollout,
    sources: Sequence[Source],
    *,
    start: float,
    interval: float,
    until: float,
    mode: Mode,
    cursor: ReadCursor,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_tick: Callable[[float], None] = lambda now: None,
) -> Outcome:
    """The wall-clock loop: at each tick, read what arrived since each source's last answered
    read, feed the evaluator, then step. A source that fails gives no data for that tick (its
    rules see no value; `on_no_data` decides), never a fabricated zero; it is reported,
    counted, and read again from the same point at the next tick."""
    resume_at = first_tick(rollout, start, interval)
    for k in range(resume_at):  # rebuild rule streaks from the history already loaded
        rollout.last_states = rollout.evaluator.tick(start + k * interval)
        rollout.last_verdict = decide(rollout.last_states)
    k = resume_at
    while (now := start + k * interval) <= until:
        if (delay := now - clock()) > 0:
            sleep(delay)
        gather(reconciler, rollout, sources, cursor, now)
        reconciler.step(rollout, now, watch_only=mode is Mode.GATE)
        on_tick(now)
        state = rollout.status.state
        if state.terminal or state is State.FAILED or (reconciler.dry_run and state is State.ROLLING_BACK):
            break
        k += 1
    return outcome(rollout, mode)


def gather(
    reconciler: Reconciler, rollout: LiveRollout, sources: Sequence[Source], cursor: ReadCursor, end: float
) -> None:
    """Read every source from its cursor to `end` into the rollout's evaluator; count each read."""
    evaluator = rollout.evaluator
    reads: list[SourceRead] = []
    for source in sources:
        start = cursor.start(source.name, end)
        if start >= end:
            continue  # already read up to this tick (the history read, on a fresh rollout)
        try:
            result = source.read(start, end)
        except TidegateError as exc:
            reconciler.note(rollout, end, "source", f"{source.name}: no data this tick: {exc}")
            reads.append(SourceRead(source.name, end, str(exc)))
            continue
        cursor.answered[source.name] = end
        reads.append(SourceRead(source.name, end))
        for column, (times, values) in result.columns.items():
            evaluator.load(column, times, values)
        for event in result.events:
            evaluator.observe_event(event)
    reconciler.record_reads(rollout, reads)
