"""An Argo CD Application as a target: rollback to an exact history id, auto-sync as pause.

    targets:
      - name: checkout
        kind: argocd
        settings:
          server: https://argocd.example.com
          application: checkout
          project: payments              # recommended: see "Errors"
          token_env: ARGOCD_TOKEN        # the variable's name; the value is a bearer JWT
          revisions: {"2.3.9": 4f2a9c1e} # rollout version → history revision, where they differ
          wait_timeout: 5m               # how long a rollback may run before "still running"

Capabilities: rollback, pause (= auto-sync off), resume (= auto-sync on); no traffic steps
(that is Argo Rollouts' job, kind `argo-rollouts`).

rollback(to), in this order (reference/apis.md §1):
  1. GET the app. The deployed revision is the newest `status.history` entry (history is
     appended only when a sync succeeds; `status.sync.revision` is what git points at, which
     after a rollback is the bad HEAD). Already that revision and nothing in flight →
     AlreadyDone.
  2. Find the entry to go back to (below). None → Refused, and nothing was touched.
  3. Auto-sync off: Argo CD refuses a rollback while it is on (412, `rollback cannot be
     initiated when auto-sync is enabled`) and the server never switches it off itself. PATCH
     `spec.syncPolicy.automated.enabled=false` as the web UI does — prune/selfHeal are kept for
     whoever re-enables it, and self-heal is part of automated sync, so it stops with it. A
     server that predates `enabled` ignores the field; then `automated` is removed instead.
  4. An operation already in flight (an auto-sync of the bad commit, a human's sync) is waited
     for, up to `wait_timeout`, rather than terminated: once auto-sync is off no new one
     starts, and a half-applied sync is not a state to roll back from. Still running →
     Precondition. If it is a sync to our own revision (a previous attempt of this rollback
     that died before its result was journaled), it is ours: wait, then AlreadyDone.
  5. POST rollback with that exact `id` (never "previous": the server looks the id up), then
     poll until `operation` is cleared and `operationState.phase` is Succeeded, Failed or
     Error. Right after the POST the old, finished operationState is still there, so the
     phase alone would say Succeeded too early. A 412 "another operation is already in
     progress" (one started between our GET and POST) is waited out once and retried.
  6. Succeeded → Applied, saying that auto-sync is now OFF: re-enabling it would re-apply the
     bad revision from git (argo-cd#9570), so that is a human's call once the fix is in git.
     Failed/Error → Permanent with Argo CD's message (and the same auto-sync warning); still
     running at the deadline → Transient: the next attempt finds it in flight (step 4).

Version → history entry. The rollout's `previousVersion` is matched against each entry, the
newest match winning (several entries may hold the same revision; ids are never reused):
  - `revisions[version]` when the setting maps it (a release name → a git SHA), else the
    version itself, equal to the entry's `revision` (git SHA, or the chart version of a Helm
    app — Helm apps usually need no mapping) or to one of its `revisions` (multi-source);
  - a hex abbreviation of 7+ characters matches a full SHA it begins;
  - the version equal to the entry's `source.targetRevision`: an app pinned to a tag
    (`targetRevision: v2.3.9`) records the tag there and the resolved SHA in `revision`.
Not found (history keeps 10 entries by default) → Refused naming the revisions on offer.

pause/resume. Pause switches auto-sync off (as in step 3). Resume switches it back on only
where it is configured and off; an app without `automated` (manual sync) is left as it is —
AlreadyDone for both, since turning on auto-sync nobody configured would change how that
app is deployed (on a server without `automated.enabled`, where step 3 removed `automated`,
a human re-adds it). Resuming after a rollback re-deploys HEAD; the result says so.

Errors (grpc-gateway v1 body `{error, code, message}`): 401 → AuthFailed (never retried);
403 → AuthFailed — without `project` Argo CD answers 403 for an unknown application as well,
so the message says to set it; 404 → Permanent; 412 → Precondition; 429/5xx retried by
adapters.http. The token goes only into the Authorization header and is scrubbed from every
message.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.credentials import secret
from adapters.errors import ActuatorError, AuthFailed, Permanent, Precondition, Transient
from adapters.http import RetryPolicy, VendorHttp
from policies.operations import Op, Operation
from policies.schema import Duration

if TYPE_CHECKING:
    from adapters.actuators.base import Actuator
    from adapters.actuators.registry import BuildContext

log = logging.getLogger(__name__)

CAPABILITIES = frozenset({Op.ROLLBACK, Op.PAUSE, Op.RESUME})
AUTO_SYNC_OFF = "auto-sync is now OFF; re-enable it by hand once the fix is in git"
IN_PROGRESS = "another operation is already in progress"
AUTO_SYNC_REFUSAL = "rollback cannot be initiated when auto-sync is enabled"
_FAILED_PRECONDITION = 9  # gRPC code; grpc-gateway v1 maps it to HTTP 412
_ABBREVIATED_SHA = re.compile(r"^[0-9a-f]{7,39}$")


class ArgoCDSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(pattern=r"^https?://")  # base URL, e.g. https://argocd.example.com
    application: str = Field(min_length=1)
    project: str | None = None
    app_namespace: str | None = None
    token_env: str = "ARGOCD_TOKEN"
    revisions: dict[str, str] = Field(default_factory=dict)
    wait_timeout: Duration = Field(default=300.0, gt=0)
    poll_interval: Duration = Field(default=5.0, gt=0)

    def secret_variables(self) -> tuple[str, ...]:
        return (self.token_env,)


def capabilities_for(settings: ArgoCDSettings) -> frozenset[Op]:
    return CAPABILITIES


def build(name: str, settings: ArgoCDSettings, context: BuildContext) -> Actuator:
    return ArgoCD(name, settings, context.client(), context.env)


class AutoSync(Enum):
    ON = "on"
    OFF = "off"  # `automated` present with enabled: false
    ABSENT = "not configured"  # no `automated`: manual sync


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    revision: str
    revisions: tuple[str, ...]
    target_revision: str  # source.targetRevision when it was deployed: a tag, a chart version, a branch

    def matches(self, version: str, wanted: str) -> bool:
        if wanted in (self.revision, *self.revisions) or version == self.target_revision:
            return True
        return bool(_ABBREVIATED_SHA.match(wanted)) and any(
            len(r) == 40 and r.startswith(wanted) for r in (self.revision, *self.revisions)
        )

    def describe(self) -> str:
        return f"history id {self.id} (revision {self.revision or ','.join(self.revisions)})"


@dataclass(frozen=True)
class AppState:
    auto_sync: AutoSync
    history: tuple[HistoryEntry, ...]  # oldest first, as Argo CD keeps it
    in_flight: str | None  # the revision of a requested or running operation; "" if it names none
    phase: str  # status.operationState.phase of the latest operation, "" if none
    message: str
    git_revision: str  # status.sync.revision: what spec.source.targetRevision resolves to

    @property
    def head(self) -> HistoryEntry | None:
        return self.history[-1] if self.history else None


def parse_app(body: Any) -> AppState:
    spec, status = _dict(_dict(body).get("spec")), _dict(_dict(body).get("status"))
    automated = _dict(spec.get("syncPolicy")).get("automated")
    if not isinstance(automated, dict):
        auto_sync = AutoSync.ABSENT
    else:
        auto_sync = AutoSync.OFF if automated.get("enabled") is False else AutoSync.ON
    state = _dict(status.get("operationState"))
    requested = _dict(body).get("operation")
    running = state.get("phase") in ("Running", "Terminating")
    in_flight = None
    if isinstance(requested, dict) or running:
        sync = _dict(_dict(requested if isinstance(requested, dict) else state.get("operation")).get("sync"))
        in_flight = str(sync.get("revision") or "")
    return AppState(
        auto_sync=auto_sync,
        history=tuple(_entry(item) for item in status.get("history") or () if isinstance(item, dict)),
        in_flight=in_flight,
        phase=str(state.get("phase") or ""),
        message=str(state.get("message") or ""),
        git_revision=str(_dict(status.get("sync")).get("revision") or ""),
    )


def _entry(item: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        id=int(item.get("id") or 0),
        revision=str(item.get("revision") or ""),
        revisions=tuple(str(r) for r in item.get("revisions") or ()),
        target_revision=str(_dict(item.get("source")).get("targetRevision") or ""),
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _OperationInProgress(Precondition):
    pass


class _AutoSyncOn(Precondition):
    pass


class ArgoCD:
    """The Actuator for one Argo CD Application; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: ArgoCDSettings,
        client: httpx.Client,
        env: Mapping[str, str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._name = name
        self._settings = settings
        self._client = client
        self._env = env
        self._sleep = sleep
        self._clock = clock
        self._retry = retry
        self._path = f"/api/v1/applications/{settings.application}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return CAPABILITIES

    def observe(self) -> Observed:
        app = self._fetch(self._http())
        head = app.head
        mapped = {revision: version for version, revision in self._settings.revisions.items()}
        version = None if head is None else mapped.get(head.revision, head.revision or None)
        flight = f", operation in flight to {app.in_flight or 'HEAD'}" if app.in_flight is not None else ""
        where = head.describe() if head else "no history"
        return Observed(
            version=version,
            paused=app.auto_sync is not AutoSync.ON,
            detail=f"{where}; auto-sync {app.auto_sync.value}; git at {app.git_revision or '?'}{flight}",
        )

    def apply(self, operation: Operation, key: str) -> Result:
        if operation.target != self._name:
            return Refused(f"operation for target {operation.target!r} sent to {self._name!r}")
        if operation.op not in CAPABILITIES:
            return Refused(f"Argo CD application {self._settings.application} cannot {operation.op.value}")
        http = self._http()
        log.info("argocd %s: %s (key %s)", self._name, operation.describe(), key)
        if operation.op is Op.PAUSE:
            return self._pause(http)
        if operation.op is Op.RESUME:
            return self._resume(http)
        if not operation.version:
            return Refused("rollback needs the version to roll back to")
        return self._rollback(http, operation.version)

    # --- rollback --------------------------------------------------------------------

    def _rollback(self, http: VendorHttp, version: str) -> Result:
        wanted = self._settings.revisions.get(version, version)
        app = self._fetch(http)
        ours = app.in_flight is not None and _same_revision(app.in_flight, wanted)
        if app.in_flight is None and app.head is not None and app.head.matches(version, wanted):
            return AlreadyDone(f"already at {app.head.describe()}; {_auto_sync_note(app.auto_sync)}")
        if not ours and self._target(app, version, wanted) is None:
            return Refused(self._not_in_history(app, version, wanted))
        app = self._auto_sync_off(http, app)
        if app.in_flight is not None:  # ours: keep waiting on the next attempt; theirs: a human decides
            app = self._await(http, theirs=not ours)
            if app.head is not None and app.head.matches(version, wanted):
                how = "a rollback already in flight" if ours else "an operation already in flight"
                return AlreadyDone(f"{how} finished at {app.head.describe()}; {AUTO_SYNC_OFF}")
        target = self._target(app, version, wanted)
        if target is None:
            return Refused(self._not_in_history(app, version, wanted))
        self._start(http, target)
        final = self._await(http, theirs=False)
        if final.phase == "Succeeded" and final.head is not None and final.head.matches(version, wanted):
            return Applied(f"rolled back to {target.describe()}; {AUTO_SYNC_OFF}")
        raise Permanent(
            f"argocd {self._name}: rollback to {target.describe()} ended {final.phase or 'unknown'}"
            f"{': ' + final.message if final.message else ''}; {AUTO_SYNC_OFF}"
        )

    def _target(self, app: AppState, version: str, wanted: str) -> HistoryEntry | None:
        matching = [entry for entry in app.history if entry.matches(version, wanted)]
        return max(matching, key=lambda entry: entry.id) if matching else None

    def _not_in_history(self, app: AppState, version: str, wanted: str) -> str:
        asked = version if wanted == version else f"{version} (revision {wanted})"
        offer = ", ".join(f"{e.id}: {e.revision or ','.join(e.revisions)}" for e in app.history) or "none"
        return (
            f"Argo CD application {self._settings.application} has no history entry for {asked}; "
            f"history holds {offer}. Map the version with settings.revisions, or roll back by hand"
        )

    def _start(self, http: VendorHttp, target: HistoryEntry) -> None:
        body: dict[str, Any] = {"name": self._settings.application, "id": target.id, "prune": False}
        body |= self._scope_body()
        for attempt in (1, 2):
            try:
                http.request("POST", f"{self._path}/rollback", json_body=body)
                log.info("argocd %s: rollback to %s started", self._name, target.describe())
                return
            except _OperationInProgress:
                if attempt == 2:
                    raise
                self._await(http, theirs=True)
            except _AutoSyncOn as refused:
                raise Precondition(
                    f"{refused}: auto-sync was switched back on after tidegate switched it off — is the"
                    " Application managed by a parent app with auto-sync (app-of-apps, argo-cd#5351)?"
                    " Switch auto-sync off there, then retry"
                ) from None

    def _await(self, http: VendorHttp, *, theirs: bool) -> AppState:
        """Poll until no operation is requested or running; the app as it then is.

        Past `wait_timeout`, someone else's operation is a Precondition (a human decides whether
        to terminate it); our own rollback is Transient: the next attempt finds it and waits on.
        """
        deadline = self._clock() + self._settings.wait_timeout
        while True:
            app = self._fetch(http)
            if app.in_flight is None:  # `operation` cleared and the phase no longer Running
                return app
            if self._clock() >= deadline:
                what = f"sync to {app.in_flight or 'HEAD'}, phase {app.phase or 'pending'}"
                waited = f"after {self._settings.wait_timeout:g}s"
                if theirs:
                    raise Precondition(
                        f"argocd {self._name}: {IN_PROGRESS} ({what}) {waited}; let it finish or terminate"
                        f" it (DELETE {self._path}/operation), then retry"
                    )
                raise Transient(f"argocd {self._name}: rollback still running ({what}) {waited}")
            self._sleep(self._settings.poll_interval)

    # --- auto-sync -------------------------------------------------------------------

    def _auto_sync_off(self, http: VendorHttp, app: AppState) -> AppState:
        if app.auto_sync is not AutoSync.ON:
            return app
        app = self._patch(http, {"spec": {"syncPolicy": {"automated": {"enabled": False}}}})
        if app.auto_sync is AutoSync.ON:  # an Argo CD that predates `automated.enabled` dropped it
            log.warning("argocd %s: server ignores automated.enabled; removing automated", self._name)
            app = self._patch(http, {"spec": {"syncPolicy": {"automated": None}}})
        if app.auto_sync is AutoSync.ON:
            raise Precondition(f"argocd {self._name}: auto-sync is still on after switching it off")
        log.info("argocd %s: auto-sync switched off", self._name)
        return app

    def _pause(self, http: VendorHttp) -> Result:
        app = self._fetch(http)
        if app.auto_sync is not AutoSync.ON:
            return AlreadyDone(_auto_sync_note(app.auto_sync))
        self._auto_sync_off(http, app)
        return Applied("auto-sync is now OFF: Argo CD applies no new commit until it is switched back on")

    def _resume(self, http: VendorHttp) -> Result:
        app = self._fetch(http)
        if app.auto_sync is not AutoSync.OFF:
            return AlreadyDone(_auto_sync_note(app.auto_sync))
        app = self._patch(http, {"spec": {"syncPolicy": {"automated": {"enabled": True}}}})
        if app.auto_sync is not AutoSync.ON:
            raise Permanent(
                f"argocd {self._name}: auto-sync is still {app.auto_sync.value} after enabling it"
            )
        return Applied(
            f"auto-sync is ON again: Argo CD now syncs to git ({app.git_revision or 'HEAD'}); if that is"
            " still the bad release, this undoes a rollback"
        )

    # --- HTTP ------------------------------------------------------------------------

    def _fetch(self, http: VendorHttp) -> AppState:
        params = {"project": self._settings.project} if self._settings.project else {}
        if self._settings.app_namespace:
            params["appNamespace"] = self._settings.app_namespace
        return parse_app(_json(http.request("GET", self._path, params=params), self._name))

    def _patch(self, http: VendorHttp, patch: dict[str, Any]) -> AppState:
        body = {"name": self._settings.application, "patch": json.dumps(patch), "patchType": "merge"}
        response = http.request("PATCH", self._path, json_body=body | self._scope_body())
        return parse_app(_json(response, self._name))

    def _scope_body(self) -> dict[str, str]:
        scope = {"project": self._settings.project, "appNamespace": self._settings.app_namespace}
        return {key: value for key, value in scope.items() if value}

    def _http(self) -> VendorHttp:
        token = secret(self._env, self._settings.token_env, self._name)
        return VendorHttp(
            self._client,
            vendor=f"argocd {self._name}",
            base_url=self._settings.server,
            headers={"Authorization": f"Bearer {token}"},
            secrets=[token],
            retry=self._retry,
            classify=self._classify,
            sleep=self._sleep,
        )

    def _classify(self, response: httpx.Response, text: str) -> ActuatorError | None:
        try:
            body = _dict(response.json())
        except ValueError:
            body = {}
        said = f"{body.get('message') or ''} {body.get('error') or ''}"
        if response.status_code == 412 or body.get("code") == _FAILED_PRECONDITION:
            if IN_PROGRESS in said:
                return _OperationInProgress(text)
            if AUTO_SYNC_REFUSAL in said:
                return _AutoSyncOn(text)
            return Precondition(text)
        if response.status_code == 403 and not self._settings.project:
            return AuthFailed(
                f"{text} (without settings.project Argo CD answers 403 for an application that does"
                " not exist, too: set project to tell a missing app from a missing permission)"
            )
        return None


def _same_revision(in_flight: str, wanted: str) -> bool:
    if in_flight == wanted:
        return True
    return bool(_ABBREVIATED_SHA.match(wanted)) and len(in_flight) == 40 and in_flight.startswith(wanted)


def _auto_sync_note(auto_sync: AutoSync) -> str:
    if auto_sync is AutoSync.ON:
        return "auto-sync is ON: Argo CD keeps this revision only while git points at it"
    if auto_sync is AutoSync.OFF:
        return AUTO_SYNC_OFF
    return "auto-sync is not configured (manual sync): Argo CD applies nothing on its own"


def _json(response: httpx.Response, name: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise Transient(f"argocd {name}: answer was not JSON (status {response.status_code})") from None
