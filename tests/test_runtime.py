"""The runtime shell (`Reconciler`): journal, then act; retries; failure pages a human; manual
acts are audited; a crash leaves a journal that `recover` finishes (docs/rollouts.md
"Crash safety"). Real SQLite store, real sandbox targets built by the composition root;
the only test doubles are small actuators wrapped around real sandboxes."""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tenacity

from adapters.actuators.base import Actuator, Observed, Result
from adapters.actuators.sandbox import Outcome, Sandbox
from adapters.errors import RateLimited, Transient
from controller.bootstrap import live_rollout
from controller.core.machine import NotAllowed
from controller.core.model import RolloutId, RolloutStatus, State
from controller.runtime import AUTOMATIC, Event, LiveRollout, Reconciler
from controller.spec import load_rollout
from controller.store.base import AuditDraft, AuditEntry, RolloutRecord
from controller.store.sqlite import SqliteStore
from policies.evaluator import Evaluator, SignalKind
from policies.loader import parse_pack
from policies.operations import Op, Operation
from tests.test_machine_properties import JournalCheckingActuator

PACK = """apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: t}
policies:
  - {id: latency, signal: latency, when: "> 1", staleness: 1m, action: step_down}
  - {id: errors, signal: errors, when: "> 0.5", staleness: 1m, action: rollback}
"""
HEAD = """apiVersion: tidegate/v1
kind: Rollout
metadata: {name: shop}
version: "2.0"
previousVersion: "1.0"
policies: [library:runbook]
targets:
"""
ROLLOUT_ID = RolloutId("shop-1")
START = 1_000_000.0
NOW = START + 3600.0


def target(name: str, emulates: str, **settings: object) -> str:
    fields = {"emulates": emulates, "version": "2.0", "previous_version": "1.0", "traffic": 100} | settings
    return f"  - name: {name}\n    kind: sandbox\n    settings: {json.dumps(fields)}\n"


@dataclass
class World:
    """One rollout in a fresh store, its sandbox targets in tmp_path, and what the runtime said."""

    folder: Path
    store: SqliteStore
    rollout: LiveRollout
    events: list[Event] = field(default_factory=list)

    def reconciler(self, *, attempts: int = 3, backoff: float = 0.001, dry_run: bool = False) -> Reconciler:
        return Reconciler(self.store, self.events.append, attempts=attempts, backoff=backoff, dry_run=dry_run)

    def sandbox(self, name: str) -> Sandbox:
        actuator = self.rollout.actuators[name]
        while not isinstance(actuator, Sandbox):
            actuator = actuator.inner  # type: ignore[attr-defined]
        return actuator

    def signals(self, now: float, *, latency: float = 0.0, errors: float = 0.0) -> None:
        self.rollout.evaluator.observe("latency", now, latency)
        self.rollout.evaluator.observe("errors", now, errors)

    def audit(self, kind: str) -> list[AuditEntry]:
        return [e for e in self.store.audit_log(self.rollout.id) if e.kind == kind]

    def reload(self) -> LiveRollout:
        """The rollout as a restarted process builds it: from the store's record."""
        record = self.store.get_rollout(self.rollout.id)
        assert record is not None
        spec = load_rollout(str(self.folder / "rollout.yaml"))
        return live_rollout(record, spec, self.rollout.evaluator, self.folder)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    stores: list[SqliteStore] = []

    def make(*targets: str, status: RolloutStatus | None = None) -> World:
        (tmp_path / "rollout.yaml").write_text(HEAD + "".join(targets), encoding="utf-8")
        spec = load_rollout(str(tmp_path / "rollout.yaml"))
        store = SqliteStore(tmp_path / "state.db")
        stores.append(store)
        status = status or RolloutStatus(State.PROGRESSING, 100, 2, START)
        record = RolloutRecord(ROLLOUT_ID, spec.name, spec.model_dump_json(), status, START)
        store.create_rollout(record, AuditDraft(START, AUTOMATIC, "created", ROLLOUT_ID, {}))
        kinds = {"latency": SignalKind.PLAIN, "errors": SignalKind.PLAIN}
        evaluator = Evaluator(parse_pack(PACK, "t.yaml").policies, start=START, kinds=kinds)
        rollout = live_rollout(record, spec, evaluator, tmp_path)
        for actuator in rollout.actuators.values():
            # One at a time, before any test: a brand-new sandbox file first used from parallel
            # threads can answer "database is locked" (a Transient) and eat an attempt.
            actuator.observe()
        return World(tmp_path, store, rollout)

    yield make
    for store in stores:
        store.close()


