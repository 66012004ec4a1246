"""A Vercel REST API fake on loopback: projects, deployments, instant rollback, rolling releases.

Reproduces what reference/apis.md §3 documents and the actuator relies on:
- Auth `Authorization: Bearer <token>`; a missing or wrong token answers **403** `forbidden`
  (Vercel's answer, not 401). Team projects need `?teamId=`; a project asked for without it (or
  with another team) answers **404** `not_found`, as a project outside the token's scope does.
- Errors `{"error": {"code", "message"}}`; `rate_limited()` builds the 429 (`X-RateLimit-*`
  with the reset in epoch **seconds**, body `limit.reset` / `limit.resetMs` in s / **ms**).
- `GET /v9/projects/{idOrName}` → `targets.production`, `lastAliasRequest`, `lastRollbackTarget`.
- `GET /v6|v7/deployments` (projectId, target, state, limit, until; newest first, pagination.next
  = the last item's `created` in ms) and `GET /v13/deployments/{id}`.
- `POST /v1|v9/projects/{id}/rollback/{deploymentId}` → 201, no body; an *asynchronous* alias job:
  `lastAliasRequest.jobStatus` goes pending → in-progress → succeeded (or `failed`, injected
  with `fail_alias_jobs`) over `alias_job_polls` reads of the project. 409 while a job runs or
  when the deployment already serves production; 400 for a deployment that never served it;
  `rollback_faults` answers the next rollback requests only (the generic `inject` takes any).
  A rollback to a rolling release's current deployment aborts the release (what the CLI's
  `rolling-release abort` does).
- Rolling releases: `GET /v1/projects/{id}/rolling-release`, `POST …/approve-stage`
  (`nextStageIndex` must be the next stage), `POST …/complete`, `GET …/config`. The config's
  stage `duration` is **minutes**, the live document's **seconds**; "automatic" releases advance
  on the injected clock when a stage's duration is over.
Every timestamp is epoch **milliseconds**.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from tests.fakes.server import FakeVendor, Reply, Request

Json = dict[str, Any]


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers or {})


class FakeVercel(FakeVendor):
    def __init__(
        self,
        token: str = "vercel-test-token",
        *,
        clock: Callable[[], float] = time.time,
        alias_job_polls: int = 2,
    ) -> None:
        super().__init__()
        self.token = token
        self.clock = clock
        self.alias_job_polls = alias_job_polls  # project reads until an alias job ends
        self.fail_alias_jobs = 0  # the next N alias jobs end "failed"
        self.projects: dict[str, Json] = {}
        self.deployments: dict[str, Json] = {}
        self.rollbacks: list[str] = []  # deployment ids of accepted rollback requests, in order
        self.rollback_faults: deque[Reply] = deque()  # answers for the next rollback requests only
        self._ids = itertools.count(1)
        self._alias_job_polls = alias_job_polls
        project = r"/v(?:1|9)/projects/(?P<project>[^/]+)"
        self.route("GET", r"/v9/projects/(?P<project>[^/]+)", self.get_project)
        self.route("GET", r"/v(?:6|7)/deployments", self.list_deployments)
        self.route("GET", r"/v13/deployments/(?P<deployment>[^/]+)", self.get_deployment)
        self.route("POST", project + r"/rollback/(?P<deployment>[^/]+)", self.rollback)
        release = r"/v1/projects/(?P<project>[^/]+)/rolling-release"
        self.route("GET", release, self.get_release)
        self.route("POST", release + "/approve-stage", self.approve_stage)
        self.route("POST", release + "/complete", self.complete)
        self.route("GET", release + "/config", self.get_release_config)

    # --- test set-up and inspection -----------------------------------------------------

    def reset(self, clock: Callable[[], float]) -> None:
        """Forget everything (one server serves a whole test module: starting one costs time)."""
        with self._lock:
            self.clock = clock
            self.alias_job_polls = self._alias_job_polls
            self.fail_alias_jobs = 0
            self.projects.clear()
            self.deployments.clear()
            self.rollbacks.clear()
            self.rollback_faults.clear()
            self.requests.clear()
            self._faults.clear()
            self._ids = itertools.count(1)

    def add_project(self, name: str, *, team_id: str | None = None) -> str:
        project_id = f"prj_{name}{next(self._ids)}"
        self.projects[project_id] = {
            "id": project_id,
            "name": name,
            "accountId": team_id or "user_1",
            "createdAt": self._ms(),
            "updatedAt": self._ms(),
            "targets": {},
            "lastAliasRequest": None,
            "lastRollbackTarget": None,
            "_team": team_id,
            "_production": None,
            "_config": None,
            "_release": None,
            "_polls": 0,
        }
        return project_id

    def deploy(self, project_id: str, meta: dict[str, str] | None = None) -> str:
        """A READY production deployment: it goes live, or starts a rolling release if configured."""
        project = self.projects[project_id]
        number = next(self._ids)
        deployment_id = f"dpl_{number:06d}"
        now = self._ms() + number  # distinct creation times, newest last
        self.deployments[deployment_id] = {
            "uid": deployment_id,
            "id": deployment_id,
            "name": project["name"],
            "projectId": project_id,
            "url": f"{project['name']}-{number}.vercel.app",
            "created": now,
            "createdAt": now,
            "buildingAt": now,
            "ready": now,
            "state": "READY",
            "readyState": "READY",
            "readySubstate": "STAGED",
            "target": "production",
            "source": "git",
            "meta": dict(meta or {}),
            "isRollbackCandidate": False,
            "aliasAssigned": now,
        }
        config = project["_config"]
        if config is not None and config["enabled"] and project["_production"] is not None:
            self._start_release(project, deployment_id)
        else:
            self._go_live(project, deployment_id)
        return deployment_id

    def configure_rolling_release(
        self,
        project_id: str,
        stages: Sequence[tuple[int, float | None]],
        *,
        advancement: str = "manual-approval",
    ) -> None:
        """Stages as (targetPercentage, duration in MINUTES as the config says); 100 is added last."""
        config_stages = [
            {"targetPercentage": p, "duration": d, "requireApproval": advancement == "manual-approval"}
            for p, d in stages
        ]
        config_stages.append({"targetPercentage": 100})
        self.projects[project_id]["_config"] = {
            "enabled": True,
            "advancementType": advancement,
            "target": "production",
            "stages": config_stages,
        }

    def production(self, project_id: str) -> str | None:
        with self._lock:
            production: str | None = self.projects[project_id]["_production"]
            return production

    def release(self, project_id: str) -> Json | None:
        with self._lock:
            release: Json | None = copy.deepcopy(self.projects[project_id]["_release"])
            return release

    def rate_limited(self, reset_in: float, *, with_headers: bool = True) -> Reply:
        reset = self.clock() + reset_in
        body = {
            "error": {
                "code": "rate_limited",
                "message": "Rate limit exceeded",
                "limit": {"remaining": 0, "reset": int(reset), "resetMs": int(reset * 1000), "total": 100},
            }
        }
        headers = {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset)),
        }
        return Reply(429, body, headers if with_headers else {})

    # --- auth -------------------------------------------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(
                403, {"error": {"code": "forbidden", "message": "Not authorized", "invalidToken": True}}
            )
        return None

    # --- projects and deployments -----------------------------------------------------------

    def get_project(self, request: Request) -> Reply:
        project = self._project(request)
        if project is None:
            return error(404, "not_found", "Project not found")
        self._progress(project)
        self._tick(project)
        return Reply(200, _public(project))

    def list_deployments(self, request: Request) -> Reply:
        wanted = request.query.get("projectId", [None])[0]
        target = request.query.get("target", [None])[0]
        states = set(request.query.get("state", [""])[0].split(",")) - {""}
        until = int(request.query.get("until", ["0"])[0]) or None
        limit = int(request.query.get("limit", ["20"])[0])
        team = request.query.get("teamId", [None])[0]
        found = [
            d
            for d in self.deployments.values()
            if (wanted is None or d["projectId"] == wanted)
            and self.projects[d["projectId"]]["_team"] == team
            and (target is None or d["target"] == target)
            and (not states or d["readyState"] in states)
            and (until is None or d["created"] < until)
        ]
        found.sort(key=lambda d: d["created"], reverse=True)
        page = found[:limit]
        more = len(found) > limit
        pagination = {"count": len(page), "next": page[-1]["created"] if more else None, "prev": None}
        return Reply(200, {"deployments": [_public(d) for d in page], "pagination": pagination})

    def get_deployment(self, request: Request) -> Reply:
        deployment = self.deployments.get(request.params["deployment"])
        team = request.query.get("teamId", [None])[0]
        if deployment is None or self.projects[deployment["projectId"]]["_team"] != team:
            return error(404, "not_found", "Deployment not found")
        return Reply(200, {**_public(deployment), "alias": [deployment["url"]]})

    # --- instant rollback -------------------------------------------------------------------

    def rollback(self, request: Request) -> Reply:
        if self.rollback_faults:
            return self.rollback_faults.popleft()
        project = self._project(request)
        if project is None:
            return error(404, "not_found", "Project not found")
        deployment = self.deployments.get(request.params["deployment"])
        if deployment is None or deployment["projectId"] != project["id"]:
            return error(404, "not_found", "Deployment not found")
        job = project["lastAliasRequest"]
        if job is not None and job["jobStatus"] in ("pending", "in-progress"):
            return error(409, "conflict", "A rollback or promote is already in progress for this project")
        release = project["_release"]
        aborting = release is not None and release["state"] == "ACTIVE"
        if deployment["id"] == project["_production"] and not aborting:
            return error(409, "conflict", "This deployment is already the current production deployment")
        if not deployment["isRollbackCandidate"]:
            return error(400, "bad_request", "The deployment has never served production traffic")
        job = {
            "fromDeploymentId": project["_production"],
            "toDeploymentId": deployment["id"],
            "jobStatus": "pending",
            "requestedAt": self._ms(),
            "type": "rollback",
        }
        project["lastAliasRequest"] = job
        project["lastRollbackTarget"] = dict(job)
        project["_polls"] = 0
        self.rollbacks.append(deployment["id"])
        return Reply(201)

    # --- rolling releases -------------------------------------------------------------------

    def get_release(self, request: Request) -> Reply:
        project = self._project(request)
        if project is None:
            return error(404, "not_found", "Project not found")
        self._tick(project)
        return Reply(200, {"rollingRelease": project["_release"]})

    def get_release_config(self, request: Request) -> Reply:
        project = self._project(request)
        if project is None:
            return error(404, "not_found", "Project not found")
        return Reply(200, {"rollingRelease": project["_config"]})

    def approve_stage(self, request: Request) -> Reply:
        project, release, refusal = self._active_release(request)
        if refusal is not None:
            return refusal
        wanted = request.json().get("nextStageIndex")
        if wanted != release["activeStage"]["index"] + 1:
            return error(400, "bad_request", f"nextStageIndex must be {release['activeStage']['index'] + 1}")
        self._enter_stage(project, release, wanted)
        return Reply(200, {"rollingRelease": release})

    def complete(self, request: Request) -> Reply:
        project, release, refusal = self._active_release(request)
        if refusal is not None:
            return refusal
        self._enter_stage(project, release, len(release["stages"]) - 1)
        return Reply(200, {"rollingRelease": release})

    # --- internals ----------------------------------------------------------------------------

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def _project(self, request: Request) -> Json | None:
        wanted = request.params["project"]
        team = request.query.get("teamId", [None])[0]
        for project in self.projects.values():
            if wanted in (project["id"], project["name"]) and project["_team"] == team:
                return project
        return None

    def _go_live(self, project: Json, deployment_id: str) -> None:
        deployment = self.deployments[deployment_id]
        deployment["readySubstate"] = "PROMOTED"
        deployment["isRollbackCandidate"] = True
        project["_production"] = deployment_id
        project["targets"] = {"production": _summary(deployment)}

    def _progress(self, project: Json) -> None:
        """One read of the project moves its alias job on: pending → in-progress → done."""
        job = project["lastAliasRequest"]
        if job is None or job["jobStatus"] not in ("pending", "in-progress"):
            return
        project["_polls"] += 1
        if project["_polls"] < self.alias_job_polls:
            job["jobStatus"] = "in-progress"
            return
        if self.fail_alias_jobs > 0:
            self.fail_alias_jobs -= 1
            job["jobStatus"] = "failed"
            return
        job["jobStatus"] = "succeeded"
        self._go_live(project, job["toDeploymentId"])
        release = project["_release"]
        if release is not None and release["state"] == "ACTIVE":
            self.deployments[release["canaryDeployment"]["id"]]["readySubstate"] = "STAGED"
            release.update(state="ABORTED", activeStage=None, nextStage=None, updatedAt=self._ms())

    def _start_release(self, project: Json, canary_id: str) -> None:
        config = project["_config"]
        last = len(config["stages"]) - 1
        stages = [
            {
                "index": i,
                "isFinalStage": i == last,
                "targetPercentage": s["targetPercentage"],
                "requireApproval": s.get("requireApproval", False),
                # the config says minutes; the live document says seconds
                "duration": s["duration"] * 60 if s.get("duration") is not None else None,
            }
            for i, s in enumerate(config["stages"])
        ]
        self.deployments[canary_id]["readySubstate"] = "ROLLING"
        current = self.deployments[project["_production"]]
        project["_release"] = {
            "state": "ACTIVE",
            "substate": None,
            "currentDeployment": _summary(current),
            "canaryDeployment": _summary(self.deployments[canary_id]),
            "queuedDeploymentId": None,
            "advancementType": config["advancementType"],
            "stages": stages,
            "activeStage": stages[0],
            "nextStage": stages[1] if last >= 1 else None,
            "startedAt": self._ms(),
            "updatedAt": self._ms(),
            "currentCanaryPercentage": stages[0]["targetPercentage"],
        }

    def _active_release(self, request: Request) -> tuple[Json, Json, Reply | None]:
        project = self._project(request)
        if project is None:
            return {}, {}, error(404, "not_found", "Project not found")
        release = project["_release"]
        if release is None or release["state"] != "ACTIVE":
            return project, {}, error(400, "bad_request", "No active rolling release")
        if request.json().get("canaryDeploymentId") != release["canaryDeployment"]["id"]:
            return project, release, error(400, "bad_request", "canaryDeploymentId is not the canary")
        return project, release, None

    def _enter_stage(self, project: Json, release: Json, index: int) -> None:
        stages = release["stages"]
        stage = stages[index]
        release.update(
            activeStage=stage,
            nextStage=stages[index + 1] if index + 1 < len(stages) else None,
            updatedAt=self._ms(),
            currentCanaryPercentage=stage["targetPercentage"],
        )
        if stage["isFinalStage"]:
            release["state"] = "COMPLETE"
            self._go_live(project, release["canaryDeployment"]["id"])

    def _tick(self, project: Json) -> None:
        """Automatic releases advance when the active stage's duration (SECONDS) is over."""
        release = project["_release"]
        while (
            release is not None
            and release["state"] == "ACTIVE"
            and release["advancementType"] == "automatic"
            and release["activeStage"]["duration"] is not None
            and self._ms() >= release["updatedAt"] + release["activeStage"]["duration"] * 1000
        ):
            ended = release["updatedAt"] + release["activeStage"]["duration"] * 1000
            self._enter_stage(project, release, release["activeStage"]["index"] + 1)
            release["updatedAt"] = int(ended)


def _summary(deployment: Json) -> Json:
    keys = ("id", "url", "name", "meta", "createdAt", "readyState", "readySubstate", "target", "source")
    return {key: copy.deepcopy(deployment[key]) for key in keys}


def _public(document: Json) -> Json:
    return {key: copy.deepcopy(value) for key, value in document.items() if not key.startswith("_")}
