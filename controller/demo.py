"""`tidegate demo`: the main job on embedded defaults, no network, no server.

A simulated checkout release (p95 latency degrades 40 minutes in, errors follow at 70) is
replayed on a virtual clock through the real engine, machine, planner, journal and five
sandbox targets; the timeline and a summary are printed. Each run is a new rollout in the
default store, so `tidegate status` and `tidegate audit verify` work afterwards.

The scenario's recording is written beside the store (.tidegate/demo/) and named as the
rollout's replay source, so the rollout's data can be read again like any other's: the demo
writes its HTML report from it, and `tidegate report` draws it again later.
"""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path

from adapters.sources.replay import write_events, write_samples
from controller.bootstrap import Signals, state_dir
from controller.cli.drive import drive_rollout
from controller.cli.lookup import latest as newest
from controller.driver import Mode
from controller.report import render, rollout_report
from controller.simulator import Scenario, demo_spec, simulate
from controller.spec import ReplaySource, RolloutSpec
from controller.store import open_store
from controller.store.base import RolloutRecord, Store
from policies.loader import validate_located
from policies.timestamps import format_timestamp
from policies.yamlmap import load_located

DEMO_ROLLOUT = "demo_rollout.yaml"


def demo_rollout() -> RolloutSpec:
    text = (resources.files("controller") / DEMO_ROLLOUT).read_text(encoding="utf-8")
    return validate_located(load_located(text, f"controller/{DEMO_ROLLOUT}"), RolloutSpec, None)


def demo_signals(scenario: Scenario | None = None) -> Signals:
    """The simulated release the demo replays, on its virtual clock."""
    scenario = scenario or simulate(demo_spec())
    span = scenario.data.span()
    end = span[1] if span else scenario.start
    return Signals(scenario.data, scenario.start, end, events_given=True)


def run_demo(state: str | None = None) -> int:
    scenario = simulate(demo_spec())
    spec = _recorded(demo_rollout(), scenario, state_dir() / "demo")
    signals = demo_signals(scenario)
    print("tidegate demo: release 2.4.0 of checkout goes 10% → 50% → 100% on five targets;")
    print("p95 latency degrades 40 minutes in, the error rate follows at 70 minutes.\n")
    code = drive_rollout(spec, Mode.RUN, state, as_json=False, signals=signals, echo=sys.stdout)
    _print_targets(state)
    return 0 if code in (0, 1) else code


def _recorded(spec: RolloutSpec, scenario: Scenario, folder: Path) -> RolloutSpec:
    """The demo rollout with the scenario written out as its replay source."""
    folder.mkdir(parents=True, exist_ok=True)
    data, events = folder / "data.csv", folder / "events.jsonl"
    write_samples(str(data), scenario.data.columns)
    write_events(str(events), scenario.data.events)
    source = ReplaySource(
        kind="replay",
        data=str(data.resolve()),
        events=str(events.resolve()),
        start=format_timestamp(scenario.start),
    )
    return spec.model_copy(update={"sources": (source,)})


def _print_targets(state: str | None) -> None:
    store = open_store(state)
    try:
        latest = newest(store, store.list_rollouts())  # ties on created_at: same scenario data
        print(f"\nfinal state of {latest.id}: {latest.status.state.value} at {latest.status.traffic}%")
        for intent in store.intents(latest.id):
            print(f"  {intent.operation.target:<16} {intent.operation.describe():<22} → {intent.outcome}")
        audit = store.verify_audit()
        page = _write_report(store, latest)
    finally:
        store.close()
    print(f"\naudit chain: {'intact' if audit.ok else 'BROKEN'} ({audit.rows} rows) in {state_dir()}")
    print(f"report: {page}")
    print(f"next: tidegate status · tidegate report {latest.id} --format md · tidegate audit verify")


def _write_report(store: Store, record: RolloutRecord) -> Path:
    page = state_dir() / "reports" / f"{record.id}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(rollout_report(store, record, time.time()), "html"), encoding="utf-8")
    return page
