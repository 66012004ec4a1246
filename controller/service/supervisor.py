"""`tidegate serve`'s engine: leases decide which rollouts this replica works; each gets a
task that steps it at its interval or at once when woken.

    lease loop   every `lease.renew`: claim/renew leases; start a task for each new lease,
                 stop the tasks of lost ones, and hand back each lease the claim left out
                 of this replica's fair share once its task has stopped
    poll loop    every `poll`: new inbox events or manual requests in the store (from any
                 replica's API) wake the rollouts they concern
    rescan loop  every `rescan`: register new files of the rollouts folder
    per rollout  sleep until the next tick or a wake, then `RolloutWorker.step` in a thread

Every store call and every step runs in a thread (the store and the actuators block); the
event loop only schedules. A step never overlaps another of the same rollout: a rollout whose
lease is being handed back starts no new step, and is neither handed back nor started again
here before its step in flight has finished and journaled.

Stopping (SIGTERM): no new steps start, steps in flight finish (their journal is written
either way), leases are released so another replica takes over at once, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from adapters.sources import webhooks
from adapters.sources.registry import SourceContext
from controller.bootstrap import state_dir
from controller.core import machine
from controller.core.model import RolloutId, RolloutStatus, State
from controller.notify import Counters, Dispatcher
from controller.runtime import Event as RuntimeEvent
from controller.runtime import LiveRollout, Observer, Reconciler
from controller.service.buffers import CachedInbox, ReadsBuffer
from controller.service.config import ServiceConfig, WebhookConfig
from controller.service.logs import correlation_id
from controller.service.metrics import Metrics
from controller.service.webhooks import UnknownEndpoint, reads_endpoint, verify
from controller.service.worker import LeaseClock, RolloutWorker, describe_error
from controller.spec import LiveSource, RolloutSpec, load_rollout, spec_from_json
from controller.store.base import (
    AuditDraft,
    FencedOut,
    Lease,
    ManualRequest,
    RolloutRecord,
    StaleStatus,
    Store,
    StoreError,
    UnknownRollout,
)
from policies.errors import TidegateError

log = logging.getLogger("tidegate.service")
STEP_THREADS = 4  # steps block on the store and on targets; actuation fans out on its own pool
LEASE_MARGIN = 0.2  # of the ttl: stop acting this much before the lease's recorded expiry
FINISHED_KEPT = 100  # rollouts that finished here whose rule history the dashboard still shows


@dataclass
class Handle:
    worker: RolloutWorker
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    cause: str = ""  # correlation id of what woke it (an API request), for the step's logs
    requests: bool = True  # manual requests may wait in the store (always, at first)
    stopped: bool = False  # taken off this replica: a step queued for a thread does nothing


class Service:
    def __init__(
        self,
        config: ServiceConfig,
        store: Store,
        *,
        env: Mapping[str, str],
        observer: Observer | None = None,
        notifier: Dispatcher | None = None,
        metrics: Metrics | None = None,
        reader: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        # API reads go through their own connection, so a status read never waits behind a
        # rollout step's journal write (SQLite WAL and PostgreSQL both allow it)
        self.reader = reader or store
        # steps get threads of their own: API calls (on asyncio's default executor) never
        # queue behind thousands of scheduled steps
        self._steps = ThreadPoolExecutor(max_workers=STEP_THREADS, thread_name_prefix="tidegate-step")
        self.env = env
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.notifier = notifier
        self._observers = [o for o in (observer, notifier, self.metrics.observe) if o is not None]
        self.reads = ReadsBuffer(store)
        self.reconciler = Reconciler(store, self._observe, record_reads=self.reads.add)
        self.inbox = CachedInbox(store)
        # one HTTP client (connection pool) and one Prometheus batcher for every rollout's
        # sources: rollouts whose queries match share one request per tick
        self.context = SourceContext(env=env, inbox=self.inbox, http=httpx.Client())
        self.handles: dict[RolloutId, Handle] = {}
        self.leases: dict[RolloutId, Lease] = {}
        self.ready = False
        self.last_claim: float | None = None
        self._stopping = asyncio.Event()
        self._claim_now = asyncio.Event()
        # lost or surplus leases: their workers being stopped, then the surplus handed back
        self._retiring: dict[RolloutId, asyncio.Task[None]] = {}
        self._guards = {w.name: webhooks.ReplayGuard() for w in config.webhooks}
        self._files: dict[str, str] = {}  # rollouts folder: path → rollout id registered
        self.finished: dict[RolloutId, RolloutWorker] = {}  # newest FINISHED_KEPT, oldest first

    # --- the public face (API, CLI) ------------------------------------------------------

    def holds(self, rollout_id: RolloutId) -> bool:
        return rollout_id in self.handles

    def worker_of(self, rollout_id: RolloutId) -> RolloutWorker | None:
        """The worker of a rollout this replica holds, or held until it finished (recently)."""
        handle = self.handles.get(rollout_id)
        return handle.worker if handle is not None else self.finished.get(rollout_id)

    def live(self, rollout_id: RolloutId) -> LiveRollout | None:
        worker = self.worker_of(rollout_id)
        return None if worker is None else worker.rollout

    def rules_of(self, rollout_id: RolloutId) -> list[dict[str, object]] | None:
        """The rules as this replica last evaluated them (None when another replica holds it)."""
        handle = self.handles.get(rollout_id)
        rollout = handle.worker.rollout if handle is not None else None
        if rollout is None:
            return None
        return [
            {
                "policy": state.policy.id,
                "action": state.policy.action.value,
                "status": state.status.value,
                "value": state.value,
                "since": state.since,
            }
            for state in rollout.last_states
        ]

    def notification_counts(self) -> dict[str, Counters]:
        return {} if self.notifier is None else self.notifier.counters()

    def held_rollouts(self) -> list[LiveRollout]:
        return [h.worker.rollout for h in list(self.handles.values()) if h.worker.rollout is not None]

    def wake(self, rollout_id: RolloutId, cause: str = "", *, requests: bool = False) -> None:
        """Step the rollout now; `cause` (a request's correlation id) tags the step's logs;
        `requests`: manual requests wait in the store for it."""
        handle = self.handles.get(rollout_id)
        if handle is not None:
            handle.cause = cause or handle.cause
            handle.requests = handle.requests or requests
            handle.wake.set()

    async def register(self, spec: RolloutSpec, actor: str, rollout_id: str | None = None) -> RolloutRecord:
        """Create a rollout from a validated spec; some replica (likely this one) leases it."""
        now = self.clock()
        fingerprint = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:8]
        record = RolloutRecord(
            RolloutId(rollout_id or f"{spec.name}-{fingerprint}"),
            spec.name,
            spec.model_dump_json(by_alias=True),
            RolloutStatus(State.PENDING, traffic=0, step=0, since=now),
            now,
        )
        audit = AuditDraft(now, actor, "created", record.id, {"name": spec.name, "version": spec.version})
        await asyncio.to_thread(self.store.create_rollout, record, audit)
        self._claim_now.set()
        return record

    async def request(
        self, rollout_id: RolloutId, trigger: str, actor: str, reason: str, wait: float = 10.0
    ) -> ManualRequest:
        """Queue a person's act for whichever replica holds the rollout; wait for its outcome.

        An act the stored state already rules out (pausing a rolled-back release) is refused
        here with NotAllowed, at once; the holder checks again against the newest state."""
        record = await asyncio.to_thread(self.reader.get_rollout, rollout_id)
        if record is None:
            raise UnknownRollout(f"unknown rollout {rollout_id}")
        machine.act(record.status, trigger, spec_from_json(record.spec_json).shape, self.clock(), reason)
        request_id = await asyncio.to_thread(
            self.store.request_act, rollout_id, trigger, actor, reason, self.clock()
        )
        self.wake(rollout_id, correlation_id.get(), requests=True)
        deadline = time.monotonic() + wait
        while True:
            found = await asyncio.to_thread(self.reader.get_request, request_id)
            assert found is not None
            if found.outcome is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.02)

    async def deliver(self, endpoint: str, headers: Mapping[str, str], body: bytes) -> int:
        """Verify a webhook delivery, keep its events in the inbox; wake who reads them."""
        config = self._webhook(endpoint)
        secret = self.env.get(config.secret_env, "")
        now = self.clock()
        events = verify(config, headers, body, secret, now, self._guards[endpoint])
        added = await asyncio.to_thread(self.store.push_events, endpoint, events, now)
        if added:
            self.inbox.head = await asyncio.to_thread(self.store.inbox_head)
        self.metrics.webhook_events.labels(endpoint=endpoint).inc(added)
        for rollout_id, handle in self.handles.items():
            if any(reads_endpoint(source, endpoint) for source in handle.worker.spec.sources):
                self.wake(rollout_id, correlation_id.get())
        return added

    def _webhook(self, endpoint: str) -> WebhookConfig:
        for config in self.config.webhooks:
            if config.name == endpoint:
                return config
        raise UnknownEndpoint(f"no webhook endpoint {endpoint!r} in controller.yaml")

    # --- running ---------------------------------------------------------------------

    async def run(self) -> None:
        loops = [
            asyncio.create_task(self._lease_loop(), name="leases"),
            asyncio.create_task(self._poll_loop(), name="poll"),
        ]
        if self.config.rollouts is not None:
            loops.append(asyncio.create_task(self._rescan_loop(), name="rescan"))
        try:
            await self._stopping.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._stop_workers(list(self.handles))
            await asyncio.to_thread(self.reads.flush)
            await asyncio.to_thread(self.store.release_leases, self.config.replica)
            self._steps.shutdown(wait=True)
            log.info("released every lease; stopped")

    def stop(self) -> None:
        self._stopping.set()

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self._claim()
            except TidegateError as exc:
                self.ready = False
                log.error("cannot claim leases: %s", describe_error(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._claim_now.wait(), self.config.lease.renew)
            self._claim_now.clear()

    async def _claim(self) -> None:
        now, anchor = self.clock(), time.monotonic()  # before the claim: a lease starts no later
        leases = await asyncio.to_thread(
            self.store.claim_leases, self.config.replica, now, self.config.lease.ttl
        )
        self.last_claim, self.ready = now, True
        held = {lease.rollout_id: lease for lease in leases}
        before, self.leases = self.leases, held
        for rollout_id in [rollout_id for rollout_id in self.handles if rollout_id not in held]:
            self._retire(rollout_id, before.get(rollout_id))
        for rollout_id, lease in held.items():
            clock = LeaseClock.start(lease, now, anchor, LEASE_MARGIN * self.config.lease.ttl)
            handle = self.handles.get(rollout_id)
            if handle is not None:
                handle.worker.renew(clock)
            elif rollout_id not in self._retiring:  # else: started at a claim after its last step
                await self._start_worker(lease, clock)
        self.metrics.leases_held.set(len(self.handles))

    async def _start_worker(self, lease: Lease, clock: LeaseClock) -> None:
        record = await asyncio.to_thread(self.store.get_rollout, lease.rollout_id)
        if record is None:
            return
        try:
            worker = RolloutWorker(
                record,
                clock,
                self.store,
                self.reconciler,
                self.context,
                state_dir(),
                self.metrics.timed,
                trace_ticks=self.config.chart_ticks,
            )
        except TidegateError as exc:
            log.error("rollout %s cannot be loaded: %s", lease.rollout_id, describe_error(exc))
            return
        handle = Handle(worker)
        self.handles[lease.rollout_id] = handle
        handle.task = asyncio.create_task(self._work(handle), name=f"rollout {lease.rollout_id}")
        if lease.token > 1:
            self.metrics.takeovers.inc()
        log.info("took rollout %s (lease token %d)", lease.rollout_id, lease.token)

    async def _stop_workers(self, rollout_ids: list[RolloutId]) -> None:
        await _settle([*self._retiring.values(), *self._detach(rollout_ids)])

    def _retire(self, rollout_id: RolloutId, lease: Lease | None) -> None:
        """Stop the rollout's worker in the background (waiting here for its step in flight
        would hold up the renewal of every other lease), then hand `lease` back."""
        handle = self.handles.get(rollout_id)
        tasks = self._detach([rollout_id])
        if handle is not None and handle.worker.finished:
            lease = None  # a finished rollout's lease is nobody's concern
        self._retiring[rollout_id] = asyncio.create_task(self._hand_back(rollout_id, tasks, lease))

    async def _hand_back(
        self, rollout_id: RolloutId, tasks: list[asyncio.Task[None]], lease: Lease | None
    ) -> None:
        """Once the rollout's last step here has finished and journaled, release the lease
        we held, by holder and token: a lease another replica took meanwhile stays its own.
        Without this, a replica that joins would wait up to a ttl for its share to expire."""
        try:
            await _settle(tasks)
            if lease is None or rollout_id in self.leases:  # a later claim kept it after all
                return
            try:
                handed = await asyncio.to_thread(self.store.hand_back_lease, lease)
            except TidegateError as exc:
                log.warning("rollout %s: lease not handed back, it expires instead: %s", rollout_id, exc)
                return
            if handed:
                self.metrics.handbacks.inc()
                log.info(
                    "handed back rollout %s (lease token %d): beyond this replica's fair share",
                    rollout_id,
                    lease.token,
                    extra={"rollout": rollout_id},
                )
        finally:
            self._retiring.pop(rollout_id, None)

    def _detach(self, rollout_ids: list[RolloutId]) -> list[asyncio.Task[None]]:
        """Take the rollouts off this replica now; their tasks end once a step in flight ends."""
        tasks = []
        for rollout_id in rollout_ids:
            handle = self.handles.pop(rollout_id, None)
            if handle is not None:
                handle.stopped = True
            if handle is not None and handle.worker.finished:
                self._keep_finished(handle.worker)
            if handle is not None and handle.task is not None:
                handle.task.cancel()
                tasks.append(handle.task)
            if self.notifier is not None:  # its open incident is now another replica's to tell
                self.notifier.forget(rollout_id)
        return tasks

    def _keep_finished(self, worker: RolloutWorker) -> None:
        self.finished.pop(RolloutId(worker.id), None)
        self.finished[RolloutId(worker.id)] = worker
        while len(self.finished) > FINISHED_KEPT:
            del self.finished[next(iter(self.finished))]

    async def _work(self, handle: Handle) -> None:
        worker = handle.worker
        while not worker.finished:
            delay = worker.next_tick() - self.clock()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(handle.wake.wait(), delay)
            handle.wake.clear()
            cause, handle.cause = handle.cause, ""
            requests, handle.requests = handle.requests, False
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._steps, self._step, handle, cause, requests)
            step = asyncio.ensure_future(running)
            try:
                await asyncio.shield(step)
            except asyncio.CancelledError:
                await step  # let the step finish its journal writes before the task ends
                raise
            if step.result() is False:
                self.handles.pop(RolloutId(worker.id), None)
                self._claim_now.set()
                return

    def _step(self, handle: Handle, cause: str, requests: bool) -> bool:
        """One step in a thread; False when this replica must let the rollout go."""
        if handle.stopped:  # taken off this replica while the step waited for a thread
            return True
        worker = handle.worker
        started = time.perf_counter()
        correlation_id.set(cause or f"tick-{uuid.uuid4().hex[:12]}")  # this thread's context only
        try:
            worker.step(self.clock(), requests=requests)
        except FencedOut as exc:
            log.warning("let go of rollout %s: %s", worker.id, exc)
            return False
        except StaleStatus as exc:  # moved by someone else (a CLI act on the same store)
            log.warning("rollout %s changed under us; reloading it: %s", worker.id, exc)
            worker.rollout = None  # the next step reloads it from the store
        except TidegateError as exc:
            log.error("rollout %s: step failed: %s", worker.id, describe_error(exc))
        except Exception:
            log.exception("rollout %s: step crashed", worker.id)
        finally:
            self.metrics.tick_seconds.observe(time.perf_counter() - started)
        return True

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll)
            try:
                await self._poll()
            except TidegateError as exc:
                log.error("poll failed: %s", describe_error(exc))

    async def _poll(self) -> None:
        head, waiting = await asyncio.to_thread(self._pending)
        if head > self.inbox.head:  # events another replica received
            self.inbox.head = head
            for rollout_id, handle in self.handles.items():
                if any(isinstance(s, LiveSource) and s.kind == "pushed" for s in handle.worker.spec.sources):
                    self.wake(rollout_id)
        for rollout_id in waiting:
            self.wake(rollout_id, requests=True)

    def _pending(self) -> tuple[int, list[RolloutId]]:
        self.reads.flush()
        return self.store.inbox_head(), self.store.rollouts_with_requests()

    async def _rescan_loop(self) -> None:
        while True:
            try:
                await self.rescan()
            except TidegateError as exc:
                log.error("rescan failed: %s", describe_error(exc))
            await asyncio.sleep(self.config.rescan)

    async def rescan(self) -> list[RolloutId]:
        """Register the rollouts folder's new or changed files; a bad file is logged, skipped."""
        assert self.config.rollouts is not None
        registered: list[RolloutId] = []
        for path in sorted(Path(self.config.rollouts).glob("*.y*ml")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            if self._files.get(str(path)) == digest:
                continue
            try:
                spec = await asyncio.to_thread(load_rollout, str(path))
            except TidegateError as exc:
                log.error("%s", describe_error(exc))
                self._files[str(path)] = digest
                continue
            rollout_id = RolloutId(f"{spec.name}-{digest}")
            self._files[str(path)] = digest
            if await asyncio.to_thread(self.store.get_rollout, rollout_id) is not None:
                continue
            try:
                await self.register(spec, f"file:{path.name}", rollout_id)
            except StoreError as exc:  # another replica registered it first
                log.info("%s: %s", path.name, exc)
                continue
            registered.append(rollout_id)
            log.info("registered %s from %s", rollout_id, path)
        return registered

    def _observe(self, event: RuntimeEvent) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # an observer must never break a step
                log.exception("observer failed on %s", event.kind)


async def _settle(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for cancelled rollout tasks: each waits for its step thread, so a step in flight
    finishes and journals (or is fenced out) before the task ends."""
    await asyncio.gather(*tasks, return_exceptions=True)