def outcomes(world: World) -> dict[str, str | None]:
    return {i.operation.target: i.outcome for i in world.store.intents(world.rollout.id)}


# --- journal, then act -----------------------------------------------------------------


def test_a_step_down_verdict_is_journaled_then_each_target_is_told_once(
    make_world: Callable[..., World],
) -> None:
    world = make_world(
        target("web", "vercel"),
        target("flag", "launchdarkly"),
        target("backend", "argocd"),
        target("edge", "supabase-functions"),
    )
    for name, actuator in list(world.rollout.actuators.items()):
        world.rollout.actuators[name] = JournalCheckingActuator(actuator, world.store, world.rollout.id)
    world.signals(NOW, latency=5.0)

    move = world.reconciler().step(world.rollout, NOW)

    assert move is not None
    assert (move.trigger, world.rollout.status.state, world.rollout.status.traffic) == (
        "step_down",
        State.STEPPING_DOWN,
        50,
    )
    assert outcomes(world) == {"web": "applied", "flag": "applied", "backend": "applied"}  # edge: no API
    for name, op in [("web", Op.SET_TRAFFIC), ("flag", Op.SET_TRAFFIC), ("backend", Op.PAUSE)]:
        (received,) = world.sandbox(name).operations()
        assert (received.op, received.outcome) == (op, Outcome.APPLIED)
        assert received.key == f"shop-1/1/{name}/{op.value}/{50 if op is Op.SET_TRAFFIC else ''}"
        assert world.rollout.actuators[name].applied == [received.key]  # type: ignore[attr-defined]
    assert world.sandbox("edge").operations() == []
    assert world.sandbox("web").state().traffic == 50
    (row,) = world.store.transitions(world.rollout.id)
    assert (row.trigger, row.before, row.after, row.traffic, row.actor) == (
        "step_down",
        "progressing",
        "stepping_down",
        50,
        AUTOMATIC,
    )
    assert row.reason == "step_down: latency"
    assert [e.kind for e in world.store.audit_log(world.rollout.id)] == [
        "created",
        "decision",
        "transition",
        "action",
        "action",
        "action",
    ]
    stored = world.store.get_rollout(world.rollout.id)
    assert stored is not None
    assert stored.status == world.rollout.status


def test_transient_failures_are_retried_until_they_succeed(make_world: Callable[..., World]) -> None:
    world = make_world(target("web", "vercel", fail_times=2))
    world.signals(NOW, latency=5.0)

    world.reconciler(attempts=3).step(world.rollout, NOW)

    assert world.rollout.status.state is State.STEPPING_DOWN
    assert outcomes(world) == {"web": "applied"}
    assert [op.outcome for op in world.sandbox("web").operations()] == [
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
        Outcome.APPLIED,
    ]
    assert world.audit("page") == []


def test_an_operation_that_keeps_failing_fails_the_rollout_and_pages(
    make_world: Callable[..., World],
) -> None:
    world = make_world(target("web", "vercel", fail_always=True), target("flag", "launchdarkly"))
    world.signals(NOW, latency=5.0)

    world.reconciler(attempts=3).step(world.rollout, NOW)

    assert world.rollout.status.state is State.FAILED
    assert world.rollout.status.traffic == 50  # where the step down left it
    assert "web" in world.rollout.status.reason
    intents = world.store.intents(world.rollout.id)
    assert all(i.outcome is not None for i in intents), "an operation was left without a record"
    assert outcomes(world) == {"web": "failed", "flag": "applied"}
    (web,) = [i for i in intents if i.operation.target == "web"]
    assert "gave up after 3 attempts" in web.detail
    assert len(world.sandbox("web").operations()) == 3
    assert [t.trigger for t in world.store.transitions(world.rollout.id)] == ["step_down", "fail"]
    (page,) = world.audit("page")
    assert "web" in json.loads(page.payload_json)["reason"]
    assert any(e.kind == "page" and "web" in e.text for e in world.events)
    stored = world.store.get_rollout(world.rollout.id)
    assert stored is not None
    assert stored.status.state is State.FAILED


