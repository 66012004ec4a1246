"""`tidegate demo`: the main job on embedded defaults, no network, no server.

A simulated checkout release (p95 latency degrades 40 minutes in, errors follow at 70) is
replayed on a virtual clock through the real engine, machine, planner, journal and five
sandbox targets; the timeline and a summary are printed. Each run is a new rollout in the
default store, so `tidegate status` and `tidegate audit verify` work afterwards.
"""

from __future__ import annotations

import sys
from importlib import resources

from controller.bootstrap import Signals, state_dir
from controller.cli.rollouts import _drive
from controller.cli.rollouts import latest as newest
from controller.driver import Mode
from controller.simulator import demo_spec, simulate
from controller.spec import RolloutSpec
from controller.store import open_store
from policies.loader import validate_located
from policies.yamlmap import load_located

DEMO_ROLLOUT = "demo_rollout.yaml"


def demo_rollout() -> RolloutSpec:
    text = (resources.files("controller") / DEMO_ROLLOUT).read_text(encoding="utf-8")
    return validate_located(load_located(text, f"controller/{DEMO_ROLLOUT}"), RolloutSpec, None)


def demo_signals() -> Signals:
    """The simulated release the demo replays, on its virtual clock."""
    scenario = simulate(demo_spec())
    span = scenario.data.span()
    end = span[1] if span else scenario.start
    return Signals(scenario.data, scenario.start, end, events_given=True)


def run_demo(state: str | None = None) -> int:
    spec, signals = demo_rollout(), demo_signals()
    print("tidegate demo: release 2.4.0 of checkout goes 10% → 50% → 100% on five targets;")
    print("p95 latency degrades 40 minutes in, the error rate follows at 70 minutes.\n")
    code = _drive(spec, Mode.RUN, state, as_json=False, signals=signals, echo=sys.stdout)
    _print_targets(state)
    return 0 if code in (0, 1) else code


def _print_targets(state: str | None) -> None:
    store = open_store(state)
    try:
        latest = newest(store, store.list_rollouts())  # ties on created_at: same scenario data
        print(f"\nfinal state of {latest.id}: {latest.status.state.value} at {latest.status.traffic}%")
        for intent in store.intents(latest.id):
            print(f"  {intent.operation.target:<16} {intent.operation.describe():<22} → {intent.outcome}")
        report = store.verify_audit()
    finally:
        store.close()
    print(f"\naudit chain: {'intact' if report.ok else 'BROKEN'} ({report.rows} rows) in {state_dir()}")
    print("next: tidegate status · tidegate audit log " + latest.id + " · tidegate audit verify")
