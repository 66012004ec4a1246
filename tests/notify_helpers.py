"""Real rollouts for the notification tests: the bundled demo, or a small rollout whose signals
a test sets tick by tick — each through the real Reconciler, store and sandbox targets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from controller.bootstrap import Signals, build_evaluator, live_rollout, policies_of
from controller.core.model import RolloutId, RolloutStatus, State
from controller.demo import demo_rollout
from controller.driver import Mode, Outcome, drive
from controller.runtime import AUTOMATIC, LiveRollout, Observer, Reconciler
from controller.simulator import demo_spec, simulate
from controller.spec import load_rollout
from controller.store.base import AuditDraft, RolloutRecord
from controller.store.sqlite import SqliteStore
from policies.evaluator import Evaluator, SignalKind
from policies.loader import parse_pack

START = 1_790_000_000.0  # 2026-09-21T14:13:20Z
PACK = """apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: notify-test}
policies:
  - {id: latency, signal: latency, when: "> 1", staleness: 1m, action: step_down}
  - {id: errors, signal: errors, when: "> 0.5", staleness: 1m, action: rollback}
  - {id: queue, signal: queue, when: "> 100", staleness: 1m, action: hold}
  - {id: db, signal: db, when: "> 0.8", staleness: 1m, action: notify}
"""
SIGNALS = ("latency", "errors", "queue", "db")
HEAD = """apiVersion: tidegate/v1
kind: Rollout
metadata: {name: shop}
version: "2.0"
previousVersion: "1.0"
steps: [{traffic: 10, bake: 10m}, {traffic: 50, bake: 10m}, {traffic: 100, bake: 10m}]
downSteps: [{traffic: 50, bake: 20m}, {traffic: 10, bake: 20m}]
policies: [library:runbook]
targets:
"""


def target(name: str, emulates: str, **settings: object) -> str:
    fields = {"emulates": emulates, "version": "2.0", "previous_version": "1.0", "traffic": 100} | settings
    return f"  - name: {name}\n    kind: sandbox\n    settings: {json.dumps(fields)}\n"


TARGETS = (target("flag", "launchdarkly"), target("web", "vercel"))


@contextmanager
def demo(folder: Path, observer: Observer) -> Iterator[Outcome]:
    """`tidegate demo`'s rollout and scenario, driven in-process with `observer` watching."""
    spec = demo_rollout()
    scenario = simulate(demo_spec())
    span = scenario.data.span()
    assert span is not None
    signals = Signals(scenario.data, scenario.start, span[1], events_given=True)
    policies, interval = policies_of(spec)
    store = SqliteStore(folder / "state.db")
    try:
        rollout_id = RolloutId("checkout-demo-1")
        status = RolloutStatus(State.PENDING, 0, 0, signals.start)
        record = RolloutRecord(rollout_id, spec.name, spec.model_dump_json(), status, signals.start)
        store.create_rollout(record, AuditDraft(signals.start, AUTOMATIC, "created", rollout_id, {}))
        rollout = live_rollout(record, spec, build_evaluator(policies, signals), folder)
        reconciler = Reconciler(store, observer, backoff=0.001)
        yield drive(
            reconciler, rollout, start=signals.start, interval=interval, until=signals.end, mode=Mode.RUN
        )
    finally:
        store.close()


@dataclass
class Shop:
    """A rollout at 100% on sandbox targets whose signals a test sets tick by tick."""

    folder: Path
    store: SqliteStore
    rollout: LiveRollout

    def tick(self, reconciler: Reconciler, minute: float, **values: float) -> None:
        now = START + minute * 60
        for signal in SIGNALS:
            self.rollout.evaluator.observe(signal, now, values.get(signal, 0.0))
        reconciler.step(self.rollout, now)

    def reload(self) -> LiveRollout:
        """The rollout as a restarted process builds it from the store (its verdict forgotten)."""
        record = self.store.get_rollout(self.rollout.id)
        assert record is not None
        spec = load_rollout(str(self.folder / "rollout.yaml"))
        self.rollout = live_rollout(record, spec, self.rollout.evaluator, self.folder)
        return self.rollout


@contextmanager
def shop(folder: Path, *targets: str) -> Iterator[Shop]:
    (folder / "rollout.yaml").write_text(HEAD + "".join(targets or TARGETS), encoding="utf-8")
    spec = load_rollout(str(folder / "rollout.yaml"))
    store = SqliteStore(folder / "state.db")
    try:
        rollout_id = RolloutId("shop-1")
        status = RolloutStatus(State.PROGRESSING, 100, 2, START)
        record = RolloutRecord(rollout_id, spec.name, spec.model_dump_json(), status, START)
        store.create_rollout(record, AuditDraft(START, AUTOMATIC, "created", rollout_id, {}))
        kinds = dict.fromkeys(SIGNALS, SignalKind.PLAIN)
        evaluator = Evaluator(parse_pack(PACK, "notify-test.yaml").policies, start=START, kinds=kinds)
        rollout = live_rollout(record, spec, evaluator, folder)
        for actuator in rollout.actuators.values():
            actuator.observe()  # create each sandbox file before threads share it
        yield Shop(folder, store, rollout)
    finally:
        store.close()
