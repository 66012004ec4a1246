"""rollout.yaml: what to roll out, how fast, watched by which policies, on which targets.

Validated with the same file:line:col errors as policy packs. Relative paths (packs, replay
files) are resolved against the rollout file's folder, so a rollout directory can move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from adapters.errors import AuthFailed, ConfigError
from controller.core.machine import Shape
from controller.core.model import Step
from controller.core.plan import Intent, TargetView
from policies.errors import PolicyError, TidegateError
from policies.loader import read_source, validate_located
from policies.operations import Op
from policies.schema import Duration, Metadata, PolicyId
from policies.timestamps import parse_timestamp
from policies.yamlmap import load_located

DEFAULT_STEPS = (
    {"traffic": 10, "bake": "15m"},
    {"traffic": 50, "bake": "15m"},
    {"traffic": 100, "bake": "15m"},
)
DEFAULT_DOWN_STEPS = ({"traffic": 50, "bake": "15m"}, {"traffic": 10, "bake": "15m"})


def _not_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # Not Field(min_length=1): pydantic also reports a list as too short when one of its
    # items merely failed, and that error, higher up in the file, hid the item's real one.
    if not value:
        raise ValueError("must not be empty")
    return value


NonEmpty = AfterValidator(_not_empty)


def _overrides(raw: Any) -> Any:
    """`on:` checked up front, so that a mistake names the decision and the choices rather
    than pydantic's union members."""
    if not isinstance(raw, dict):
        return raw
    intents = [intent.value for intent in Intent]
    choices = [op.value for op in Op] + ["none"]
    for key, value in raw.items():
        name = key.value if isinstance(key, Intent) else key
        if name not in intents:
            raise ValueError(f"unknown decision {name!r} (expected one of: {', '.join(intents)})")
        if (value.value if isinstance(value, Op) else value) not in choices:
            raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return raw


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class StepSpec(_Strict):
    traffic: int = Field(ge=1, le=100)
    bake: Duration = Field(default=900.0, ge=0)


class TargetSpec(_Strict):
    name: PolicyId
    kind: str
    settings: dict[str, Any] = Field(default_factory=dict)
    on: Annotated[dict[Intent, Op | Literal["none"]], BeforeValidator(_overrides)] = Field(
        default_factory=dict
    )


class ReplaySource(_Strict):
    """Recorded signals (the backtest's CSV / JSON Lines formats) played on the rollout clock."""

    kind: Literal["replay"]
    data: str | None = None
    events: str | None = None
    start: str | None = None  # the data's time that corresponds to the rollout start

    @field_validator("start")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timestamp(value)
        return value

    @model_validator(mode="after")
    def _has_input(self) -> ReplaySource:
        if self.data is None and self.events is None:
            raise ValueError("a replay source needs data: and/or events:")
        return self


class LiveSource(_Strict):
    """A source read as the rollout runs (prometheus, sql, cloudwatch, pagerduty, …); its
    settings are the kind's own, validated by adapters.sources.registry when the file loads."""

    kind: str
    name: PolicyId
    settings: dict[str, Any] = Field(default_factory=dict)


