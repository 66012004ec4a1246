"""AWS AppConfig on loopback: moto's server for what moto implements, this fake for the rest.

moto 5.2.5 serves AppConfig applications, configuration profiles and hosted configuration
versions (create / get / delete; not list), but not environments, deployment strategies or
deployments — the part a rollback controller uses. `FakeAppConfig` speaks AppConfig's
rest-json protocol for those (botocore's service model 2019-10-09 is the contract; reference/
apis.md §7.4) and forwards every other request to moto unchanged, so boto3 talks to one
endpoint and the hosted versions a deployment names really exist in moto.

- Auth: `Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<date>/<region>/appconfig/aws4_request, …`
  is required (signatures are not verified); an unknown access key id is 403
  `UnrecognizedClientException`, a missing header 403 `MissingAuthenticationTokenException`.
- Errors: status + `x-amzn-ErrorType: <Code>` + `{"Message": …}` (BadRequestException,
  ResourceNotFoundException (404), ConflictException (409), InternalServerException).
- Deployment strategies: the predefined `AppConfig.AllAtOnce` (0 min, bake 10),
  `AppConfig.Linear50PercentEvery30Seconds` (1 min, bake 1), `AppConfig.Linear20PercentEvery6Minutes`
  (30 min, bake 30), and CreateDeploymentStrategy.
- Deployments move with the fake clock: DEPLOYING (PercentageComplete grows by GrowthFactor in
  equal steps over DeploymentDurationInMinutes) → BAKING (100 %, FinalBakeTimeInMinutes) →
  COMPLETE. One deployment per environment at a time: StartDeployment while one is DEPLOYING,
  BAKING or VALIDATING is 409 ConflictException, as is a stale `LatestDeploymentNumber`.
- StopDeployment (DELETE) works on DEPLOYING only, unless `Allow-Revert: true`: then an
  in-progress deployment ends ROLLED_BACK and a COMPLETE one REVERTED — within 72 hours of its
  completion, else 400 BadRequestException; stopping a stopped deployment is 400.
- `alarm(app, env)` is a CloudWatch alarm on the environment's monitor: the in-progress
  deployment is ROLLED_BACK with TriggeredBy CLOUDWATCH_ALARM.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.fakes.server import FakeVendor, Reply, Request

REVERT_WINDOW = 72 * 3600
IN_FLIGHT = ("DEPLOYING", "BAKING", "VALIDATING", "ROLLING_BACK")
PREDEFINED = {
    "AppConfig.AllAtOnce": (0, 100.0, "LINEAR", 10),
    "AppConfig.Linear50PercentEvery30Seconds": (1, 50.0, "LINEAR", 1),
    "AppConfig.Linear20PercentEvery6Minutes": (30, 20.0, "LINEAR", 30),
}
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/[^/]+/appconfig/aws4_request,")
_HOP_BY_HOP = {"content-length", "connection", "server", "date", "transfer-encoding", "keep-alive"}


def aws_error(status: int, code: str, message: str, **extra: Any) -> Reply:
    return Reply(status, {"Message": message, **extra}, {"x-amzn-ErrorType": code})


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Strategy:
    id: str
    name: str
    duration: int  # minutes
    growth: float
    growth_type: str
    bake: int  # minutes

    def wire(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": self.name,
            "DeploymentDurationInMinutes": self.duration,
            "GrowthType": self.growth_type,
            "GrowthFactor": self.growth,
            "FinalBakeTimeInMinutes": self.bake,
            "ReplicateTo": "NONE",
        }


@dataclass
class Deployment:
    number: int
    app: str
    env: str
    strategy: Strategy
    profile: str
    profile_name: str
    version: str
    description: str
    started: float
    stopped: str | None = None  # ROLLED_BACK | REVERTED, once stopped
    stopped_at: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def state(self, now: float) -> tuple[str, float, float | None]:
        """(State, PercentageComplete, CompletedAt) at `now`."""
        if self.stopped is not None:
            return self.stopped, 0.0 if self.stopped == "ROLLED_BACK" else 100.0, self.stopped_at
        elapsed, duration = now - self.started, self.strategy.duration * 60
        if elapsed < duration:
            steps = math.ceil(100 / self.strategy.growth)
            done = 1 + int(elapsed // (duration / steps))
            return "DEPLOYING", min(100.0, self.strategy.growth * done), None
        if elapsed < duration + self.strategy.bake * 60:
            return "BAKING", 100.0, None
        return "COMPLETE", 100.0, self.started + duration + self.strategy.bake * 60


@dataclass
class Environment:
    app: str
    id: str
    name: str
    monitors: list[dict[str, str]]
    deployments: list[Deployment] = field(default_factory=list)


class FakeAppConfig(FakeVendor):
    def __init__(self, moto_url: str, *, clock: Callable[[], float], access_keys: set[str]) -> None:
        super().__init__()
        self.moto_url = moto_url.rstrip("/")
        self.clock = clock
        self.access_keys = access_keys
        self.environments: dict[tuple[str, str], Environment] = {}
        self.strategies = {k: Strategy(k, k, *v) for k, v in PREDEFINED.items()}
        self.started: list[Request] = []  # StartDeployment requests accepted
        self.stopped: list[Request] = []  # StopDeployment requests accepted
        self.lose_next_start_reply = False
        self._ids = 0
        self._moto = httpx.Client(timeout=10)
        env = r"/applications/(?P<app>[^/]+)/environments"
        one_env = env + r"/(?P<env>[^/]+)"
        deployments = one_env + r"/deployments"
        self.route("POST", env, self.create_environment)
        self.route("GET", env, self.list_environments)
        self.route("GET", one_env, self.get_environment)
        self.route("POST", r"/deploymentstrategies", self.create_strategy)
        self.route("GET", r"/deploymentstrategies/(?P<id>[^/]+)", self.get_strategy)
        self.route("POST", deployments, self.start_deployment)
        self.route("GET", deployments, self.list_deployments)
        self.route("GET", deployments + r"/(?P<number>\d+)", self.get_deployment)
        self.route("DELETE", deployments + r"/(?P<number>\d+)", self.stop_deployment)
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.route(method, r"/.*", self.forward_to_moto)

    def stop(self) -> None:
        super().stop()
        self._moto.close()

    # --- test set-up -----------------------------------------------------------------

    def alarm(self, app: str, env: str) -> None:
        """A monitor's CloudWatch alarm fired: AppConfig rolls the in-progress deployment back."""
        with self._lock:
            for deployment in self.environments[(app, env)].deployments:
                if deployment.state(self.clock())[0] in IN_FLIGHT:
                    self._stop(deployment, "ROLLED_BACK", "CLOUDWATCH_ALARM")

    def deployments(self, app: str, env: str) -> list[dict[str, Any]]:
        return [self._wire(d) for d in self.environments[(app, env)].deployments]

    # --- auth ------------------------------------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        header = request.headers.get("authorization")
        if header is None:
            return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        match = _CREDENTIAL.match(header)
        if match is None or "x-amz-date" not in request.headers:
            return aws_error(
                400, "IncompleteSignatureException", "Authorization header requires a Credential."
            )
        if match["key"] not in self.access_keys:
            message = "The security token included in the request is invalid."
            return aws_error(403, "UnrecognizedClientException", message)
        return None

    # --- environments and strategies ---------------------------------------------------

    def create_environment(self, request: Request) -> Reply:
        app = request.params["app"]
        missing = self._moto_missing(request, f"/applications/{app}")
        if missing is not None:
            return missing
        body = request.json() or {}
        self._ids += 1
        environment = Environment(app, f"env{self._ids:04d}", body["Name"], body.get("Monitors", []))
        self.environments[(app, environment.id)] = environment
        return Reply(201, self._environment(environment))

    def list_environments(self, request: Request) -> Reply:
        app = request.params["app"]
        items = [self._environment(e) for (owner, _), e in self.environments.items() if owner == app]
        return Reply(200, {"Items": items})

    def get_environment(self, request: Request) -> Reply:
        environment = self.environments.get((request.params["app"], request.params["env"]))
        if environment is None:
            return self._not_found("Environment", request.params["env"])
        return Reply(200, self._environment(environment))

    def create_strategy(self, request: Request) -> Reply:
        body = request.json()
        self._ids += 1
        strategy = Strategy(
            f"str{self._ids:04d}",
            body["Name"],
            int(body["DeploymentDurationInMinutes"]),
            float(body["GrowthFactor"]),
            body.get("GrowthType", "LINEAR"),
            int(body.get("FinalBakeTimeInMinutes", 0)),
        )
        self.strategies[strategy.id] = strategy
        return Reply(201, strategy.wire())

    def get_strategy(self, request: Request) -> Reply:
        strategy = self.strategies.get(request.params["id"])
        if strategy is None:
            return self._not_found("DeploymentStrategy", request.params["id"])
        return Reply(200, strategy.wire())

    # --- deployments ---------------------------------------------------------------------

    def start_deployment(self, request: Request) -> Reply:
        environment = self.environments.get((request.params["app"], request.params["env"]))
        if environment is None:
            return self._not_found("Environment", request.params["env"])
        body = request.json() or {}
        strategy = self.strategies.get(body.get("DeploymentStrategyId", ""))
        if strategy is None:
            return self._not_found("DeploymentStrategy", str(body.get("DeploymentStrategyId")))
        profile = self._profile(request, environment.app, str(body.get("ConfigurationProfileId")))
        if isinstance(profile, Reply):
            return profile
        version = str(body.get("ConfigurationVersion", ""))
        if profile.get("LocationUri") == "hosted":
            hosted = f"/applications/{environment.app}/configurationprofiles/{profile['Id']}"
            path = f"{hosted}/hostedconfigurationversions/{version}"
            missing = (
                self._moto_missing(request, path)
                if version.isdigit()
                else self._not_found("Version", version)
            )
            if missing is not None:
                return missing
        refusal = self._conflict(environment, body.get("LatestDeploymentNumber"))
        if refusal is not None:
            return refusal
        number = 1 + max((d.number for d in environment.deployments), default=0)
        deployment = Deployment(
            number,
            environment.app,
            environment.id,
            strategy,
            profile["Id"],
            profile["Name"],
            version,
            str(body.get("Description", "")),
            self.clock(),
        )
        deployment.events.append(self._event("DEPLOYMENT_STARTED", "USER", "Deployment started"))
        environment.deployments.append(deployment)
        self.started.append(request)
        if self.lose_next_start_reply:
            self.lose_next_start_reply = False
            return Reply(reset=True)
        return Reply(201, self._wire(deployment))

    def list_deployments(self, request: Request) -> Reply:
        environment = self.environments.get((request.params["app"], request.params["env"]))
        if environment is None:
            return self._not_found("Environment", request.params["env"])
        newest_first = sorted(environment.deployments, key=lambda d: d.number, reverse=True)
        start = int(request.query.get("next_token", ["0"])[0])
        size = int(request.query.get("max_results", ["50"])[0])
        page = newest_first[start : start + size]
        body: dict[str, Any] = {"Items": [self._summary(d) for d in page]}
        if start + size < len(newest_first):
            body["NextToken"] = str(start + size)
        return Reply(200, body)

    def get_deployment(self, request: Request) -> Reply:
        deployment = self._deployment(request)
        return deployment if isinstance(deployment, Reply) else Reply(200, self._wire(deployment))

    def stop_deployment(self, request: Request) -> Reply:
        deployment = self._deployment(request)
        if isinstance(deployment, Reply):
            return deployment
        revert = request.headers.get("allow-revert", "").lower() == "true"
        state, _, completed = deployment.state(self.clock())
        if state in ("ROLLED_BACK", "REVERTED"):
            return aws_error(
                400, "BadRequestException", f"Deployment #{deployment.number} is already {state}."
            )
        if not revert and state != "DEPLOYING":
            message = f"Only a DEPLOYING deployment can be stopped; #{deployment.number} is {state}."
            return aws_error(400, "BadRequestException", message)
        if state == "COMPLETE":
            assert completed is not None
            if self.clock() - completed > REVERT_WINDOW:
                message = "A deployment can only be reverted within 72 hours of its completion."
                return aws_error(400, "BadRequestException", message)
            self._stop(deployment, "REVERTED", "USER")
        else:
            self._stop(deployment, "ROLLED_BACK", "USER")
        self.stopped.append(request)
        return Reply(202, self._wire(deployment))

    def _conflict(self, environment: Environment, latest: Any) -> Reply | None:
        now = self.clock()
        busy = next((d for d in environment.deployments if d.state(now)[0] in IN_FLIGHT), None)
        if busy is not None:
            message = f"Deployment #{busy.number} is already in progress in environment {environment.name}."
            return aws_error(409, "ConflictException", message)
        newest = max((d.number for d in environment.deployments), default=0)
        if latest is not None and int(latest) != newest:
            message = f"LatestDeploymentNumber {latest} does not match the latest deployment #{newest}."
            return aws_error(409, "ConflictException", message)
        return None

    def _stop(self, deployment: Deployment, outcome: str, by: str) -> None:
        now = self.clock()
        if outcome == "REVERTED":
            deployment.events.append(self._event("REVERT_COMPLETED", by, "Deployment reverted"))
        else:
            deployment.events.append(self._event("ROLLBACK_STARTED", by, "Rollback started"))
            deployment.events.append(self._event("ROLLBACK_COMPLETED", by, "Rollback completed"))
        deployment.stopped, deployment.stopped_at = outcome, now

    def _deployment(self, request: Request) -> Deployment | Reply:
        environment = self.environments.get((request.params["app"], request.params["env"]))
        if environment is None:
            return self._not_found("Environment", request.params["env"])
        number = int(request.params["number"])
        found = next((d for d in environment.deployments if d.number == number), None)
        return found if found is not None else self._not_found("Deployment", str(number))

    # --- documents ---------------------------------------------------------------------

    def _environment(self, environment: Environment) -> dict[str, Any]:
        state = "READY_FOR_DEPLOYMENT"
        if environment.deployments:
            latest = environment.deployments[-1].state(self.clock())[0]
            state = {"DEPLOYING": "DEPLOYING", "BAKING": "DEPLOYING", "VALIDATING": "DEPLOYING"}.get(
                latest, state
            )
            state = latest if latest in ("ROLLED_BACK", "REVERTED", "ROLLING_BACK") else state
        return {
            "ApplicationId": environment.app,
            "Id": environment.id,
            "Name": environment.name,
            "State": state,
            "Monitors": environment.monitors,
        }

    def _summary(self, deployment: Deployment) -> dict[str, Any]:
        state, percentage, completed = deployment.state(self.clock())
        summary = {
            "DeploymentNumber": deployment.number,
            "ConfigurationName": deployment.profile_name,
            "ConfigurationVersion": deployment.version,
            "DeploymentDurationInMinutes": deployment.strategy.duration,
            "GrowthType": deployment.strategy.growth_type,
            "GrowthFactor": deployment.strategy.growth,
            "FinalBakeTimeInMinutes": deployment.strategy.bake,
            "State": state,
            "PercentageComplete": percentage,
            "StartedAt": _iso(deployment.started),
        }
        return summary | ({"CompletedAt": _iso(completed)} if completed is not None else {})

    def _wire(self, deployment: Deployment) -> dict[str, Any]:
        summary = self._summary(deployment)
        return summary | {
            "ApplicationId": deployment.app,
            "EnvironmentId": deployment.env,
            "DeploymentStrategyId": deployment.strategy.id,
            "ConfigurationProfileId": deployment.profile,
            "Description": deployment.description,
            "EventLog": list(reversed(deployment.events)),
        }

    def _event(self, kind: str, by: str, description: str) -> dict[str, Any]:
        return {
            "EventType": kind,
            "TriggeredBy": by,
            "Description": description,
            "OccurredAt": _iso(self.clock()),
        }

    def _not_found(self, kind: str, name: str) -> Reply:
        return aws_error(404, "ResourceNotFoundException", f"{kind} {name} not found", ResourceName=name)

    # --- moto ----------------------------------------------------------------------------

    def forward_to_moto(self, request: Request) -> Reply:
        query = "&".join(f"{k}={v}" for k, values in request.query.items() for v in values)
        answer = self._moto.request(
            request.method,
            self.moto_url + request.path + (f"?{query}" if query else ""),
            headers={k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP and k != "host"},
            content=request.body,
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Reply(answer.status_code, answer.content or None, headers)

    def _moto_get(self, request: Request, path: str) -> tuple[int, dict[str, Any]]:
        """GET `path` from moto with the caller's credentials (moto routes by their scope)."""
        signed = {k: v for k, v in request.headers.items() if k in ("authorization", "x-amz-date")}
        answer = self.forward_to_moto(Request("GET", path, {}, signed, b""))
        body = answer.body if isinstance(answer.body, bytes) else b""
        try:
            document = json.loads(body or b"{}")
        except json.JSONDecodeError:
            document = {}
        return answer.status, document if isinstance(document, dict) else {}

    def _moto_missing(self, request: Request, path: str) -> Reply | None:
        status, body = self._moto_get(request, path)
        if status < 300:
            return None
        return self._not_found("Resource", str(body.get("message") or body.get("Message") or path))

    def _profile(self, request: Request, app: str, profile: str) -> dict[str, Any] | Reply:
        status, body = self._moto_get(request, f"/applications/{app}/configurationprofiles/{profile}")
        if status >= 300:
            return self._not_found("ConfigurationProfile", profile)
        return body
