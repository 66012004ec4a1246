"""A rollback fanned out to 7 targets, each answering in 200 ms, completes in under 300 ms.

Seven `webhook` targets — the real adapter: signed body, Idempotency-Key, adapters/http.py
underneath — point at one loopback receiver (tests/fakes/webhook.py) that answers every
request after 200 ms. They are built by the composition root (`controller.bootstrap`), as
`tidegate rollback` builds them, and a real `Reconciler` on a real SQLite store (WAL,
synchronous=FULL) drives a manual rollback: the transition and its seven intents committed
in one transaction, the seven operations sent in parallel, each result journaled and
audited, and the rollout completed as rolled_back.

Measured: the wall time of that one call, `Reconciler.manual(rollout, "rollback", …)`, from
the journal write to rolled_back; each run on a fresh store, fresh targets and fresh
connections; the median of `--runs`. Driven one after another, the same seven targets would
need at least 7 × 200 ms = 1.4 s.

    .venv/bin/python -m bench.fanout [--targets 7] [--latency 0.2] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from controller.bootstrap import live_rollout
from controller.core.model import RolloutId, RolloutStatus, State
from controller.runtime import AUTOMATIC, Reconciler
from controller.spec import load_rollout
from controller.store.base import AuditDraft, RolloutRecord
from controller.store.sqlite import SqliteStore
from policies.evaluator import Evaluator
from tests.fakes.webhook import FakeReceiver

TARGET_MS = 300.0
SECRET_ENV = "TIDEGATE_BENCH_WEBHOOK_SECRET"
SECRET = "bench-signing-secret"  # a throwaway: the receiver below is this process's own
NOW = 1_790_000_000.0


@dataclass(frozen=True)
class FanoutResult:
    targets: int
    latency_ms: float
    runs: int
    median_ms: float
    best_ms: float
    worst_ms: float
    serial_floor_ms: float  # what the same targets would take one after another, at least
    target_ms: float
    met: bool


def rollout_yaml(receiver: FakeReceiver, targets: int) -> str:
    listed = ""
    for i in range(targets):
        settings = {"url": receiver.hook_url(f"t{i}"), "secret_env": SECRET_ENV}
        listed += f"  - name: t{i}\n    kind: webhook\n    settings: {json.dumps(settings)}\n"
    return (
        "apiVersion: tidegate/v1\nkind: Rollout\nmetadata: {name: fanout}\n"
        f'version: "2.0.0"\npreviousVersion: "1.9.0"\npolicies: [library:runbook]\ntargets:\n{listed}'
    )


def one_rollback(receiver: FakeReceiver, targets: int, folder: Path) -> float:
    """Seconds one manual rollback takes, journal to rolled_back; checks that it all happened."""
    receiver.forget()
    (folder / "rollout.yaml").write_text(rollout_yaml(receiver, targets), encoding="utf-8")
    spec = load_rollout(str(folder / "rollout.yaml"))
    store = SqliteStore(folder / "state.db")
    try:
        status = RolloutStatus(State.PROGRESSING, 100, 2, NOW)
        record = RolloutRecord(RolloutId("fanout-1"), spec.name, spec.model_dump_json(), status, NOW)
        store.create_rollout(record, AuditDraft(NOW, AUTOMATIC, "created", record.id, {}))
        rollout = live_rollout(record, spec, Evaluator([], start=NOW, kinds={}), folder)
        reconciler = Reconciler(store)
        started = time.perf_counter()
        reconciler.manual(rollout, "rollback", NOW, actor="bench", reason="fan-out benchmark")
        elapsed = time.perf_counter() - started
        outcomes = [i.outcome for i in store.intents(rollout.id)]
    finally:
        store.close()
    if rollout.status.state is not State.ROLLED_BACK or outcomes != ["applied"] * targets:
        raise SystemExit(f"the rollback did not complete: {rollout.status.state.value}, {outcomes}")
    if len(receiver.applied) != targets:
        raise SystemExit(f"the receiver applied {len(receiver.applied)} operations, expected {targets}")
    return elapsed


def measure(targets: int, latency: float, runs: int) -> FanoutResult:
    times = []
    os.environ[SECRET_ENV] = SECRET  # the composition root reads secrets from the environment
    try:
        with FakeReceiver(secret=SECRET, delay=latency, clock=time.time) as receiver:
            for run in range(runs):
                with tempfile.TemporaryDirectory(prefix=f"tidegate-fanout-{run}-") as folder:
                    times.append(one_rollback(receiver, targets, Path(folder)) * 1000)
    finally:
        del os.environ[SECRET_ENV]
    median, latency_ms = statistics.median(times), latency * 1000
    return FanoutResult(
        targets=targets,
        latency_ms=latency_ms,
        runs=runs,
        median_ms=median,
        best_ms=min(times),
        worst_ms=max(times),
        serial_floor_ms=targets * latency_ms,
        target_ms=TARGET_MS,
        met=median < TARGET_MS,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds each target takes to answer")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args()
    result = measure(options.targets, options.latency, options.runs)
    if options.json:
        print(json.dumps(asdict(result)))
        return
    print(
        f"rollback fanned out to {result.targets} webhook targets, each answering in "
        f"{result.latency_ms:.0f} ms (real Reconciler, SQLite journal, {result.runs} runs):"
    )
    print(
        f"  median {result.median_ms:.0f} ms (best {result.best_ms:.0f}, worst {result.worst_ms:.0f}); "
        f"one after another it would take ≥ {result.serial_floor_ms:.0f} ms"
    )
    verdict = "met" if result.met else "NOT met"
    print(f"  target: under {result.target_ms:.0f} ms — {verdict}")


if __name__ == "__main__":
    main()