def test_a_refused_operation_fails_the_rollout_and_pages(make_world: Callable[..., World]) -> None:
    world = make_world(target("web", "vercel", refuse=["set_traffic"]))
    world.signals(NOW, latency=5.0)

    world.reconciler().step(world.rollout, NOW)

    assert world.rollout.status.state is State.FAILED
    assert outcomes(world) == {"web": "refused"}
    assert [op.outcome for op in world.sandbox("web").operations()] == [Outcome.REFUSED]  # not retried
    assert len(world.audit("page")) == 1


def test_a_failing_promotion_still_pages_though_promoted_is_final(make_world: Callable[..., World]) -> None:
    world = make_world(
        target("web", "vercel", traffic=10, refuse=["set_traffic"]),
        status=RolloutStatus(State.FAILED, 10, 0, START, seq=0),
    )

    world.reconciler().manual(world.rollout, "promote", NOW, actor="alice", reason="ship it")

    assert world.rollout.status.state is State.PROMOTED
    assert outcomes(world) == {"web": "refused"}
    (page,) = world.audit("page")
    assert "web" in json.loads(page.payload_json)["reason"]


# --- Retry-After ----------------------------------------------------------------------


@dataclass
class RateLimitedOnce:
    """A test double around a real sandbox: the first apply is answered with a 429."""

    inner: Actuator
    error: Transient
    calls: int = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self.inner.capabilities

    def observe(self) -> Observed:
        return self.inner.observe()

    def apply(self, operation: Operation, key: str) -> Result:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        return self.inner.apply(operation, key)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """tenacity's waits, recorded instead of slept (its default sleep calls nap's `time.sleep`)."""
    waited: list[float] = []
    monkeypatch.setattr(tenacity.nap, "time", types.SimpleNamespace(sleep=waited.append))
    return waited


@pytest.mark.parametrize(
    ("error", "low", "high"),
    [
        (RateLimited("429 Too Many Requests", retry_after=0.01), 0.01, 0.01),  # the vendor's word
        (RateLimited("429 without Retry-After"), 2.5, 5.0),  # first backoff: ½–1× `backoff`
        (Transient("timeout"), 2.5, 5.0),
    ],
)
def test_retry_after_is_honoured(
    make_world: Callable[..., World], sleeps: list[float], error: Transient, low: float, high: float
) -> None:
    world = make_world(target("web", "vercel"))
    double = RateLimitedOnce(world.rollout.actuators["web"], error)
    world.rollout.actuators["web"] = double
    world.signals(NOW, latency=5.0)

    world.reconciler(backoff=5.0).step(world.rollout, NOW)

    assert double.calls == 2
    assert outcomes(world) == {"web": "applied"}
    assert len(sleeps) == 1
    assert low <= sleeps[0] <= high


def test_an_error_the_adapter_already_retried_is_not_retried_again(
    make_world: Callable[..., World], sleeps: list[float]
) -> None:
    """VendorHttp retries to its own cap and marks the error: no 4 × 4 request storms."""
    world = make_world(target("web", "vercel"))
    exhausted = Transient("503 after the adapter's own retries")
    exhausted.retried = True
    double = RateLimitedOnce(world.rollout.actuators["web"], exhausted)
    world.rollout.actuators["web"] = double
    world.signals(NOW, latency=5.0)

    world.reconciler(backoff=5.0).step(world.rollout, NOW)

    assert double.calls == 1
    assert sleeps == []
    assert outcomes(world) == {"web": "failed"}


