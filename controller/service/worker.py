"""One leased rollout inside `tidegate serve`: load it, then step it when its time comes.

Synchronous on purpose — the service runs each step in a worker thread — so the tick is the
very code `tidegate run` uses: gather what arrived since the last read, do the people's
queued acts, then `Reconciler.step` (evaluate → decide → journal → actuate).

Clock. Ticks fall at start + k·interval on the wall clock (start = when the rollout was
registered), plus an extra step whenever a pushed event or a manual request arrives. A new
holder (after a restart or a takeover) first re-ticks the evaluator over the history up to
the last transition, which rebuilds every rule streak exactly (they are a pure function of
the data), then carries on; ticks missed while nobody held the rollout are stepped through
at once, in order, as `tidegate run` does after a restart.

Replayed signals (kind: replay) are shifted so that their `start:` falls on the rollout's
start: a recorded incident then plays out live, which is what demos and tests want.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.actuators.base import Actuator
from adapters.sources.base import Source
from adapters.sources.registry import SourceContext, build_source
from adapters.sources.replay import ReplayData
from controller.bootstrap import (
    Signals,
    build_evaluator,
    live_rollout,
    lookback,
    policies_of,
    read_history,
    read_signals,
    was_lowered,
)
from controller.core.decide import decide
from controller.core.machine import NotAllowed
from controller.driver import ReadCursor, gather
from controller.runtime import LiveRollout, Reconciler
from controller.spec import LiveSource, ReplaySource, RolloutSpec, spec_from_json
from controller.store.base import Lease, LeaseLost, RolloutRecord, SourceRead, Store
from policies.errors import TidegateError
from policies.trace import Trace

log = logging.getLogger("tidegate.service")
DEFAULT_INTERVAL = 30.0


@dataclass
class LeaseClock:
    """How long this replica may still act, on its own monotonic clock: the lease's expiry
    minus a safety margin. A replica frozen (SIGSTOP) past it notices on waking, before it
    touches a target; the store's fencing refuses its writes in any case."""

    lease: Lease
    valid_until: float  # time.monotonic() deadline

    @classmethod
    def start(cls, lease: Lease, now: float, anchor: float, margin: float) -> LeaseClock:
        """`now` (wall) and `anchor` (monotonic) were read together before the lease was
        claimed, so time spent claiming — or frozen meanwhile — counts against the lease."""
        return cls(lease, anchor + (lease.expires_at - now) - margin)

    def check(self) -> None:
        if time.monotonic() >= self.valid_until:
            raise LeaseLost(f"rollout {self.lease.rollout_id}: lease of {self.lease.holder} ran out")


