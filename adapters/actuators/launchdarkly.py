"""LaunchDarkly: a flag's percentage rollout in one environment, and the flag on / off.

    targets:
      - name: checkout-flag
        kind: launchdarkly
        settings: {project: web, environment: production, flag: checkout-v2,
                   token_env: LD_API_TOKEN, new_variation: 0, old_variation: 1}

What tidegate moves is the flag's *fallthrough* (its default rule) in `environment`; targeting
rules, individual targets and other environments are left alone. Traffic N % is a rollout that
serves `new_variation` to N % of contexts and `old_variation` to the rest. Variations are named
by index in the flag's `variations` list or by their `_id` (defaults: 0 and 1, i.e. true and
false on a boolean flag).

- set_traffic(N): semantic patch `updateFallthroughVariationOrRollout` with `rolloutWeights`
  {new _id: N × 1000, old _id: (100 − N) × 1000}. Units trap: LaunchDarkly weights are
  thousandths of a percent (100000 = 100 %), so 50 % is 50000. set_traffic(0) is "fallthrough
  to the previous variation".
- disable: `turnFlagOff` (the flag serves its off variation); enable: `turnFlagOn`.
- No rollback: LaunchDarkly cannot restore an earlier flag version; flag off or 0 % is the
  rollback (DESIGN.md "Actuators and their capabilities").

observe() reads `GET /api/v2/flags/{project}/{flag}?env={environment}`: enabled is `on`, traffic
the new variation's share of the fallthrough (a fixed fallthrough variation counts as 100 % for
itself), floored to a whole percent; the detail gives the exact weights.

apply(op, key) observes first and answers AlreadyDone when the fallthrough already serves
exactly the requested split (zero weights ignored, so a fixed variation equals a 100/0 rollout)
or the flag already is on / off. A restart after a crash between the journal's intent and its
result re-reads the flag and finds the work done instead of doing it twice. The journal key goes
into the change's comment, so LaunchDarkly's own audit log names it.

Auth is the raw access token in `Authorization` — no "Bearer" (LaunchDarkly answers 401 to it),
read from the environment variable `token_env`. Errors come through `VendorHttp`: 401/403
AuthFailed, 409 Precondition, 429 RateLimited honouring `X-Ratelimit-Reset` (epoch ms) or
`Retry-After`, 5xx Transient; 405 (direct changes refused, e.g. approvals required) Precondition.
Facts: reference/apis.md §7.1.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, model_validator

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.credentials import secret
from adapters.errors import ActuatorError, Permanent, Precondition
from adapters.http import VendorHttp
from policies.operations import Op, Operation

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.actuators.registry import BuildContext

log = logging.getLogger("tidegate.adapters.launchdarkly")

CAPABILITIES = frozenset({Op.SET_TRAFFIC, Op.DISABLE, Op.ENABLE})
WEIGHT_PER_PERCENT = 1000  # rollout weights are thousandths of a percent: 100000 = 100 %
FULL_WEIGHT = 100 * WEIGHT_PER_PERCENT
SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"


class LaunchDarklySettings(BaseModel):
    """A LaunchDarkly target's settings in rollout.yaml; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(min_length=1)
    environment: str = Field(min_length=1)
    flag: str = Field(min_length=1)
    token_env: str = Field(default="LAUNCHDARKLY_ACCESS_TOKEN", min_length=1)
    base_url: str = Field(default="https://app.launchdarkly.com", pattern=r"^https?://")
    new_variation: NonNegativeInt | str = 0  # index in the flag's variations, or its _id
    old_variation: NonNegativeInt | str = 1

    @model_validator(mode="after")
    def _distinct_variations(self) -> LaunchDarklySettings:
        if self.new_variation == self.old_variation:
            raise ValueError(f"new_variation and old_variation are both {self.new_variation!r}")
        return self

    def secret_variables(self) -> tuple[str, ...]:
        return (self.token_env,)


def capabilities_for(settings: LaunchDarklySettings) -> frozenset[Op]:
    return CAPABILITIES


# --- the flag document, as far as tidegate reads it -------------------------------------


class _Variation(BaseModel):
    id: str = Field(alias="_id")


class _Weighted(BaseModel):
    variation: int
    weight: int


class _Rollout(BaseModel):
    variations: list[_Weighted]


class _Fallthrough(BaseModel):
    variation: int | None = None
    rollout: _Rollout | None = None


class _Environment(BaseModel):
    on: bool
    fallthrough: _Fallthrough


class _Flag(BaseModel):
    variations: list[_Variation]
    environments: dict[str, _Environment]


@dataclass(frozen=True)
class FlagState:
    """The flag in the target's environment: on/off and the fallthrough split."""

    on: bool
    split: Mapping[int, int]  # variation index → weight (thousandths of a percent), zeros left out
    new: int  # index of new_variation
    old: int
    ids: tuple[str, ...]  # variation _id by index

    @property
    def traffic(self) -> int:
        return self.split.get(self.new, 0) // WEIGHT_PER_PERCENT

    def describe(self) -> str:
        shares = ", ".join(
            f"variation {i}: {w / WEIGHT_PER_PERCENT:g}%" for i, w in sorted(self.split.items())
        )
        return f"{'on' if self.on else 'off'}; fallthrough {shares or 'unset'}"


def split_for(traffic: int, new: int, old: int) -> dict[int, int]:
    """The fallthrough weights for `traffic` % on the new variation, zeros left out."""
    weights = {new: traffic * WEIGHT_PER_PERCENT, old: FULL_WEIGHT - traffic * WEIGHT_PER_PERCENT}
    return {index: weight for index, weight in weights.items() if weight}