def _source_kind(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return "ReplaySource" if kind == "replay" else "LiveSource"


SourceSpec = Annotated[
    Annotated[ReplaySource, Tag("ReplaySource")] | Annotated[LiveSource, Tag("LiveSource")],
    Discriminator(_source_kind),
]


class RolloutSpec(_Strict):
    api_version: Literal["tidegate/v1"] = Field(alias="apiVersion")
    kind: Literal["Rollout"]
    metadata: Metadata
    version: str = Field(min_length=1)
    previous_version: str = Field(alias="previousVersion", min_length=1)
    steps: Annotated[tuple[StepSpec, ...], NonEmpty] = Field(
        default=tuple(StepSpec.model_validate(s) for s in DEFAULT_STEPS)
    )
    down_steps: tuple[StepSpec, ...] = Field(
        alias="downSteps", default=tuple(StepSpec.model_validate(s) for s in DEFAULT_DOWN_STEPS)
    )
    interval: Annotated[Duration | None, Field(gt=0)] = None
    policies: Annotated[tuple[str, ...], NonEmpty]
    sources: tuple[SourceSpec, ...] = ()
    targets: Annotated[tuple[TargetSpec, ...], NonEmpty]

    # Field validators, not one model validator: their errors point at the field's line.
    @field_validator("steps")
    @classmethod
    def _steps_rise(cls, steps: tuple[StepSpec, ...]) -> tuple[StepSpec, ...]:
        forward = [s.traffic for s in steps]
        if forward != sorted(set(forward)):
            raise ValueError(f"must rise strictly, got {' → '.join(map(str, forward))}")
        return steps

    @field_validator("down_steps")
    @classmethod
    def _down_steps_fall(cls, steps: tuple[StepSpec, ...]) -> tuple[StepSpec, ...]:
        down = [s.traffic for s in steps]
        if down != sorted(set(down), reverse=True):
            raise ValueError(f"must fall strictly, got {' → '.join(map(str, down))}")
        return steps

    @field_validator("targets")
    @classmethod
    def _target_names_unique(cls, targets: tuple[TargetSpec, ...]) -> tuple[TargetSpec, ...]:
        names = [t.name for t in targets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate target name(s): {', '.join(duplicates)}")
        return targets

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def shape(self) -> Shape:
        return Shape(
            tuple(Step(s.traffic, s.bake) for s in self.steps),
            tuple(Step(s.traffic, s.bake) for s in self.down_steps),
        )


def target_views(spec: RolloutSpec) -> list[TargetView]:
    # The registries are imported where used: they import every vendor adapter (boto3,
    # httpx, jwt: ~0.3 s) that `tidegate backtest` and `policy` never need.
    from adapters.actuators.registry import capabilities_of

    return [
        TargetView(
            t.name,
            str(t.settings.get("emulates", t.kind)) if t.kind == "sandbox" else t.kind,
            capabilities_of(t.kind, t.settings),
            {intent: (None if op == "none" else op) for intent, op in t.on.items()},
        )
        for t in spec.targets
    ]


def load_rollout(path: str) -> RolloutSpec:
    """Read and validate rollout.yaml; relative paths become relative to its folder."""
    text, name = read_source(path)
    located = load_located(text, name)
    spec = validate_located(located, RolloutSpec, None)
    base = Path(path).parent
    spec = spec.model_copy(
        update={
            "policies": tuple(_resolve(base, p) for p in spec.policies),
            "sources": tuple(
                s.model_copy(update={"data": _maybe(base, s.data), "events": _maybe(base, s.events)})
                if isinstance(s, ReplaySource)
                else s
                for s in spec.sources
            ),
        }
    )
    for index, target in enumerate(spec.targets):
        _check_target(located_error=located.error, index=index, target=target)
    for index, source in enumerate(spec.sources):
        if isinstance(source, LiveSource):
            _check_source(located.error, index, source)
    return spec


def _check_source(located_error: Any, index: int, source: LiveSource) -> None:
    """Build the source once, offline, so a wrong kind or setting is a FILE:LINE error now."""
    from adapters.sources.registry import SourceContext, build_source  # see target_views

    try:
        build_source(source.kind, source.name, source.settings, SourceContext(env={}))
    except AuthFailed:
        return  # a missing credential is reported when the source is used
    except TidegateError as exc:
        path: tuple[str | int, ...] = ("sources", index, "kind")
        if isinstance(exc, ConfigError) and "unknown source kind" not in str(exc):
            path = ("sources", index, "settings", *exc.path)
        raise located_error(path, f"sources[{index}]: {exc}") from None


def _check_target(located_error: Any, index: int, target: TargetSpec) -> None:
    from adapters.actuators.registry import ACTUATORS, capabilities_of  # see target_views

    try:
        capabilities = capabilities_of(target.kind, target.settings)
    except TidegateError as exc:
        # Point at `kind:` when the kind is unknown, else at the setting that is wrong.
        setting = exc.path if isinstance(exc, ConfigError) else ()
        path = (
            ("targets", index, "settings", *setting)
            if target.kind in ACTUATORS
            else ("targets", index, "kind")
        )
        raise located_error(path, f"targets[{index}]: {exc}") from None
    for intent, op in target.on.items():
        if op != "none" and op not in capabilities:
            allowed = ", ".join(sorted(o.value for o in capabilities))
            where = f"targets[{index}].on.{intent.value}"
            message = f"{where}: a {target.kind} target cannot {op.value} (it can: {allowed})"
            raise located_error(("targets", index, "on", intent.value), message) from None


def _resolve(base: Path, ref: str) -> str:
    return ref if ref.startswith("library:") else str(base / ref)


def _maybe(base: Path, ref: str | None) -> str | None:
    return None if ref is None else str(base / ref)


def spec_from_json(text: str) -> RolloutSpec:
    """Rebuild a stored spec (paths already resolved when it was first loaded)."""
    try:
        return RolloutSpec.model_validate_json(text)
    except ValueError as exc:
        raise PolicyError("stored rollout spec", None, str(exc)) from None
