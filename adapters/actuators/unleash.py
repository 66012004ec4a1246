"""Unleash: a feature's gradual rollout (flexibleRollout) in one environment, and on / off there.

    targets:
      - name: checkout-flag
        kind: unleash
        settings: {base_url: https://unleash.example.com, project: default,
                   feature: checkout-v2, environment: production, token_env: UNLEASH_ADMIN_TOKEN}

Admin API under `{base_url}/api/admin/projects/{project}/features/{feature}/environments/{environment}`
(reference/apis.md §7.2; checked against a real unleash-server 7.5 in the tests).

The rollout strategy. tidegate moves the `rollout` parameter of ONE flexibleRollout strategy:
the one titled `strategy_title` when that is set, else the only enabled flexibleRollout strategy
of the environment. None yet → set_traffic creates it (stickiness `stickiness`, groupId the
feature name, titled `strategy_title` when set); several and no title → Refused, a human must
say which. Other strategies are left alone — Unleash ORs strategies, so one without constraints
beside ours serves everyone whatever our percentage says.

- set_traffic(N): JSON Patch of that strategy's `/parameters/rollout` to the STRING "N" —
  units trap: Unleash parameters are a string map and the rollout is a percentage 0..100 (a
  number is a 400; Unleash does not check the range itself, so tidegate does).
- disable / enable: `POST …/off` / `POST …/on`. Unleash turns ON an environment that has no
  strategy by adding a flexibleRollout at 100 % — its rule, not ours.
- No rollback: Unleash keeps no earlier feature version to return to; off is the rollback.

observe() reads the feature environment: enabled, and traffic = the managed strategy's rollout
(None when there is none). apply observes first and answers AlreadyDone when nothing is left to
do, so a restart after a crash between the journal's intent and its result is safe.

Auth: the raw token in `Authorization` (admin, service-account or personal access token),
from the environment variable `token_env`. Errors through `VendorHttp`: 401/403 AuthFailed,
404 (no such project, feature or environment) and 400 Permanent with Unleash's own message and
details, 5xx Transient; a 403 demanding a change request is a Precondition.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.credentials import secret
from adapters.errors import ActuatorError, Permanent, Precondition
from adapters.http import VendorHttp
from policies.operations import Op, Operation

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.actuators.registry import BuildContext

log = logging.getLogger("tidegate.adapters.unleash")

CAPABILITIES = frozenset({Op.SET_TRAFFIC, Op.DISABLE, Op.ENABLE})
FLEXIBLE_ROLLOUT = "flexibleRollout"


class UnleashSettings(BaseModel):
    """An Unleash target's settings in rollout.yaml; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://")  # the server's root, without /api
    project: str = Field(default="default", min_length=1)
    feature: str = Field(min_length=1)
    environment: str = Field(min_length=1)
    token_env: str = Field(default="UNLEASH_ADMIN_TOKEN", min_length=1)
    strategy_title: str | None = Field(default=None, min_length=1)  # which flexibleRollout is ours
    stickiness: str = Field(default="default", min_length=1)  # for a strategy tidegate creates

    def secret_variables(self) -> tuple[str, ...]:
        return (self.token_env,)


def capabilities_for(settings: UnleashSettings) -> frozenset[Op]:
    return CAPABILITIES


# --- the feature environment, as far as tidegate reads it --------------------------------


class _Strategy(BaseModel):
    id: str
    name: str
    title: str | None = None
    disabled: bool | None = False
    parameters: dict[str, str] = Field(default_factory=dict)


class _FeatureEnvironment(BaseModel):
    enabled: bool
    strategies: list[_Strategy] = Field(default_factory=list)


@dataclass(frozen=True)
class Rollout:
    """The managed flexibleRollout strategy: its id and rollout percentage (None if unreadable)."""

    strategy_id: str
    percent: int | None


@dataclass(frozen=True)
class EnvironmentState:
    enabled: bool
    rollout: Rollout | None  # None: no managed strategy yet
    ambiguous: int  # how many candidate strategies when more than one (then `rollout` is None)

    def describe(self) -> str:
        if self.ambiguous:
            strategy = f"{self.ambiguous} flexibleRollout strategies"
        elif self.rollout is None:
            strategy = "no flexibleRollout strategy"
        else:
            strategy = f"flexibleRollout {self.rollout.percent}% (strategy {self.rollout.strategy_id})"
        return f"{'enabled' if self.enabled else 'disabled'}; {strategy}"


