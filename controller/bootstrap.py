"""The composition root: the one place that wires store, sources, evaluator and actuators.

Tests and commands get a ready `LiveRollout` from here instead of building adapters deep
inside the code (STYLE.md, cosmicpython's bootstrap.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adapters.actuators.base import Actuator
from adapters.sources.base import Source
from adapters.sources.replay import ReplayData, read_replay
from controller.backtest import bound_kinds
from controller.core.model import RolloutId
from controller.runtime import LOWERING_TRIGGERS, LiveRollout
from controller.spec import LiveSource, ReplaySource, RolloutSpec, target_views
from controller.store.base import RolloutRecord, SourceRead, Store
from policies.errors import TidegateError
from policies.evaluator import Evaluator
from policies.loader import load_packs
from policies.schema import CountPolicy, DriftPolicy, Policy, ThresholdPolicy
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
        if not isinstance(source, ReplaySource):
            continue  # live sources are read as the rollout runs (read_history, driver)
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
    # Imported here: the registries import every vendor adapter (boto3, httpx, jwt: ~0.3 s),
    # which commands that build no target, `tidegate backtest` first, should not pay for.
    from adapters.actuators.registry import build_actuator

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


def live_sources(spec: RolloutSpec, env: Mapping[str, str] | None = None) -> list[Source]:
    """The rollout's live sources, built with secrets from `env` (default: the process's)."""
    from adapters.sources.registry import SourceContext, build_source  # see build_actuators

    context = SourceContext(env=os.environ if env is None else env)
    return [
        build_source(s.kind, s.name, s.settings, context) for s in spec.sources if isinstance(s, LiveSource)
    ]


def lookback(policies: list[Policy]) -> float:
    """How much history a fresh evaluator needs: the longest window, baseline or staleness."""
    longest = 0.0
    for policy in policies:
        if isinstance(policy, DriftPolicy):
            longest = max(longest, policy.baseline.window + policy.window)
        elif isinstance(policy, CountPolicy):
            longest = max(longest, policy.within)
        else:
            longest = max(longest, policy.window, policy.staleness)
    return longest


def read_history(
    sources: list[Source], start: float, end: float, policies: list[Policy]
) -> tuple[Signals, list[SourceRead]]:
    """Everything the live sources hold in (start, end], as the evaluator's starting data.

    A source that fails gives no data (never zeros); each source's read comes back (error
    text included) to be shown, counted and retried. The signals a failed source serves
    stay bound, so their rules see "no value" rather than vanishing."""
    data, reads = ReplayData(), []
    ratios = {p.signal for p in policies if _reads_a_ratio(p)}
    streams = {p.signal for p in policies if isinstance(p, CountPolicy)}
    serves_a_stream = False
    for source in sources:
        try:
            result = source.read(start, end)
        except TidegateError as exc:
            reads.append(SourceRead(source.name, end, str(exc)))
            result = None
        else:
            reads.append(SourceRead(source.name, end))
        if result is not None:
            for column, (times, values) in result.columns.items():
                data.columns[column] = (list(times), list(values))
            data.events.extend(result.events)
        for column in source.columns():
            if column in streams:  # an event stream with no events yet is empty, not missing
                serves_a_stream = True
            else:
                _bind_empty(data, column, column in ratios)
    data.events.sort(key=lambda e: e.time)
    return Signals(data, end, end, events_given=serves_a_stream), reads


def _reads_a_ratio(policy: Policy) -> bool:
    if isinstance(policy, ThresholdPolicy):
        return bool({"window", "min_samples", "confidence"} & policy.model_fields_set)
    return isinstance(policy, DriftPolicy) and "min_samples" in policy.model_fields_set


def _bind_empty(data: ReplayData, column: str, ratio: bool) -> None:
    """Bind a signal a source serves before its first sample (ratios as their two counters)."""
    name = column.partition(":")[0]
    if column in data.columns or f"{name}:num" in data.columns:
        return
    if ratio or column != name:
        data.columns.setdefault(f"{name}:num", ([], []))
        data.columns.setdefault(f"{name}:den", ([], []))
    else:
        data.columns[column] = ([], [])
