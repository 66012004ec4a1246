"""A Kubernetes API server fake holding Argo Rollouts `Rollout` resources, with a tiny controller.

Reproduces what reference/apis.md §2 documents (and the actuator relies on):
- `GET /apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}[/status]` → the Rollout
  (Kubernetes JSON: `metadata.resourceVersion`/`generation`, `spec.paused`,
  `spec.strategy.canary.steps`, `status.{phase, message, abort, abortedAt, pauseConditions,
  controllerPause, currentStepIndex, currentPodHash, stableRS, promoteFull, canary.weights}`).
- `PATCH` the same paths with `Content-Type: application/merge-patch+json` (RFC 7386); any
  other content type → 415. With the status subresource on (the default, as Argo Rollouts'
  CRD has it) a main-resource patch drops `status` and a `/status` patch keeps only
  `status`; `status_subresource=False` makes `/status` a 404 and the main resource take all.
- The controller (`reconcile()`, run after every accepted patch unless `auto_reconcile` is
  off) walks the canary steps: `setWeight` sets the canary weight and moves on, a `pause`
  step adds a `CanaryPauseStep` pause condition (and `controllerPause`), and a cleared pause
  condition with `controllerPause` still true means a human promoted: move past it. The last
  step done → fully promoted (`stableRS = currentPodHash`, Healthy). `spec.paused` → Paused.
  `status.abort` → all traffic to stable, Degraded, `abortedAt`. `promoteFull` → the end.
- Auth: `Authorization: Bearer <token>`; missing/unknown → 401 `Unauthorized`; a token in
  `readers` may GET but PATCH → 403 with the RBAC message. Unknown rollout → 404. Errors are
  Kubernetes `Status` objects. `inject()` (FakeVendor) adds 429/5xx/resets.
Every exchange is kept in `exchanges` for the spec checks.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tests.fakes.argocd import merge_patch
from tests.fakes.server import FakeVendor, Reply, Request

MERGE_PATCH = "application/merge-patch+json"
STABLE, CANARY = "6d4f8b7c9", "7b9c5d6f8"  # pod-template hashes of the old and the new ReplicaSet
STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {"duration": "10m"}},
    {"setWeight": 100},
]


def status_error(code: int, reason: str, message: str) -> Reply:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    return Reply(code, body | {"message": message, "reason": reason, "code": code})


class FakeArgoRollouts(FakeVendor):
    def __init__(
        self,
        tokens: Iterable[str] = ("k8s-token-0123456789",),
        *,
        readers: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.tokens = set(tokens)
        self.readers = set(readers)
        self.clock = clock
        self.rollouts: dict[tuple[str, str], dict[str, Any]] = {}
        self.status_subresource = True
        self.auto_reconcile = True
        self.exchanges: list[tuple[Request, Reply]] = []
        path = r"/apis/argoproj\.io/v1alpha1/namespaces/(?P<ns>[^/]+)/rollouts/(?P<name>[^/]+)"
        self.route("GET", path, self.get_rollout)
        self.route("PATCH", path, self.patch_rollout)
        self.route("GET", path + "/status", self.get_rollout)
        self.route("PATCH", path + "/status", self.patch_status)

    # --- test set-up and inspection -------------------------------------------------

    def add_rollout(
        self,
        namespace: str,
        name: str,
        *,
        steps: Sequence[dict[str, Any]] = STEPS,
        at: int = 0,
        reconciled: bool = True,
    ) -> dict[str, Any]:
        """A canary of CANARY over STABLE at step `at`; `reconciled` lets the controller walk on from there
        (by default: to the first pause step, 10% canary), else it is caught mid-step, Progressing."""
        rollout = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "resourceVersion": "100",
                "generation": 2,
                "creationTimestamp": self._now(),
                "annotations": {"rollout.argoproj.io/revision": "2"},
            },
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": f"registry.example.com/{name}:2.4.0"}]},
                },
                "strategy": {
                    "canary": {
                        "canaryService": f"{name}-canary",
                        "stableService": f"{name}-stable",
                        "trafficRouting": {"nginx": {"stableIngress": name}},
                        "steps": copy.deepcopy(list(steps)),
                    }
                },
            },
            "status": {
                "phase": "Progressing",
                "message": "more replicas need to be updated",
                "currentStepIndex": at,
                "currentPodHash": CANARY,
                "stableRS": STABLE,
                "observedGeneration": "2",
                "replicas": 5,
                "canary": {"weights": self._weights(name, 0)},
            },
        }
        self.rollouts[(namespace, name)] = rollout
        if reconciled:
            self.reconcile(namespace, name)
        return rollout

    def rollout(self, namespace: str, name: str) -> dict[str, Any]:
        return self.rollouts[(namespace, name)]

    def patches(self) -> list[tuple[str, Any]]:
        """Accepted patches: ("main" | "status", body)."""
        return [
            ("status" if r.path.endswith("/status") else "main", r.json())
            for r, reply in self.exchanges
            if r.method == "PATCH" and reply.status == 200
        ]

    # --- serving ---------------------------------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        header = request.headers.get("authorization", "")
        refusal = None
        if header.removeprefix("Bearer ") not in self.tokens | self.readers or not header.startswith(
            "Bearer "
        ):
            refusal = status_error(401, "Unauthorized", "Unauthorized")
        elif request.method != "GET" and header.removeprefix("Bearer ") in self.readers:
            resource = "rollouts/status" if request.path.endswith("/status") else "rollouts"
            refusal = status_error(
                403,
                "Forbidden",
                f'rollouts.argoproj.io is forbidden: User "system:serviceaccount:tidegate:reader" cannot'
                f' patch resource "{resource}" in API group "argoproj.io"',
            )
        if refusal is not None:
            with self._lock:
                self.exchanges.append((request, refusal))
        return refusal

    def _dispatch(self, request: Request) -> Reply:
        reply = super()._dispatch(request)
        with self._lock:
            self.exchanges.append((request, reply))
        return reply

    def get_rollout(self, request: Request) -> Reply:
        found = self._find(request)
        if isinstance(found, Reply):
            return found
        return Reply(200, copy.deepcopy(found))

    def patch_rollout(self, request: Request) -> Reply:
        return self._patch(request, status=not self.status_subresource, rest=True)

    def patch_status(self, request: Request) -> Reply:
        if not self.status_subresource:
            return status_error(404, "NotFound", "the server could not find the requested resource")
        return self._patch(request, status=True, rest=False)

    def _patch(self, request: Request, *, status: bool, rest: bool) -> Reply:
        found = self._find(request)
        if isinstance(found, Reply):
            return found
        if request.headers.get("content-type", "").split(";")[0].strip() != MERGE_PATCH:
            return status_error(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include:"
                " application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )
        patch = request.json()
        if not isinstance(patch, dict):
            return status_error(400, "BadRequest", "the patch is not a JSON object")
        kept = {
            key: value
            for key, value in patch.items()
            if (key == "status" and status) or (key != "status" and rest)
        }
        patched = merge_patch(found, kept)
        spec_changed = patched.get("spec") != found.get("spec")
        found.clear()
        found.update(patched)
        meta = found["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if spec_changed:
            meta["generation"] += 1
        if self.auto_reconcile:
            self.reconcile(meta["namespace"], meta["name"])
        return Reply(200, copy.deepcopy(found))

    # --- the Argo Rollouts controller --------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> None:
        rollout = self.rollouts[(namespace, name)]
        spec, status = rollout["spec"], rollout["status"]
        steps = spec["strategy"]["canary"]["steps"]
        status["observedGeneration"] = str(rollout["metadata"]["generation"])
        if status.get("abort"):
            status.setdefault("abortedAt", self._now())
            status["canary"]["weights"] = self._weights(name, 0)
            status.pop("pauseConditions", None)
            status["phase"], status["message"] = (
                "Degraded",
                "RolloutAborted: Rollout aborted update to revision 2",
            )
            return
        if status.get("promoteFull"):
            status["currentStepIndex"] = len(steps)
        if spec.get("paused"):
            status["phase"], status["message"] = "Paused", "manually paused"
            return
        while status["currentStepIndex"] < len(steps):
            step = steps[status["currentStepIndex"]]
            if "setWeight" in step:
                status["canary"]["weights"] = self._weights(name, step["setWeight"])
            elif "pause" in step:
                if status.get("pauseConditions"):
                    status["phase"], status["message"] = "Paused", "CanaryPauseStep"
                    return
                if not status.get("controllerPause"):  # arrived at the pause step: pause
                    status["pauseConditions"] = [{"reason": "CanaryPauseStep", "startTime": self._now()}]
                    status["controllerPause"] = True
                    status["phase"], status["message"] = "Paused", "CanaryPauseStep"
                    return
                status["controllerPause"] = False  # the condition was cleared: promoted past it
            status["currentStepIndex"] += 1
        status.pop("pauseConditions", None)
        status.pop("promoteFull", None)
        status["stableRS"] = status["currentPodHash"]
        status["canary"]["weights"] = self._weights(name, 0, stable=status["currentPodHash"])
        status["phase"], status["message"] = "Healthy", ""

    # --- helpers -----------------------------------------------------------------------

    def _find(self, request: Request) -> Any:
        rollout = self.rollouts.get((request.params["ns"], request.params["name"]))
        if rollout is None:
            name = request.params["name"]
            return status_error(404, "NotFound", f'rollouts.argoproj.io "{name}" not found')
        return rollout

    def _weights(self, name: str, canary: int, stable: str = STABLE) -> dict[str, Any]:
        return {
            "canary": {"weight": canary, "podTemplateHash": CANARY, "serviceName": f"{name}-canary"},
            "stable": {"weight": 100 - canary, "podTemplateHash": stable, "serviceName": f"{name}-stable"},
        }

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