# --- dry run -----------------------------------------------------------------------------


def test_a_dry_run_journals_nothing_and_touches_no_target(make_world: Callable[..., World]) -> None:
    world = make_world(target("web", "vercel"), target("ios", "app-store"))
    audit_before = world.store.audit_log()
    world.signals(NOW, errors=1.0)

    move = world.reconciler(dry_run=True).step(world.rollout, NOW)

    assert move is not None
    assert world.rollout.status.state is State.ROLLING_BACK  # what would have happened
    assert world.store.transitions(world.rollout.id) == []
    assert world.store.intents(world.rollout.id) == []
    assert world.store.audit_log() == audit_before
    stored = world.store.get_rollout(world.rollout.id)
    assert stored is not None
    assert stored.status.state is State.PROGRESSING
    for name in ("web", "ios"):
        assert world.sandbox(name).operations() == [], f"{name} was told something"
    assert (world.sandbox("web").state().version, world.sandbox("ios").state().paused) == ("2.0", False)
    texts = [e.text for e in world.events]
    assert any(t.startswith("would move progressing → rolling_back") for t in texts)
    assert "would tell web: rollback(to 1.0)" in texts
    assert "would tell ios: pause" in texts


# --- manual acts ------------------------------------------------------------------------


def test_manual_acts_carry_actor_and_reason_into_the_audit_log(make_world: Callable[..., World]) -> None:
    world = make_world(target("web", "argo-rollouts"))
    reconciler = world.reconciler()

    reconciler.manual(world.rollout, "pause", NOW, actor="alice", reason="investigating INC-42")
    reconciler.manual(world.rollout, "rollback", NOW + 60, actor="bob", reason="customers report 500s")

    manual = world.audit("manual")
    assert [(e.actor, json.loads(e.payload_json)["reason"]) for e in manual] == [
        ("alice", "investigating INC-42"),
        ("bob", "customers report 500s"),
    ]
    assert [json.loads(e.payload_json)["trigger"] for e in manual] == ["pause", "rollback"]
    rows = world.store.transitions(world.rollout.id)
    assert [(r.trigger, r.actor, r.reason) for r in rows] == [
        ("pause", "alice", "investigating INC-42"),
        ("rollback", "bob", "customers report 500s"),
        ("complete", AUTOMATIC, "every target rolled back"),
    ]
    assert world.rollout.status.state is State.ROLLED_BACK
    assert world.sandbox("web").state().version == "1.0"
    assert world.store.verify_audit().ok


def test_a_manual_act_the_state_does_not_allow_records_nothing(make_world: Callable[..., World]) -> None:
    world = make_world(target("web", "vercel"))
    audit_before = world.store.audit_log()

    with pytest.raises(NotAllowed, match="cannot resume a rollout that is progressing"):
        world.reconciler().manual(world.rollout, "resume", NOW, actor="alice", reason="x")

    assert world.store.audit_log() == audit_before
    assert world.store.transitions(world.rollout.id) == []


# --- crash and recovery -----------------------------------------------------------------


class Crash(BaseException):
    """The process dying: nothing after it runs (not an error anything may catch)."""


@dataclass
class CrashingActuator:
    """A test double around a real sandbox that kills the 'process' right after (or before)
    the operation lands, so its result never reaches the journal."""

    inner: Actuator
    land_first: bool

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self.inner.capabilities

    def observe(self) -> Observed:
        return self.inner.observe()

    def apply(self, operation: Operation, key: str) -> Result:
        if self.land_first:
            self.inner.apply(operation, key)
        raise Crash


def crash_during_rollback(world: World) -> list[str]:
    """A manual rollback whose process dies mid-actuation: 'web' landed, 'flag' did not."""
    world.rollout.actuators["web"] = CrashingActuator(world.rollout.actuators["web"], land_first=True)
    world.rollout.actuators["flag"] = CrashingActuator(world.rollout.actuators["flag"], land_first=False)
    with pytest.raises(Crash):
        world.reconciler().manual(world.rollout, "rollback", NOW, actor="alice", reason="bad release")
    assert world.rollout.status.state is State.ROLLING_BACK  # journaled before the targets were told
    unfinished = world.store.unfinished_intents(world.rollout.id)
    assert [i.operation.target for i in unfinished] == ["web", "flag"]
    return [i.key for i in unfinished]


