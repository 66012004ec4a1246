"""The composition root: the one place that wires store, sources, evaluator and actuators.

Tests and commands get a ready `LiveRollout` from here instead of building adapters deep
inside the code (STYLE.md, cosmicpython's bootstrap.py).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from adapters.actuators.base import Actuator
from adapters.actuators.registry import build_actuator
from adapters.sources.replay import ReplayData, read_replay
from controller.backtest import bound_kinds
from controller.core.model import RolloutId
from controller.runtime import LOWERING_TRIGGERS, LiveRollout
from controller.spec import RolloutSpec, target_views
from controller.store.base import RolloutRecord, Store
from policies.evaluator import Evaluator
from policies.loader import load_packs
from policies.schema import CountPolicy, Policy
from policies.timestamps import parse_timestamp

DEFAULT_STATE = ".tidegate/state.db"


def state_dir() -> Path:
    """Where local files live next to the default store (sandbox targets, reports)."""
    if os.environ.get("TIDEGATE_DATABASE_URL"):
        return Path(".tidegate")
    return Path(os.environ.get("TIDEGATE_STATE", DEFAULT_STATE)).parent


def new_rollout_id(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Signals:
    """Everything the rollout's sources recorded, and where the rollout starts on that clock."""

    data: ReplayData
    start: float
    end: float
    events_given: bool


def read_signals(spec: RolloutSpec, data: ReplayData | None = None) -> Signals:
    """Load replay sources (or take `data` already in memory, as the demo does)."""
    merged = data or ReplayData()
    starts: list[float] = []
    events_given = data is not None and bool(data.events)
    for source in spec.sources:
        part = read_replay(source.data, source.events)
        merged.columns.update(part.columns)
        merged.events.extend(part.events)
        events_given = events_given or source.events is not None
        if source.start is not None:
            starts.append(parse_timestamp(source.start))
    merged.events.sort(key=lambda e: e.time)
    span = merged.span()
    first, last = span if span is not None else (0.0, 0.0)
    return Signals(merged, min(starts) if starts else first, last, events_given)


def policies_of(spec: RolloutSpec) -> tuple[list[Policy], float]:
    """The rollout's policies and its tick interval (the spec's, else the first pack's)."""
    packs = load_packs(list(spec.policies))
    policies = [p for pack in packs for p in pack.policies]
    return policies, spec.interval or packs[0].interval


def build_evaluator(policies: list[Policy], signals: Signals) -> Evaluator:
    kinds = bound_kinds(policies, signals.data, signals.events_given)
    bound = [p for p in policies if not isinstance(p, CountPolicy) or p.signal in kinds]
    evaluator = Evaluator(bound, start=signals.start, kinds=kinds)
    for column, (times, values) in signals.data.columns.items():
        evaluator.load(column, times, values)
    for event in signals.data.events:
        evaluator.observe_event(event)
    return evaluator


def build_actuators(spec: RolloutSpec, rollout_id: str, base: Path) -> dict[str, Actuator]:
    # Each rollout gets its own sandbox folder: a sandbox target models one release's target.
    folder = base / "targets" / rollout_id
    return {
        target.name: build_actuator(target.kind, target.name, target.settings, state_dir=folder)
        for target in spec.targets
    }


def was_lowered(store: Store, rollout_id: str) -> bool:
    """Whether a stored rollout ever stepped traffic down or rolled back (for exit codes)."""
    return any(row.trigger in LOWERING_TRIGGERS for row in store.transitions(RolloutId(rollout_id)))


def live_rollout(
    record: RolloutRecord, spec: RolloutSpec, evaluator: Evaluator, base: Path, *, lowered: bool = False
) -> LiveRollout:
    return LiveRollout(
        lowered=lowered,
        id=record.id,
        name=record.name,
        status=record.status,
        shape=spec.shape,
        previous_version=spec.previous_version,
        evaluator=evaluator,
        targets=target_views(spec),
        actuators=build_actuators(spec, record.id, base),
    )