class Unleash:
    """An Unleash feature in one environment, implementing the Actuator Protocol."""

    def __init__(self, name: str, settings: UnleashSettings, http: VendorHttp) -> None:
        self._name = name
        self._settings = settings
        self.http = http  # public so tests and rate budgets can read `calls`
        s = settings
        self._path = (
            f"/api/admin/projects/{quote(s.project, safe='')}/features/{quote(s.feature, safe='')}"
            f"/environments/{quote(s.environment, safe='')}"
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return CAPABILITIES

    def observe(self) -> Observed:
        state = self.read()
        traffic = state.rollout.percent if state.rollout is not None else None
        return Observed(traffic=traffic, enabled=state.enabled, detail=f"{self._label()}: {state.describe()}")

    def read(self) -> EnvironmentState:
        response = self.http.request("GET", self._path)
        try:
            environment = _FeatureEnvironment.model_validate(response.json())
        except (ValidationError, ValueError) as error:
            raise Permanent(f"{self._label()}: unexpected feature environment document: {error}") from None
        candidates = [s for s in environment.strategies if self._ours(s)]
        if len(candidates) > 1:
            return EnvironmentState(environment.enabled, None, len(candidates))
        rollout = None
        if candidates:
            rollout = Rollout(candidates[0].id, _percent(candidates[0].parameters.get("rollout")))
        return EnvironmentState(environment.enabled, rollout, 0)

    def apply(self, operation: Operation, key: str) -> Result:
        refusal = self._refusal(operation)
        if refusal:
            return Refused(refusal)
        state = self.read()
        if operation.op is Op.SET_TRAFFIC:
            assert operation.traffic is not None  # _refusal checked it
            if state.ambiguous:
                return Refused(
                    f"{self._label()}: {state.ambiguous} enabled flexibleRollout strategies; "
                    "set strategy_title to say which one tidegate moves"
                )
            if state.rollout is not None and state.rollout.percent == operation.traffic:
                return AlreadyDone(f"already {operation.describe()}: {state.describe()}")
            self._set_rollout(state.rollout, operation.traffic)
        else:
            if state.enabled is (operation.op is Op.ENABLE):
                return AlreadyDone(f"already {operation.describe()}: {state.describe()}")
            self.http.request("POST", f"{self._path}/{'on' if operation.op is Op.ENABLE else 'off'}")
        log.info("unleash %s: %s applied (key %s)", self._name, operation.describe(), key)
        return Applied(f"{operation.describe()} on {self._label()}")

    def _set_rollout(self, rollout: Rollout | None, percent: int) -> None:
        if rollout is not None:
            # "add" sets an existing member too (RFC 6902 §4.1): works if the parameter is missing.
            patch = [{"op": "add", "path": "/parameters/rollout", "value": str(percent)}]
            path = f"{self._path}/strategies/{quote(rollout.strategy_id, safe='')}"
            self.http.request("PATCH", path, content=json.dumps(patch).encode(), headers=_JSON)
            return
        s = self._settings
        strategy: dict[str, object] = {
            "name": FLEXIBLE_ROLLOUT,
            "constraints": [],
            "parameters": {"rollout": str(percent), "stickiness": s.stickiness, "groupId": s.feature},
        }
        if s.strategy_title is not None:
            strategy["title"] = s.strategy_title
        self.http.request(
            "POST", f"{self._path}/strategies", content=json.dumps(strategy).encode(), headers=_JSON
        )

    def _ours(self, strategy: _Strategy) -> bool:
        if strategy.name != FLEXIBLE_ROLLOUT or strategy.disabled:
            return False  # a disabled strategy serves no one: it is not the rollout
        title = self._settings.strategy_title
        return title is None or strategy.title == title

    def _refusal(self, operation: Operation) -> str:
        if operation.target != self._name:
            return f"operation for target {operation.target!r} sent to {self._name!r}"
        if operation.op not in CAPABILITIES:
            return (
                f"unleash target {self._name!r} cannot {operation.op.value} (turning it off is the rollback)"
            )
        traffic = operation.traffic
        if operation.op is Op.SET_TRAFFIC and (traffic is None or not 0 <= traffic <= 100):
            return f"set_traffic needs a percentage in 0..100, got {traffic}"
        return ""

    def _label(self) -> str:
        s = self._settings
        return f"unleash {self._name!r} (feature {s.project}/{s.feature} in {s.environment})"


_JSON = {"Content-Type": "application/json"}


def _percent(rollout: str | None) -> int | None:
    """The rollout parameter, a string "0".."100"; None when absent or not a whole number."""
    if rollout is None or not rollout.strip().isdecimal():
        return None
    return int(rollout)


def _classifier(token: str) -> Callable[[httpx.Response, str], ActuatorError | None]:
    def classify(response: httpx.Response, text: str) -> ActuatorError | None:
        body = response.text
        if response.status_code == 403 and (
            "SKIP_CHANGE_REQUEST" in body or "change request" in body.lower()
        ):
            return Precondition(
                f"{text} (change requests are enabled here: the change needs an approved request)"
            )
        if response.status_code == 400:
            return Permanent(text + _details(response).replace(token, "***"))
        return None

    return classify


def _details(response: httpx.Response) -> str:
    """Unleash's BadDataError says what was wrong only in `details[].message`."""
    try:
        details = response.json().get("details")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(details, list):
        return ""
    said = [str(d.get("message")) for d in details if isinstance(d, dict) and d.get("message")]
    return (" (" + "; ".join(said)[:300] + ")") if said else ""


def build(
    name: str,
    settings: UnleashSettings,
    context: BuildContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Unleash:
    """The actuator for target `name`: the token from `context.env`, the shared HTTP client."""
    token = secret(context.env, settings.token_env, name)
    http = VendorHttp(
        context.client(),
        vendor=f"unleash {name!r}",
        base_url=settings.base_url,
        headers={"Authorization": token},
        secrets=[token],
        classify=_classifier(token),
        sleep=sleep,
        clock=clock,
    )
    return Unleash(name, settings, http)
