"""An Argo CD API server fake on loopback: applications, merge patch, rollback, operations.

Reproduces what reference/apis.md §1 documents (and the actuator relies on):
- `GET /api/v1/applications/{name}` (`project`/`projects`, `appNamespace` query) → the
  `v1alpha1Application`: `spec.syncPolicy.automated`, `status.sync`, `status.health`,
  `status.history[]` (oldest first, ids increasing and never reused, truncated to
  `revisionHistoryLimit` = 10), `operation` and `status.operationState`.
- `PATCH` the same path, body `{name, patch, patchType: "merge", project, appNamespace}`: an RFC
  7386 merge into the app, of which only `spec` is kept (as the server's updateApp does).
  `honours_enabled=False` plays an Argo CD that predates `automated.enabled`: it drops the field.
- `POST /api/v1/applications/{name}/rollback` `{name, id, dryRun, prune, project, appNamespace}`,
  checked in the server's order: auto-sync on → 412 `rollback cannot be initiated when
  auto-sync is enabled`; unknown id → 400 `application <ns>/<name> does not have deployment
  with id <id>`; an operation set → 412 `another operation is already in progress`. Then the
  sync operation is set and the app returned.
- Operations advance by polls, like the controller picking them up: for `queued_polls` GETs
  the old `operationState` is still there (finished, from the previous sync), then `Running`
  for `running_polls` GETs, then `outcome` (Succeeded appends a history entry with the next
  id; Failed/Error do not) and `operation` is cleared. `start_sync()` puts a sync in flight
  (an auto-sync of git HEAD, say); enabling auto-sync while live ≠ git starts one, too.
- Auth: `Authorization: Bearer <token>` or the `argocd.token` cookie (split into
  `argocd.token`, `argocd.token-1`, … chunks, joined); missing/unknown → 401 code 16. A token
  in `readers` may GET but not change anything → 403 `permission denied`.
- An unknown app: 403 `permission denied` without a project (not to leak existence), 404 with
  one; a project the app is not in → 404 too.
- `parent_reenables` plays an app-of-apps whose parent re-applies `automated.enabled: true`
  right after someone switches it off (argo-cd#5351).
Errors are grpc-gateway v1 bodies `{error, code, message, details}`. `inject()` (FakeVendor)
adds 429/5xx/resets. Every exchange is kept in `exchanges` for the spec checks.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import FakeVendor, Reply, Request

GRPC_HTTP = {3: 400, 5: 404, 7: 403, 9: 412, 16: 401}
REPO = "https://git.example.com/shop/deploy.git"


def grpc_error(code: int, message: str) -> Reply:
    return Reply(GRPC_HTTP[code], {"error": message, "code": code, "message": message, "details": []})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class _Flight:
    revision: str
    polls: int = 0
    automated: bool = False


class FakeArgoCD(FakeVendor):
    def __init__(
        self,
        tokens: Iterable[str] = ("argocd-token-0123456789",),
        *,
        readers: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.tokens = set(tokens)
        self.readers = set(readers)
        self.clock = clock
        self.apps: dict[str, dict[str, Any]] = {}
        self.git: dict[str, str] = {}  # app → the revision its targetRevision resolves to (HEAD)
        self.flights: dict[str, _Flight] = {}
        self.queued_polls = 1
        self.running_polls = 2
        self.outcome = "Succeeded"  # how the next operations end: Succeeded | Failed | Error
        self.honours_enabled = True
        self.parent_reenables = False
        self.exchanges: list[tuple[Request, Reply]] = []
        app = r"/api/v1/applications/(?P<name>[^/]+)"
        self.route("GET", app, self.get_app)
        self.route("PATCH", app, self.patch_app)
        self.route("POST", app + "/rollback", self.rollback)

    # --- test set-up and inspection -------------------------------------------------

    def add_app(
        self,
        name: str,
        history: Iterable[str],
        *,
        project: str = "default",
        first_id: int = 3,
        auto_sync: bool | None = True,
        git: str | None = None,
        namespace: str = "argocd",
        pinned: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """An app whose history holds `history` (oldest first); git HEAD is `git` (default: the last).

        `pinned` maps a revision to the `source.targetRevision` (a tag) it was deployed from.
        """
        tags = dict(pinned or {})
        revisions = list(history)
        automated = None if auto_sync is None else {"prune": True, "selfHeal": True, "enabled": auto_sync}
        self.git[name] = git or revisions[-1]
        self.apps[name] = {
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "spec": {
                "project": project,
                "source": {"repoURL": REPO, "path": f"apps/{name}", "targetRevision": "main"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
                "syncPolicy": {"automated": automated} if automated else {},
            },
            "status": {
                "sync": {"status": "Synced", "revision": self.git[name]},
                "health": {"status": "Healthy"},
                "history": [
                    self._history_entry(name, first_id + i, r, tags.get(r, "main"))
                    for i, r in enumerate(revisions)
                ],
                "operationState": self._finished_state(revisions[-1], "Succeeded", automated=True),
            },
        }
        self._resync_status(name)
        return self.apps[name]

    def start_sync(self, name: str, revision: str | None = None, *, automated: bool = True) -> None:
        """A sync is requested (by auto-sync or a human) and will run like any operation."""
        revision = revision or self.git[name]
        self.apps[name]["operation"] = self._operation(revision, automated)
        self.flights[name] = _Flight(revision, automated=automated)

    def app(self, name: str) -> dict[str, Any]:
        return self.apps[name]

    def history_ids(self, name: str) -> list[int]:
        return [entry["id"] for entry in self.apps[name]["status"]["history"]]

    def rollbacks(self) -> list[Request]:
        return [r for r, reply in self.exchanges if r.path.endswith("/rollback") and reply.status == 200]

    def patches(self) -> list[dict[str, Any]]:
        return [json.loads(r.json()["patch"]) for r, reply in self.exchanges if r.method == "PATCH"]

    # --- serving ---------------------------------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        token = self._token(request)
        refusal = None
        if not token:
            refusal = grpc_error(16, "no session information")
        elif token not in self.tokens | self.readers:
            refusal = grpc_error(16, "invalid session: token signature is invalid")
        if refusal is not None:
            with self._lock:
                self.exchanges.append((request, refusal))
        return refusal

    def _dispatch(self, request: Request) -> Reply:
        reply = super()._dispatch(request)
        with self._lock:
            self.exchanges.append((request, reply))
        return reply

    def get_app(self, request: Request) -> Reply:
        name = request.params["name"]
        found = self._find(
            request, name, _first(request.query, "project") or _first(request.query, "projects")
        )
        if isinstance(found, Reply):
            return found
        self._advance(name)
        return Reply(200, copy.deepcopy(self.apps[name]))

    def patch_app(self, request: Request) -> Reply:
        body, name = request.json(), request.params["name"]
        found = self._find(request, name, body.get("project"), change=True)
        if isinstance(found, Reply):
            return found
        if body.get("patchType") != "merge":
            return grpc_error(3, f"Patch type '{body.get('patchType')}' is not supported by this fake")
        try:
            patched = merge_patch(found, json.loads(body["patch"]))
        except (KeyError, json.JSONDecodeError) as error:
            return grpc_error(3, f"error unmarshaling patch: {error}")
        automated = patched["spec"].get("syncPolicy", {}).get("automated")
        if isinstance(automated, dict) and not self.honours_enabled:
            automated.pop("enabled", None)
        was_on = _auto_sync_on(found)
        found["spec"] = patched["spec"]
        found["metadata"]["resourceVersion"] = str(int(found["metadata"]["resourceVersion"]) + 1)
        answer = copy.deepcopy(found)
        if self.parent_reenables and was_on and not _auto_sync_on(found):
            found["spec"]["syncPolicy"]["automated"] = {"prune": True, "selfHeal": True, "enabled": True}
        elif _auto_sync_on(found) and not was_on:
            self._auto_sync(name)
        return Reply(200, answer)

    def rollback(self, request: Request) -> Reply:
        body, name = request.json(), request.params["name"]
        found = self._find(request, name, body.get("project"), change=True)
        if isinstance(found, Reply):
            return found
        if _auto_sync_on(found):
            return grpc_error(9, "rollback cannot be initiated when auto-sync is enabled")
        entries = [e for e in found["status"]["history"] if e["id"] == int(body.get("id", 0))]
        if not entries:
            where = f"{found['metadata']['namespace']}/{name}"
            return grpc_error(3, f"application {where} does not have deployment with id {body.get('id', 0)}")
        if found.get("operation") is not None:
            return grpc_error(9, "another operation is already in progress")
        found["operation"] = self._operation(entries[0]["revision"], automated=False)
        found["operation"]["sync"]["source"] = copy.deepcopy(entries[0]["source"])
        self.flights[name] = _Flight(entries[0]["revision"])
        return Reply(200, copy.deepcopy(found))

    # --- the application controller ---------------------------------------------------

    def _advance(self, name: str) -> None:
        flight = self.flights.get(name)
        if flight is None:
            return
        app, flight.polls = self.apps[name], flight.polls + 1
        if flight.polls <= self.queued_polls:
            return
        if flight.polls <= self.queued_polls + self.running_polls:
            app["status"]["operationState"] = {
                "operation": copy.deepcopy(app["operation"]),
                "phase": "Running",
                "message": "one or more tasks are running",
                "startedAt": self._now(),
            }
            return
        del self.flights[name]
        state = self._finished_state(flight.revision, self.outcome, automated=flight.automated)
        state["operation"] = copy.deepcopy(app.pop("operation"))
        app["status"]["operationState"] = state
        if self.outcome == "Succeeded":
            history = app["status"]["history"]
            next_id = history[-1]["id"] + 1 if history else 0
            entry = self._history_entry(name, next_id, flight.revision)
            if "source" in state["operation"]["sync"]:  # a rollback records the source it went back to
                entry["source"] = copy.deepcopy(state["operation"]["sync"]["source"])
            history.append(entry)
            del history[: max(0, len(history) - app["spec"].get("revisionHistoryLimit", 10))]
        self._resync_status(name)

    def _auto_sync(self, name: str) -> None:
        """Auto-sync just came on: Argo CD syncs to git HEAD at once when live differs (#9570)."""
        history = self.apps[name]["status"]["history"]
        live = history[-1]["revision"] if history else ""
        if live != self.git[name] and name not in self.flights:
            self.start_sync(name, self.git[name], automated=True)

    def _resync_status(self, name: str) -> None:
        app = self.apps[name]
        history = app["status"]["history"]
        live = history[-1]["revision"] if history else ""
        app["status"]["sync"] = {
            "status": "Synced" if live == self.git[name] else "OutOfSync",
            "revision": self.git[name],
            "comparedTo": {"source": copy.deepcopy(app["spec"]["source"])},
        }

    # --- helpers -----------------------------------------------------------------------

    def _find(self, request: Request, name: str, project: str | None, change: bool = False) -> Any:
        app = self.apps.get(name)
        if app is None or (project and app["spec"]["project"] != project):
            if not project:
                return grpc_error(7, "permission denied")
            return grpc_error(5, f'applications.argoproj.io "{name}" not found')
        if change and self._token(request) in self.readers:
            return grpc_error(7, f"permission denied: applications, sync, {app['spec']['project']}/{name}")
        return app

    def _token(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ").strip()
        cookies = dict(
            part.strip().split("=", 1) for part in request.headers.get("cookie", "").split(";") if "=" in part
        )
        chunks, index = [cookies.get("argocd.token", "")], 1
        while f"argocd.token-{index}" in cookies:
            chunks.append(cookies[f"argocd.token-{index}"])
            index += 1
        return "".join(chunks)

    def _history_entry(self, name: str, entry_id: int, revision: str, tag: str = "main") -> dict[str, Any]:
        return {
            "id": entry_id,
            "revision": revision,
            "deployStartedAt": self._now(),
            "deployedAt": self._now(),
            "source": {"repoURL": REPO, "path": f"apps/{name}", "targetRevision": tag},
            "initiatedBy": {"automated": True},
        }

    def _operation(self, revision: str, automated: bool) -> dict[str, Any]:
        initiator = {"automated": True} if automated else {"username": "tidegate"}
        return {
            "sync": {"revision": revision, "prune": False, "syncStrategy": {"apply": {}}},
            "initiatedBy": initiator,
        }

    def _finished_state(self, revision: str, phase: str, *, automated: bool) -> dict[str, Any]:
        message = (
            "successfully synced (all tasks run)" if phase == "Succeeded" else "one or more objects failed"
        )
        return {
            "operation": self._operation(revision, automated),
            "phase": phase,
            "message": message,
            "startedAt": self._now(),
            "finishedAt": self._now(),
            "syncResult": {"revision": revision} if phase == "Succeeded" else {},
        }

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))


def _auto_sync_on(app: dict[str, Any]) -> bool:
    automated = app["spec"].get("syncPolicy", {}).get("automated")
    return isinstance(automated, dict) and automated.get("enabled") is not False


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