def test_recover_finishes_unfinished_intents_and_completes_the_rollback(
    make_world: Callable[..., World],
) -> None:
    world = make_world(target("web", "vercel"), target("flag", "launchdarkly"))
    keys = crash_during_rollback(world)
    restarted = world.reload()
    assert restarted.status == world.rollout.status  # rolling_back, as journaled

    world.reconciler().recover(restarted, NOW + 30)

    assert world.store.unfinished_intents(world.rollout.id) == []
    assert outcomes(world) == {"web": "already_done", "flag": "applied"}
    assert world.sandbox("web").applied_count(keys[0]) == 1  # never applied twice
    assert world.sandbox("flag").applied_count(keys[1]) == 1
    assert world.sandbox("web").state().version == "1.0"
    assert world.sandbox("flag").state().enabled is False
    assert restarted.status.state is State.ROLLED_BACK
    stored = world.store.get_rollout(world.rollout.id)
    assert stored is not None
    assert stored.status.state is State.ROLLED_BACK


def test_recover_completes_a_rollback_whose_results_were_all_recorded(
    make_world: Callable[..., World],
) -> None:
    world = make_world(target("web", "vercel"), target("flag", "launchdarkly"))
    crash_during_rollback(world)
    for intent in world.store.unfinished_intents(world.rollout.id):  # the results made it; `complete` did not
        draft = AuditDraft(NOW, AUTOMATIC, "action", world.rollout.id, {"key": intent.key})
        world.store.finish_intent(intent.key, "applied", "", NOW, draft)
    restarted = world.reload()

    world.reconciler().recover(restarted, NOW + 30)

    assert restarted.status.state is State.ROLLED_BACK


def test_recover_fails_rather_than_completes_a_rollback_with_a_failed_operation(
    make_world: Callable[..., World],
) -> None:
    world = make_world(target("web", "vercel"), target("flag", "launchdarkly"))
    web_key, _ = crash_during_rollback(world)
    # The dead process had recorded web's failure, but not flag's result nor the `fail` move.
    draft = AuditDraft(NOW, AUTOMATIC, "action", world.rollout.id, {"key": web_key})
    world.store.finish_intent(web_key, "failed", "gave up after 3 attempts: timeout", NOW, draft)
    restarted = world.reload()

    world.reconciler().recover(restarted, NOW + 30)

    assert outcomes(world) == {"web": "failed", "flag": "applied"}
    assert restarted.status.state is State.FAILED, "a rollback with a failed operation is not rolled back"
    assert "web" in restarted.status.reason
    assert len(world.audit("page")) == 1


def test_recover_fails_a_move_whose_failure_was_recorded_before_the_crash(
    make_world: Callable[..., World],
) -> None:
    world = make_world(target("web", "vercel"), status=RolloutStatus(State.PENDING, 0, 0, START))
    world.rollout.actuators["web"] = CrashingActuator(world.rollout.actuators["web"], land_first=False)
    world.signals(START)
    with pytest.raises(Crash):
        world.reconciler().step(world.rollout, START)
    (intent,) = world.store.unfinished_intents(world.rollout.id)
    draft = AuditDraft(START, AUTOMATIC, "action", world.rollout.id, {"key": intent.key})
    world.store.finish_intent(intent.key, "refused", "vercel refuses set_traffic", START, draft)
    restarted = world.reload()

    world.reconciler().recover(restarted, START + 30)

    assert restarted.status.state is State.FAILED
    assert len(world.audit("page")) == 1
    world.reconciler().recover(restarted, START + 60)  # and only once
    assert len(world.audit("page")) == 1
    assert [t.trigger for t in world.store.transitions(world.rollout.id)] == ["start", "fail"]
