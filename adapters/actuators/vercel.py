"""Vercel: instant rollback of a project's production deployment, and rolling-release stages.

    targets:
      - name: web
        kind: vercel
        settings: {project: storefront, team_id: team_abc, token_env: VERCEL_TOKEN,
                   rolling_release: true, version_meta: githubCommitSha}

Versions. rollout.yaml names releases (`version: 4f2a…`, `previousVersion: 9c1d…`); Vercel
names deployments (`dpl_…`). A deployment's version is, in this order: the key of
`versions` (an explicit map version → deployment id) that names it; its `meta[version_meta]`
(default `githubCommitSha`, which git deployments carry; CLI deployments can set their own,
e.g. `vercel deploy --meta version=v2` with `version_meta: version`); else its id. So
rollback(to) resolves `to` through `versions`, then as a `dpl_…` id, then by searching the
project's READY production deployments (newest first, up to 5 pages of 100) for that meta.
A version that resolves to nothing is Refused — nothing is guessed.

observe() reads `GET /v9/projects/{project}?rollbackInfo=true` (`targets.production` and
`lastAliasRequest`) and, with `rolling_release: true`, `GET /v1/projects/{id}/rolling-release`.
While a rolling release is ACTIVE the version is the canary's and traffic its share;
otherwise the version is the production deployment's and traffic 100 (None without
`rolling_release`: such a target has no notion of a split).

rollback(to) — `POST /v1/projects/{id}/rollback/{deployment}`, then polls the project until
`lastAliasRequest` for that deployment has a terminal `jobStatus` (every `poll_interval`
seconds, at most `rollback_timeout`; the sleep is injected). Observe first: production
already serving the deployment with no rolling release in progress is AlreadyDone, and an
alias job to it that is still in flight (a crash between request and result) is awaited,
not requested again. Vercel answers 409 to a second alias request while one runs; an alias
job of someone else in flight is Transient (retried once it is over). A `failed` job is
Transient: the next attempt requests it again. Vercel's CLI rule is kept: a request with no
`jobStatus` older than 3 minutes is not in progress. After a rollback Vercel stops assigning
production domains to new deployments until someone promotes again: that is Vercel's.

set_traffic(N) needs `rolling_release: true` (capabilities say so). Vercel has no "set
percentage": a rolling release moves only forward through the stages configured on the
project (approve-stage, complete) or is aborted (an instant rollback to its current
deployment — what `vercel rolling-release abort` does). So:
- N equal to the canary's share: AlreadyDone. N = 100: `complete`.
- N above it: approve stage after stage up to the furthest stage whose share is ≤ N — never
  more exposure than asked; configure the Vercel stages as the rollout's steps (10/50/100)
  for exact steps. When no stage fits in between, the release stays where it is (AlreadyDone,
  the detail names the stages).
- N = 0: abort (instant rollback to the release's current deployment).
- 0 < N below it: Refused — a stage cannot be undone; like every refusal it fails the
  rollout and pages a human, who rolls back or aborts.
- No rolling release in progress: 100 is AlreadyDone (production serves everything), any
  other N is Refused (Vercel starts a release only when a production deployment is created).

Units: every Vercel timestamp is epoch milliseconds; a live release stage's `duration` is
seconds while the project's rolling-release *config* says minutes (only the live document is
read here). Errors come through `VendorHttp`: `{"error": {"code", "message"}}`; 403/401
AuthFailed (Vercel answers 403 to a bad token), 404 Permanent (also a project outside the
token's team), 409 Precondition, 429 RateLimited from `X-RateLimit-Reset` (epoch seconds) or
the body's `limit.resetMs` (epoch ms), 5xx Transient. Facts: reference/apis.md §3, §11.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.credentials import secret
from adapters.errors import ActuatorError, Permanent, Precondition, RateLimited, Transient
from adapters.http import VendorHttp, retry_after
from policies.operations import Op, Operation

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.actuators.registry import BuildContext

log = logging.getLogger("tidegate.adapters.vercel")

STALE_ALIAS_REQUEST = 180.0  # seconds: the Vercel CLI's "no jobStatus after 3 minutes = not in progress"
IN_FLIGHT = frozenset({"pending", "in-progress"})
DEPLOYMENT_PAGES = 5  # pages of 100 production deployments searched for a version's meta


class VercelSettings(BaseModel):
    """A Vercel target's settings in rollout.yaml; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(min_length=1)  # id (prj_…) or name
    team_id: str | None = Field(default=None, min_length=1)
    token_env: str = Field(default="VERCEL_TOKEN", min_length=1)
    base_url: str = Field(default="https://api.vercel.com", pattern=r"^https?://")
    rolling_release: bool = False  # the project has rolling releases configured (Pro/Enterprise)
    version_meta: str = Field(default="githubCommitSha", min_length=1)
    versions: dict[str, str] = Field(default_factory=dict)  # version → deployment id
    poll_interval: float = Field(default=2.0, gt=0)  # seconds between alias-job polls
    rollback_timeout: float = Field(default=300.0, gt=0)  # seconds to await one alias job

    def secret_variables(self) -> tuple[str, ...]:
        return (self.token_env,)