class RolloutWorker:
    def __init__(
        self,
        record: RolloutRecord,
        lease: LeaseClock,
        store: Store,
        reconciler: Reconciler,
        context: SourceContext,
        state_dir: Path,
        instrument: Callable[[str, Actuator], Actuator] | None = None,
        trace_ticks: int = 0,
    ) -> None:
        self.record = record
        self.lease = lease
        self.store = store
        self.reconciler = reconciler
        self.spec: RolloutSpec = spec_from_json(record.spec_json)
        policies, interval = policies_of(self.spec)
        self.interval = interval or DEFAULT_INTERVAL
        self.start = record.created_at
        self.sources: list[Source] = [
            build_source(s.kind, s.name, s.settings, context)
            for s in self.spec.sources
            if isinstance(s, LiveSource)
        ]
        self._policies = policies
        self._state_dir = state_dir
        self._instrument = instrument
        self._trace_ticks = trace_ticks  # rule readings kept for the dashboard (0: none)
        self.rollout: LiveRollout | None = None
        self.next_k = 0
        self.last_step = -math.inf
        self.cursor = ReadCursor()  # per source: where its next read starts

    @property
    def id(self) -> str:
        return self.record.id

    def load(self, now: float) -> LiveRollout:
        """Read the history, build the evaluator and rebuild the rule streaks."""
        signals, reads = self._history(now)
        evaluator = build_evaluator(self._policies, signals)
        record = self.store.get_rollout(self.record.id) or self.record
        self.record = record
        rollout = live_rollout(
            record, self.spec, evaluator, self._state_dir, lowered=was_lowered(self.store, record.id)
        )
        if self._instrument is not None:
            kinds = {t.name: t.kind for t in self.spec.targets}
            rollout.actuators = {n: self._instrument(kinds[n], a) for n, a in rollout.actuators.items()}
        rollout.fence = self.lease.lease.fence
        rollout.guard = self.lease.check
        resume_at = 0
        if record.status.seq > 0:
            resume_at = math.floor((record.status.since - self.start) / self.interval + 1e-9) + 1
        trace = rollout.trace = Trace(evaluator.policies, self._trace_ticks) if self._trace_ticks else None
        for k in range(resume_at):  # the streaks as they were at the last transition
            at = self.start + k * self.interval
            rollout.last_states = evaluator.tick(at)
            rollout.last_verdict = decide(rollout.last_states)
            if trace is not None:
                trace.record(at, rollout.last_states)
        self.next_k = resume_at
        self.last_step = self.start + (resume_at - 1) * self.interval
        self.reconciler.record_reads(rollout, reads)
        self.rollout = rollout
        return rollout

    def renew(self, lease: LeaseClock) -> None:
        self.lease = lease
        if self.rollout is not None:
            self.rollout.fence = lease.lease.fence
            self.rollout.guard = lease.check

    def next_tick(self) -> float:
        return self.start + self.next_k * self.interval

    def step(self, now: float, *, requests: bool = True) -> None:
        """Every grid tick that is due, then one at `now` when it is off the grid (a wake).
        `requests`: people's acts may wait in the store (the service knows when)."""
        rollout = self.rollout if self.rollout is not None else self.load(now)
        if requests and self._moved_elsewhere(rollout):
            rollout = self.load(now)  # someone acted on the store directly: start from its state
        self._read(rollout, now)
        if requests:
            self._do_requests(rollout, now)
        stepped = False
        while self.next_tick() <= now and not self.finished:
            self.reconciler.step(rollout, self.next_tick())
            stepped = True
            self.last_step = self.next_tick()
            self.next_k += 1
        if not stepped and not self.finished and now > self.last_step:
            self.reconciler.step(rollout, now)  # a wake between ticks: react now, not at the next one
            self.last_step = now

    @property
    def finished(self) -> bool:
        return self.rollout is not None and self.rollout.status.state.terminal

    def _read(self, rollout: LiveRollout, now: float) -> None:
        if self.sources:  # each from where its last answered read ended (a failed one is re-read)
            gather(self.reconciler, rollout, self.sources, self.cursor, now)

    def _moved_elsewhere(self, rollout: LiveRollout) -> bool:
        """Whether the stored status moved past ours (checked when a person acts, the one
        moment a stale view would refuse them wrongly; a step finds out by StaleStatus)."""
        stored = self.store.get_rollout(rollout.id)
        return stored is not None and stored.status.seq != rollout.status.seq

    def _do_requests(self, rollout: LiveRollout, now: float) -> None:
        for request in self.store.pending_requests(rollout.id):
            try:
                move = self.reconciler.manual(rollout, request.trigger, now, request.actor, request.reason)
            except NotAllowed as exc:
                self.store.finish_request(request.id, "refused", str(exc), now, rollout.fence)
                continue
            detail = f"{move.before.state.value} → {move.after.state.value} at {move.after.traffic}%"
            self.store.finish_request(request.id, "done", detail, now, rollout.fence)

    def _history(self, now: float) -> tuple[Signals, list[SourceRead]]:
        data = ReplayData()
        if any(isinstance(s, ReplaySource) for s in self.spec.sources):
            replayed = read_signals(self.spec)
            data = _shifted(replayed.data, self.start - replayed.start)
        reads: list[SourceRead] = []
        events_given = any(isinstance(s, ReplaySource) and s.events is not None for s in self.spec.sources)
        if self.sources:
            since = self.start - lookback(self._policies)
            history, reads = read_history(self.sources, since, now, self._policies)
            horizon = max(lookback(self._policies), self.interval)
            self.cursor = ReadCursor.after_history(reads, since, now, horizon)
            data.columns.update(history.data.columns)
            data.events.extend(history.data.events)
            data.events.sort(key=lambda e: e.time)
            events_given = events_given or history.events_given
        return Signals(data, self.start, now, events_given), reads


def _shifted(data: ReplayData, by: float) -> ReplayData:
    columns = {
        column: ([t + by for t in times], list(values)) for column, (times, values) in data.columns.items()
    }
    events = [e._replace(time=e.time + by) for e in data.events]
    return ReplayData(columns, events)


def describe_error(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TidegateError) else f"{type(exc).__name__}: {exc}"


__all__ = ["LeaseClock", "RolloutWorker", "describe_error"]
