"""The policy pack schema (DESIGN.md "Policy language"); field names are a public contract.

pydantic validates at the edge; everything downstream gets frozen models. Each rule kind is
its own model so that an unknown or misplaced field is an error that names the field.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from policies.durations import format_duration, parse_duration


class Action(Enum):
    """What a breaching rule asks for, in severity order (DESIGN.md severity ladder)."""

    NOTIFY = "notify"
    HOLD = "hold"
    STEP_DOWN = "step_down"
    ROLLBACK = "rollback"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.NOTIFY: 1, Action.HOLD: 2, Action.STEP_DOWN: 3, Action.ROLLBACK: 4}


class OnNoData(Enum):
    """What the decision makes of a rule with no value at a tick."""

    HOLD = "hold"
    OK = "ok"
    BREACH = "breach"


class Direction(Enum):
    DOWN = "down"
    UP = "up"
    BOTH = "both"


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_COMPARISON = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")


class Comparison(BaseModel):
    """`"> 0.05"` or `"> 5%"`: an operator and a number (percent means hundredths)."""

    model_config = ConfigDict(frozen=True)
    op: Literal[">", ">=", "<", "<="]
    value: float

    def holds(self, x: float) -> bool:
        return _OPERATORS[self.op](x, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


def _parse_comparison(raw: Any) -> Any:
    if isinstance(raw, Comparison | dict):
        return raw
    if not isinstance(raw, str):
        raise ValueError(f'expected a comparison like "> 0.05", got {raw!r}')
    match = _COMPARISON.match(raw)
    if match is None:
        raise ValueError(f'expected an operator (> >= < <=) and a number like "> 0.05", got {raw!r}')
    value = float(match.group(2))
    if match.group(3):
        value /= 100
    return {"op": match.group(1), "value": value}


def _parse_duration_field(raw: Any) -> Any:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"expected a duration like 5m, got {raw!r}")
    if isinstance(raw, int):
        if raw == 0:
            return 0.0
        raise ValueError(f"expected a duration with a unit like {raw}s or 5m, got {raw!r}")
    return parse_duration(raw)


# Serialised back to "15m" so a stored spec (JSON) validates again exactly as written.
Duration = Annotated[
    float, BeforeValidator(_parse_duration_field), PlainSerializer(format_duration, when_used="json")
]
Threshold = Annotated[Comparison, BeforeValidator(_parse_comparison)]
PolicyId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=100)]
SignalName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", max_length=200)]


def _match_value(raw: Any) -> Any:
    # Checked up front: the union's own error names a member type ("match.severity.str").
    if isinstance(raw, str | int | float | bool):
        return raw
    raise ValueError(f"expected a string, a number or true/false, got {raw!r}")


MatchValue = Annotated[str | int | float | bool, BeforeValidator(_match_value)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _PolicyBase(_Strict):
    id: PolicyId
    description: str = ""
    signal: SignalName
    action: Action
    on_no_data: OnNoData = OnNoData.HOLD
    targets: tuple[str, ...] = ()
    for_: Duration = Field(default=0.0, alias="for", ge=0)

    @property
    def kind(self) -> str:
        raise NotImplementedError


class ThresholdPolicy(_PolicyBase):
    """`when` + `for`: Prometheus alerting semantics on a plain or ratio signal."""

    when: Threshold
    staleness: Duration = Field(default=300.0, gt=0)
    window: Duration = Field(default=60.0, gt=0)
    min_samples: float = Field(default=0.0, ge=0)
    confidence: float | None = Field(default=None, gt=0.5, lt=1)

    @property
    def kind(self) -> str:
        return "threshold"


class CountPolicy(_PolicyBase):
    """`count` events matching `match` within a sliding window, deduplicated by id."""

    count: Threshold
    within: Duration = Field(gt=0)
    match: dict[str, MatchValue] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "count"


class Baseline(_Strict):
    window: Duration = Field(gt=0)


class DriftPolicy(_PolicyBase):
    """Relative change of the current window against the pre-rollout baseline, with evidence."""

    drift: Threshold
    direction: Direction = Direction.BOTH
    baseline: Baseline
    window: Duration = Field(default=900.0, gt=0)
    confidence: float = Field(default=0.99, gt=0.5, lt=1)
    min_samples: float = Field(default=0.0, ge=0)

    @field_validator("drift")
    @classmethod
    def _magnitude_is_a_lower_bound(cls, value: Comparison) -> Comparison:
        if value.op not in (">", ">=") or value.value < 0:
            raise ValueError(f'expected a magnitude like "> 5%", got "{value}"')
        return value

    @property
    def kind(self) -> str:
        return "drift"


Policy = ThresholdPolicy | CountPolicy | DriftPolicy
POLICY_MODELS: dict[str, type[ThresholdPolicy] | type[CountPolicy] | type[DriftPolicy]] = {
    "when": ThresholdPolicy,
    "count": CountPolicy,
    "drift": DriftPolicy,
}


class Metadata(_Strict):
    name: str = Field(min_length=1)
    description: str = ""


class PolicyPack(_Strict):
    api_version: Literal["tidegate/v1"] = Field(alias="apiVersion")
    kind: Literal["PolicyPack"]
    metadata: Metadata
    interval: Duration = Field(default=30.0, gt=0)
    policies: tuple[Policy, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids_are_unique(self) -> PolicyPack:
        seen: set[str] = set()
        for policy in self.policies:
            if policy.id in seen:
                raise ValueError(f"duplicate policy id {policy.id!r}")
            seen.add(policy.id)
        return self