def capabilities_for(settings: VercelSettings) -> frozenset[Op]:
    if settings.rolling_release:
        return frozenset({Op.ROLLBACK, Op.SET_TRAFFIC})
    return frozenset({Op.ROLLBACK})


# --- Vercel's documents, as far as tidegate reads them ------------------------------------


class _Wire(BaseModel):
    # Vercel spells fields in camelCase: `to_deployment_id` reads `toDeploymentId`.
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)


class _Deployment(_Wire):
    id: str
    meta: dict[str, object] = Field(default_factory=dict)


class _AliasRequest(_Wire):
    type: str | None = None  # rollback | promote
    to_deployment_id: str | None = None
    job_status: str | None = None
    requested_at: int | None = None  # epoch ms


class _Project(_Wire):
    id: str
    targets: dict[str, _Deployment | None] = Field(default_factory=dict)
    last_alias_request: _AliasRequest | None = None


class _Stage(_Wire):
    index: int
    is_final_stage: bool = False
    target_percentage: int  # 0..100
    duration: float | None = None  # seconds in the live document (minutes in the project config)


class _Summary(_Wire):
    id: str


class _RollingRelease(_Wire):
    state: str  # ACTIVE | COMPLETE | ABORTED
    current_deployment: _Summary | None = None
    canary_deployment: _Summary | None = None
    stages: list[_Stage] = Field(default_factory=list)
    active_stage: _Stage | None = None
    updated_at: int | None = None  # epoch ms
    current_canary_percentage: int | None = None


class _RollingReleaseBody(_Wire):
    rolling_release: _RollingRelease | None = None


class _DeploymentList(_Wire):
    deployments: list[_Deployment] = Field(default_factory=list)
    pagination: dict[str, int | None] = Field(default_factory=dict)


WireT = TypeVar("WireT", bound=_Wire)


@dataclass(frozen=True)
class Stage:
    index: int
    percentage: int
    final: bool
    duration: float | None  # seconds


@dataclass(frozen=True)
class RollingRelease:
    """A rolling release as tidegate reads it; timestamps in epoch seconds."""

    state: str
    current: str | None  # the deployment that serves the rest (the stable one)
    canary: str | None
    percentage: int
    active: Stage | None
    stages: tuple[Stage, ...]
    updated_at: float | None

    @property
    def in_progress(self) -> bool:
        return self.state == "ACTIVE" and self.canary is not None

    def describe(self, now: float) -> str:
        shares = "/".join(str(s.percentage) for s in self.stages)
        text = f"rolling release {self.state} at {self.percentage}% (stages {shares})"
        remaining = advances_in(self, now)
        return text + (f", next stage in {_duration(remaining)}" if remaining is not None else "")


@dataclass(frozen=True)
class AliasJob:
    kind: str | None
    to: str | None
    status: str | None
    requested_at: float | None  # epoch seconds

    def in_flight(self, now: float) -> bool:
        if self.status in IN_FLIGHT:
            return True
        recent = self.requested_at is not None and now - self.requested_at < STALE_ALIAS_REQUEST
        return self.status is None and recent