class LaunchDarkly:
    """A LaunchDarkly flag in one environment, implementing the Actuator Protocol."""

    def __init__(self, name: str, settings: LaunchDarklySettings, http: VendorHttp) -> None:
        self._name = name
        self._settings = settings
        self.http = http  # public so tests and rate budgets can read `calls`
        s = settings
        self._path = f"/api/v2/flags/{quote(s.project, safe='')}/{quote(s.flag, safe='')}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return CAPABILITIES

    def observe(self) -> Observed:
        state = self.read()
        return Observed(
            traffic=state.traffic, enabled=state.on, detail=f"{self._label()}: {state.describe()}"
        )

    def read(self) -> FlagState:
        response = self.http.request("GET", self._path, params={"env": self._settings.environment})
        try:
            flag = _Flag.model_validate(response.json())
        except (ValidationError, ValueError) as error:
            raise Permanent(f"{self._label()}: unexpected flag document: {_first_problem(error)}") from None
        environment = flag.environments.get(self._settings.environment)
        if environment is None:
            raise Permanent(f"{self._label()}: the flag has no environment {self._settings.environment!r}")
        ids = tuple(v.id for v in flag.variations)
        return FlagState(
            on=environment.on,
            split=_split(environment.fallthrough),
            new=self._index(self._settings.new_variation, ids, "new_variation"),
            old=self._index(self._settings.old_variation, ids, "old_variation"),
            ids=ids,
        )

    def apply(self, operation: Operation, key: str) -> Result:
        refusal = self._refusal(operation)
        if refusal:
            return Refused(refusal)
        state = self.read()
        if _satisfied(operation, state):
            return AlreadyDone(f"already {operation.describe()}: {state.describe()}")
        self._patch(_instruction(operation, state), f"tidegate: {operation.describe()} (key {key})")
        log.info("launchdarkly %s: %s applied (key %s)", self._name, operation.describe(), key)
        return Applied(f"{operation.describe()} on {self._label()}")

    def _patch(self, instruction: dict[str, object], comment: str) -> None:
        body = {
            "environmentKey": self._settings.environment,
            "comment": comment,
            "instructions": [instruction],
        }
        self.http.request(
            "PATCH", self._path, content=json.dumps(body).encode(), headers={"Content-Type": SEMANTIC_PATCH}
        )

    def _refusal(self, operation: Operation) -> str:
        if operation.target != self._name:
            return f"operation for target {operation.target!r} sent to {self._name!r}"
        if operation.op not in CAPABILITIES:
            return (
                f"launchdarkly target {self._name!r} cannot {operation.op.value} (flag off is the rollback)"
            )
        traffic = operation.traffic
        if operation.op is Op.SET_TRAFFIC and (traffic is None or not 0 <= traffic <= 100):
            return f"set_traffic needs a percentage in 0..100, got {traffic}"
        return ""

    def _index(self, wanted: int | str, ids: tuple[str, ...], setting: str) -> int:
        if isinstance(wanted, int) and wanted < len(ids):
            return wanted
        if isinstance(wanted, str) and wanted in ids:
            return ids.index(wanted)
        listing = ", ".join(f"{i}: {variation_id}" for i, variation_id in enumerate(ids))
        raise Permanent(f"{self._label()}: {setting} {wanted!r} is not a variation of the flag ({listing})")

    def _label(self) -> str:
        s = self._settings
        return f"launchdarkly {self._name!r} (flag {s.project}/{s.flag} in {s.environment})"


def _split(fallthrough: _Fallthrough) -> dict[int, int]:
    if fallthrough.rollout is not None:
        return {w.variation: w.weight for w in fallthrough.rollout.variations if w.weight}
    if fallthrough.variation is not None:
        return {fallthrough.variation: FULL_WEIGHT}
    return {}


def _satisfied(operation: Operation, state: FlagState) -> bool:
    if operation.op is Op.SET_TRAFFIC:
        assert operation.traffic is not None  # _refusal checked it
        return dict(state.split) == split_for(operation.traffic, state.new, state.old)
    return state.on is (operation.op is Op.ENABLE)


def _instruction(operation: Operation, state: FlagState) -> dict[str, object]:
    if operation.op is Op.SET_TRAFFIC:
        assert operation.traffic is not None
        new_weight = operation.traffic * WEIGHT_PER_PERCENT
        # Semantic patch names variations by _id, although the flag document stores indexes.
        weights = {state.ids[state.new]: new_weight, state.ids[state.old]: FULL_WEIGHT - new_weight}
        return {"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": weights}
    return {"kind": "turnFlagOn" if operation.op is Op.ENABLE else "turnFlagOff"}


def _first_problem(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problem = error.errors()[0]
        return f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
    return "not JSON"


def _classify(response: httpx.Response, text: str) -> ActuatorError | None:
    if response.status_code == 405:  # the environment takes changes only through approval requests
        return Precondition(f"{text} (direct changes are refused here: approvals may be required)")
    return None


def build(
    name: str,
    settings: LaunchDarklySettings,
    context: BuildContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> LaunchDarkly:
    """The actuator for target `name`: the token from `context.env`, the shared HTTP client."""
    token = secret(context.env, settings.token_env, name)
    http = VendorHttp(
        context.client(),
        vendor=f"launchdarkly {name!r}",
        base_url=settings.base_url,
        headers={"Authorization": token},  # the raw token: a "Bearer " prefix gets 401
        secrets=[token],
        classify=_classify,
        sleep=sleep,
        clock=clock,
    )
    return LaunchDarkly(name, settings, http)
