"""AWS AppConfig (kind `appconfig`): roll a configuration back to an earlier version; flags off / on.

    targets:
      - name: checkout-config
        kind: appconfig
        settings:
          application: abc1234                 # ids, as in the console's URLs
          environment: env5678
          configuration_profile: prof901
          region: eu-west-1                    # else AWS_REGION / AWS_DEFAULT_REGION / the profile's
          flag: checkout_v2                    # optional: a flag in an AWS.AppConfig.FeatureFlags profile

Credentials come from the standard AWS places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN in the environment tidegate was given, else `profile` or boto3's chain:
shared config, SSO, instance roles). `endpoint_url` points boto3 elsewhere (tests: moto).

What AppConfig allows (reference/apis.md §7.4), and so what this target declares:
- rollback(to), observing first (already deployed, or a deployment of `to` under way →
  already done), by the cheapest means the API allows:
  1. our profile's deployment is still in progress and `to` is what it replaced →
     StopDeployment with `Allow-Revert: true` (it ends ROLLED_BACK: the old version is back);
  2. it is COMPLETE, completed under 72 hours ago, and replaced `to` → StopDeployment with
     `Allow-Revert: true` (REVERTED);
  3. otherwise StartDeployment of `to` with `deployment_strategy` (default AppConfig.AllAtOnce;
     note its 10-minute bake keeps the environment busy) — after stopping an in-progress one.
  StartDeployment carries `LatestDeploymentNumber` from the observation, so a deployment
  someone started meanwhile makes it a 409 rather than a silent overwrite.
- disable / enable, only with `flag:` on a hosted AWS.AppConfig.FeatureFlags profile: a new
  hosted version of the deployed content with `values.<flag>.enabled` flipped, deployed with
  `deployment_strategy`. (A crash between creating that version and deploying it leaves an
  unused version behind; the retry creates and deploys another.)
- no set_traffic: a deployment's percentage grows by its strategy (GrowthType, GrowthFactor,
  DeploymentDurationInMinutes) and cannot be set; choose the strategy to shape the ramp.
  observe() reports it (`traffic`) for information. No pause: StopDeployment rolls back.
- one deployment per environment at a time: a 409 ConflictException is Precondition.

observe(): the newest deployment of our profile (matched by its name in the deployment list)
that was not rolled back or reverted gives `version` and `traffic`; `enabled` is the flag's
value in that version's content.

boto3 calls, retries and the mapping of botocore errors onto adapters.errors live in
adapters/aws.py (ConflictException → Precondition; EndpointConnectionError → Transient; …).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.aws import AwsClient
from adapters.errors import Permanent, Precondition, Transient
from adapters.http import RetryPolicy
from policies.operations import Op, Operation

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.actuators.registry import BuildContext

log = logging.getLogger("tidegate.adapters.appconfig")

REVERT_WINDOW = 72 * 3600  # AppConfig reverts a COMPLETE deployment only this long after it completed
IN_FLIGHT = frozenset({"DEPLOYING", "BAKING", "VALIDATING", "ROLLING_BACK"})
UNDONE = frozenset({"ROLLED_BACK", "REVERTED", "ROLLING_BACK"})


class AppConfigSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    application: str = Field(min_length=1)
    environment: str = Field(min_length=1)
    configuration_profile: str = Field(min_length=1)
    region: str | None = None
    profile: str | None = None  # an AWS named profile
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    deployment_strategy: str = "AppConfig.AllAtOnce"  # for the deployments tidegate starts
    flag: str | None = None  # a flag key in a hosted feature-flag profile: enables disable / enable


def capabilities_for(settings: AppConfigSettings) -> frozenset[Op]:
    flags = {Op.DISABLE, Op.ENABLE} if settings.flag is not None else set()
    return frozenset({Op.ROLLBACK, *flags})


@dataclass(frozen=True)
class Deployment:
    number: int
    profile_name: str
    version: str
    state: str
    percentage: float
    completed: datetime | None

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT

    def describe(self) -> str:
        return f"deployment #{self.number} of version {self.version} {self.state} {self.percentage:g}%"


@dataclass(frozen=True)
class History:
    """An environment's deployments, newest first, as far back as our profile needs."""

    deployments: tuple[Deployment, ...]
    profile_name: str

    @property
    def ours(self) -> list[Deployment]:
        return [d for d in self.deployments if d.profile_name == self.profile_name]

    @property
    def current(self) -> Deployment | None:
        """The deployment whose version our profile serves (or is moving to)."""
        return next((d for d in self.ours if d.state not in UNDONE), None)

    @property
    def replaced(self) -> Deployment | None:
        """The deployment `current` replaced: what a revert of `current` brings back."""
        current = self.current
        older = [d for d in self.ours if current is not None and d.number < current.number]
        return next((d for d in older if d.state == "COMPLETE"), None)

    @property
    def latest_number(self) -> int | None:
        return self.deployments[0].number if self.deployments else None