def advances_in(release: RollingRelease, now: float) -> float | None:
    """Seconds until the active stage's own duration is over (an automatic advance), if it has one."""
    stage = release.active
    if not release.in_progress or stage is None or stage.duration is None or release.updated_at is None:
        return None
    return max(0.0, release.updated_at + stage.duration - now)


def stage_for(stages: tuple[Stage, ...], percentage: int) -> Stage | None:
    """The furthest stage whose share does not exceed `percentage`: never more exposure than asked."""
    fitting = [s for s in stages if s.percentage <= percentage]
    return max(fitting, key=lambda s: s.index, default=None)


class Vercel:
    """A Vercel project's production, implementing the Actuator Protocol."""

    def __init__(
        self,
        name: str,
        settings: VercelSettings,
        http: VendorHttp,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._settings = settings
        self.http = http  # public so tests can read `calls`
        self._sleep = sleep
        self._clock = clock
        self._capabilities = capabilities_for(settings)

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self._capabilities

    def observe(self) -> Observed:
        project = self._project()
        release = self._release(project.id)
        now = self._clock()
        if release is not None and release.in_progress and release.canary is not None:
            version = self._version_of(release.canary, None)
            return Observed(version=version, traffic=release.percentage, detail=release.describe(now))
        production = project.targets.get("production")
        if production is None:
            return Observed(detail=f"{self._label()}: no production deployment")
        traffic = 100 if self._settings.rolling_release else None
        detail = f"production {production.id}" + _job_detail(_alias_job(project), now)
        return Observed(
            version=self._version_of(production.id, production.meta), traffic=traffic, detail=detail
        )

    def apply(self, operation: Operation, key: str) -> Result:
        refusal = self._refusal(operation)
        if refusal:
            return Refused(refusal)
        if operation.op is Op.ROLLBACK:
            assert operation.version is not None  # _refusal checked it
            return self._rollback(operation.version, key)
        assert operation.traffic is not None
        return self._set_traffic(operation.traffic, key)

    # --- rollback ---------------------------------------------------------------------

    def _rollback(self, version: str, key: str) -> Result:
        project = self._project()
        deployment = self._resolve(version, project.id)
        if deployment is None:
            return Refused(
                f"{self._label()}: no production deployment has {self._settings.version_meta}={version!r}"
                " (map it in settings.versions)"
            )
        release = self._release(project.id)
        return self._roll_to(project, deployment, version, key, release)

    def _roll_to(
        self, project: _Project, deployment: str, version: str, key: str, release: RollingRelease | None
    ) -> Result:
        now = self._clock()
        job = _alias_job(project)
        production = project.targets.get("production")
        if job is not None and job.in_flight(now):
            if job.to == deployment:  # requested before a crash or by someone else: await it, once
                return self._await(project.id, deployment, f"rollback to {version} ({deployment})", True)
            raise Transient(f"{self._label()}: another alias job ({job.kind} → {job.to}) is in progress")
        serving = production is not None and production.id == deployment
        if serving and not (release is not None and release.in_progress):
            return AlreadyDone(f"production already serves {version} ({deployment})")
        try:
            self.http.request(
                "POST",
                f"/v1/projects/{_quoted(project.id)}/rollback/{_quoted(deployment)}",
                params=self._params(description=f"tidegate {key}"),
                ok=(200, 201, 202, 204),
            )
        except Precondition:  # 409: an alias job started meanwhile; look again once
            again = self._project()
            job = _alias_job(again)
            if job is not None and job.to == deployment and job.in_flight(self._clock()):
                return self._await(again.id, deployment, f"rollback to {version} ({deployment})", True)
            raise
        log.info("vercel %s: rollback to %s (%s) requested (key %s)", self._name, version, deployment, key)
        return self._await(project.id, deployment, f"rollback to {version} ({deployment})", False)

    def _await(self, project_id: str, deployment: str, what: str, earlier: bool) -> Result:
        deadline = self._clock() + self._settings.rollback_timeout
        while True:
            project = self._project(project_id)
            now = self._clock()
            job = _alias_job(project)
            mine = job if job is not None and job.to == deployment else None
            if mine is not None and mine.status == "failed":
                raise Transient(f"{self._label()}: Vercel's alias job for {what} failed")
            production = project.targets.get("production")
            settled = mine is None or not mine.in_flight(now)
            if settled and production is not None and production.id == deployment:
                if earlier:
                    return AlreadyDone(f"{what} was already requested; it has completed")
                return Applied(f"{what}: alias job {mine.status if mine else 'done'}")
            if mine is not None and settled:
                serving = production.id if production else "nothing"
                raise Precondition(
                    f"{self._label()}: {what} ended {mine.status}, production serves {serving}"
                )
            if now >= deadline:
                waited = _duration(self._settings.rollback_timeout)
                raise Transient(f"{self._label()}: {what} still in progress after {waited}")
            self._sleep(self._settings.poll_interval)

    def _resolve(self, version: str, project_id: str) -> str | None:
        if version in self._settings.versions:
            return self._settings.versions[version]
        if version.startswith("dpl_"):
            return version
        until: int | None = None
        for _ in range(DEPLOYMENT_PAGES):
            query = {"projectId": project_id, "target": "production", "state": "READY", "limit": "100"}
            if until is not None:
                query["until"] = str(until)
            page = self._get("/v6/deployments", _DeploymentList, query)
            for deployment in page.deployments:
                if deployment.meta.get(self._settings.version_meta) == version:
                    return deployment.id
            until = page.pagination.get("next")
            if until is None:
                return None
        return None

    # --- rolling-release stages -------------------------------------------------------

    def _set_traffic(self, percentage: int, key: str) -> Result:
        project = self._project()
        release = self._release(project.id)
        if release is None or not release.in_progress:
            if percentage == 100:
                return AlreadyDone("no rolling release in progress: production serves 100%")
            return Refused(
                f"{self._label()}: no rolling release in progress; Vercel starts one only when a"
                f" production deployment is created, so {percentage}% cannot be set"
            )
        now = self._clock()
        if percentage == release.percentage:
            return AlreadyDone(f"already set_traffic({percentage}%): {release.describe(now)}")
        if percentage == 0:  # what `vercel rolling-release abort` does
            assert release.current is not None
            return self._roll_to(project, release.current, release.current, key, release)
        if percentage < release.percentage:
            return Refused(
                f"{self._label()}: a Vercel rolling release cannot go back from {release.percentage}%"
                f" to {percentage}% (stages only move forward); roll back to abort it"
            )
        stage = stage_for(release.stages, percentage)
        if stage is None or stage.percentage <= release.percentage:
            return AlreadyDone(
                f"no configured stage between {release.percentage}% and {percentage}%:"
                f" {release.describe(now)}"
            )
        self._advance(project.id, release, stage, key)
        asked = "" if stage.percentage == percentage else f" (the furthest stage ≤ {percentage}%)"
        return Applied(f"rolling release at {stage.percentage}%{asked}")

    def _advance(self, project_id: str, release: RollingRelease, stage: Stage, key: str) -> None:
        base = f"/v1/projects/{_quoted(project_id)}/rolling-release"
        canary = {"canaryDeploymentId": release.canary}
        if stage.final:
            self.http.request("POST", base + "/complete", json_body=canary, params=self._params())
        else:
            start = release.active.index if release.active is not None else -1
            for index in range(start + 1, stage.index + 1):  # approve-stage moves one stage at a time
                body = {"nextStageIndex": index, **canary}
                self.http.request("POST", base + "/approve-stage", json_body=body, params=self._params())
        log.info("vercel %s: rolling release moved to %s%% (key %s)", self._name, stage.percentage, key)

    # --- reading ----------------------------------------------------------------------

    def _project(self, project: str | None = None) -> _Project:
        path = f"/v9/projects/{_quoted(project or self._settings.project)}"
        return self._get(path, _Project, {"rollbackInfo": "true"})

    def _release(self, project_id: str) -> RollingRelease | None:
        if not self._settings.rolling_release:
            return None
        body = self._get(f"/v1/projects/{_quoted(project_id)}/rolling-release", _RollingReleaseBody, {})
        return _rolling_release(body.rolling_release) if body.rolling_release is not None else None

    def _version_of(self, deployment: str, meta: Mapping[str, object] | None) -> str:
        for version, deployment_id in self._settings.versions.items():
            if deployment_id == deployment:
                return version
        if meta is None:
            meta = self._get(f"/v13/deployments/{_quoted(deployment)}", _Deployment, {}).meta
        value = meta.get(self._settings.version_meta)
        return value if isinstance(value, str) and value else deployment

    def _get(self, path: str, shape: type[WireT], query: dict[str, str]) -> WireT:
        response = self.http.request("GET", path, params=self._params(**query))
        try:
            return shape.model_validate(response.json())
        except (ValidationError, ValueError) as error:
            raise Permanent(f"{self._label()}: unexpected answer to GET {path}: {_problem(error)}") from None

    def _params(self, **query: str) -> dict[str, str]:
        if self._settings.team_id is not None:
            query["teamId"] = self._settings.team_id
        return query

    def _refusal(self, operation: Operation) -> str:
        if operation.target != self._name:
            return f"operation for target {operation.target!r} sent to {self._name!r}"
        if operation.op not in self._capabilities:
            more = " (set rolling_release: true for stages)" if operation.op is Op.SET_TRAFFIC else ""
            return f"vercel target {self._name!r} cannot {operation.op.value}{more}"
        if operation.op is Op.ROLLBACK and not operation.version:
            return "rollback needs the version to roll back to"
        traffic = operation.traffic
        if operation.op is Op.SET_TRAFFIC and (traffic is None or not 0 <= traffic <= 100):
            return f"set_traffic needs a percentage in 0..100, got {traffic}"
        return ""

    def _label(self) -> str:
        return f"vercel {self._name!r} (project {self._settings.project})"


def _rolling_release(wire: _RollingRelease) -> RollingRelease:
    def stage(s: _Stage) -> Stage:
        return Stage(s.index, s.target_percentage, s.is_final_stage, s.duration)

    active = stage(wire.active_stage) if wire.active_stage is not None else None
    share = wire.current_canary_percentage
    return RollingRelease(
        state=wire.state,
        current=wire.current_deployment.id if wire.current_deployment else None,
        canary=wire.canary_deployment.id if wire.canary_deployment else None,
        percentage=share if share is not None else (active.percentage if active else 0),
        active=active,
        stages=tuple(sorted((stage(s) for s in wire.stages), key=lambda s: s.index)),
        updated_at=wire.updated_at / 1000 if wire.updated_at is not None else None,  # epoch ms
    )


def _alias_job(project: _Project) -> AliasJob | None:
    wire = project.last_alias_request
    if wire is None:
        return None
    requested = wire.requested_at / 1000 if wire.requested_at is not None else None  # epoch ms
    return AliasJob(wire.type, wire.to_deployment_id, wire.job_status, requested)


def _job_detail(job: AliasJob | None, now: float) -> str:
    if job is None or not job.in_flight(now):
        return ""
    return f"; alias job {job.kind} → {job.to} {job.status or 'requested'}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _quoted(part: str) -> str:
    return quote(part, safe="")


def _problem(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problem = error.errors()[0]
        return f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
    return "not JSON"


def _classifier(clock: Callable[[], float]) -> Callable[[httpx.Response, str], ActuatorError | None]:
    def classify(response: httpx.Response, text: str) -> ActuatorError | None:
        if response.status_code != 429 or retry_after(response, clock()) is not None:
            return None
        # No reset header: the body's `limit.resetMs` says when (epoch MILLISECONDS).
        try:
            limit = response.json()["error"]["limit"]
            return RateLimited(text, max(0.0, float(limit["resetMs"]) / 1000 - clock()))
        except (ValueError, KeyError, TypeError):
            return None

    return classify


def build(
    name: str,
    settings: VercelSettings,
    context: BuildContext,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Vercel:
    """The actuator for target `name`: the token from `context.env`, the shared HTTP client."""
    token = secret(context.env, settings.token_env, name)
    http = VendorHttp(
        context.client(),
        vendor=f"vercel {name!r}",
        base_url=settings.base_url,
        headers={"Authorization": f"Bearer {token}"},
        secrets=[token],
        classify=_classifier(clock),
        sleep=sleep,
        clock=clock,
    )
    return Vercel(name, settings, http, sleep=sleep, clock=clock)