class AppConfig:
    """The `appconfig` actuator; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: AppConfigSettings,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._name = name
        self._settings = settings
        self._clock = clock
        self._capabilities = capabilities_for(settings)
        self._aws = AwsClient(
            "appconfig",
            env,
            region=settings.region,
            profile=settings.profile,
            endpoint_url=settings.endpoint_url,
            clock=clock,
            sleep=sleep,
            retry=retry,
        )
        self._profile_name: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self._capabilities

    def observe(self) -> Observed:
        history = self._history()
        current = history.current
        enabled = self._flag_enabled(current) if self._settings.flag is not None else None
        if current is None:
            return Observed(enabled=enabled, detail="no deployment of this profile in the environment")
        traffic = round(current.percentage) if current.in_flight else 100
        return Observed(version=current.version, traffic=traffic, enabled=enabled, detail=current.describe())

    def apply(self, operation: Operation, key: str) -> Result:
        if operation.target != self._name:
            return Refused(f"operation for target {operation.target!r} sent to {self._name!r}")
        if operation.op not in self._capabilities:
            return Refused(_unsupported(operation.op))
        if operation.op is Op.ROLLBACK:
            if not operation.version:
                return Refused("rollback needs the configuration version to roll back to")
            return self._rollback(operation.version, key)
        return self._flip(operation.op is Op.ENABLE, key)

    # --- rollback --------------------------------------------------------------------------

    def _rollback(self, to: str, key: str) -> Result:
        history = self._history()
        current, replaced = history.current, history.replaced
        if current is not None and current.version == to:
            return AlreadyDone(f"version {to} is deployed ({current.describe()})")
        if (
            current is not None
            and replaced is not None
            and replaced.version == to
            and self._revertible(current)
        ):
            self._call("stop_deployment", **self._where(), DeploymentNumber=current.number, AllowRevert=True)
            return Applied(f"stopped {current.describe()} with Allow-Revert: version {to} is back")
        description = f"tidegate rollback to {to} ({key})"
        if current is not None and current.in_flight:
            self._call("stop_deployment", **self._where(), DeploymentNumber=current.number, AllowRevert=True)
            try:
                started = self._start(to, self._history(), description)
            except Precondition as busy:  # the environment is still rolling our deployment back
                raise Transient(f"appconfig: stopped {current.describe()}; {to} follows: {busy}") from None
        else:
            started = self._start(to, history, description)
        return Applied(
            f"started deployment #{started} of version {to} ({self._settings.deployment_strategy})"
        )

    def _revertible(self, deployment: Deployment) -> bool:
        if deployment.in_flight:
            return True
        completed = deployment.completed
        return completed is not None and self._clock() - completed.timestamp() < REVERT_WINDOW

    def _start(self, version: str, history: History, description: str) -> int:
        params: dict[str, Any] = {
            **self._where(),
            "DeploymentStrategyId": self._settings.deployment_strategy,
            "ConfigurationProfileId": self._settings.configuration_profile,
            "ConfigurationVersion": version,
            "Description": description[:1024],
        }
        if history.latest_number is not None:
            params["LatestDeploymentNumber"] = history.latest_number
        started = self._call("start_deployment", **params)
        log.info("%s: %s", self._name, description, extra={"target": self._name})
        return int(started["DeploymentNumber"])

    # --- feature flag off / on ---------------------------------------------------------------

    def _flip(self, enable: bool, key: str) -> Result:
        flag = str(self._settings.flag)
        history = self._history()
        current = history.current
        if current is None:
            return Refused(f"appconfig: nothing is deployed in the environment to turn {flag} {_on(enable)}")
        content = self._content(current.version)
        values = content.get("values")
        if not isinstance(values, dict) or not isinstance(values.get(flag), dict):
            return Refused(f"appconfig: version {current.version} has no flag {flag!r}")
        if values[flag].get("enabled") is enable:
            return AlreadyDone(f"flag {flag} is {_on(enable)} in version {current.version}")
        values[flag] = values[flag] | {"enabled": enable}
        created = self._call(
            "create_hosted_configuration_version",
            ApplicationId=self._settings.application,
            ConfigurationProfileId=self._settings.configuration_profile,
            Content=json.dumps(content).encode(),
            ContentType="application/json",
            Description=f"tidegate: {flag} {_on(enable)} ({key})"[:1024],
        )
        version = str(created["VersionNumber"])
        number = self._start(version, history, f"tidegate: flag {flag} {_on(enable)} ({key})")
        return Applied(f"flag {flag} {_on(enable)}: version {version} in deployment #{number}")

    def _flag_enabled(self, current: Deployment | None) -> bool | None:
        if current is None:
            return None
        entry = self._content(current.version).get("values", {}).get(str(self._settings.flag))
        return bool(entry.get("enabled")) if isinstance(entry, dict) else None

    def _content(self, version: str) -> dict[str, Any]:
        if not version.isdigit():
            raise Permanent(
                f"appconfig: flags need a hosted profile; version {version!r} is not a hosted version"
            )
        answer = self._call(
            "get_hosted_configuration_version",
            ApplicationId=self._settings.application,
            ConfigurationProfileId=self._settings.configuration_profile,
            VersionNumber=int(version),
        )
        try:
            content = json.loads(answer["Content"].read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Permanent(f"appconfig: version {version} is not JSON (a feature-flag profile is)") from None
        return content if isinstance(content, dict) else {}

    # --- reading -----------------------------------------------------------------------------

    def _history(self) -> History:
        """Deployments newest first, read page by page until what `current` replaced is known."""
        name, seen = self._profile(), []
        for deployment in self._deployments():
            seen.append(deployment)
            if History(tuple(seen), name).replaced is not None:
                break
        return History(tuple(seen), name)

    def _deployments(self) -> Iterator[Deployment]:
        token: str | None = None
        while True:
            paging: dict[str, Any] = {"MaxResults": 50} | ({"NextToken": token} if token else {})
            page = self._call("list_deployments", **self._where(), **paging)
            for item in sorted(page.get("Items", []), key=lambda i: -int(i["DeploymentNumber"])):
                yield Deployment(
                    number=int(item["DeploymentNumber"]),
                    profile_name=str(item.get("ConfigurationName", "")),
                    version=str(item.get("ConfigurationVersion", "")),
                    state=str(item.get("State", "")),
                    percentage=float(item.get("PercentageComplete", 0.0)),
                    completed=item.get("CompletedAt"),
                )
            token = page.get("NextToken")
            if not token:
                return

    def _profile(self) -> str:
        if self._profile_name is None:
            profile = self._call(
                "get_configuration_profile",
                ApplicationId=self._settings.application,
                ConfigurationProfileId=self._settings.configuration_profile,
            )
            self._profile_name = str(profile["Name"])
        return self._profile_name

    def _where(self) -> dict[str, str]:
        return {"ApplicationId": self._settings.application, "EnvironmentId": self._settings.environment}

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._aws.call(operation, **params)


def _unsupported(op: Op) -> str:
    if op is Op.SET_TRAFFIC:
        return "appconfig cannot set a percentage: a deployment grows by its deployment strategy"
    if op in (Op.PAUSE, Op.RESUME):
        return f"appconfig cannot {op.value}: StopDeployment rolls back instead"
    return f"appconfig cannot {op.value} without a `flag` setting (a hosted feature-flag profile)"


def _on(enable: bool) -> str:
    return "on" if enable else "off"


def build(
    name: str,
    settings: AppConfigSettings,
    context: BuildContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    retry: RetryPolicy | None = None,
) -> AppConfig:
    """The actuator for target `name`; AWS credentials from `context.env` or boto3's chain."""
    return AppConfig(name, settings, context.env, clock=clock, sleep=sleep, retry=retry)
