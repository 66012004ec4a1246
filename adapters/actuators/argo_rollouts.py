"""An Argo Rollouts `Rollout` as a target: abort, pause and resume by Kubernetes merge patches.

    targets:
      - name: web
        kind: argo-rollouts
        settings:
          rollout: web
          namespace: shop
          api_server: https://k8s.example.com:6443   # and token_env (a bearer token), or:
          token_env: K8S_TOKEN
          # kubeconfig: ~/.kube/config  (context: prod)   or   in_cluster: true

Argo Rollouts has no control API of its own: `kubectl argo rollouts` PATCHes the Rollout
custom resource, `/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}[/status]`, with
`Content-Type: application/merge-patch+json` (reference/apis.md §2). So does this target.
Status fields go to the `status` subresource — the main resource drops them when the CRD has
one — falling back to the main resource when `/status` is 404 (a CRD without it), as the
plugin does.

Capabilities: rollback, pause, resume — and deliberately no set_traffic. A Rollout's weight
moves only through its own `canary.steps` (and analysis); there is no verb that sets a
percentage, and `currentStepIndex` only moves forward. "Nearest step" would either be refused
at every step-down or jump over analysis and pauses, and traffic must never rise while a
step-down rule breaches. Without set_traffic the planner does the sound thing: a step-down
pauses the canary where it is, advancing follows the Rollout's own steps, a rollback aborts.

  - rollback(to) = abort: `{"status":{"abort":true}}`. The controller sends all traffic back
    to the stable ReplicaSet — the previous version by construction — and scales the canary
    down. Already aborted → AlreadyDone (aborting twice is a no-op anyway). Fully promoted
    (`currentPodHash == stableRS`: the new version IS stable) → Refused: abort cannot bring
    the old version back, that takes `kubectl argo rollouts undo` or git. The Rollout stays
    Degraded on the new template until git brings the old one back; the result says so.
  - pause: `{"spec":{"paused":true}}` unless `spec.paused` already is. A pause *step* is not
    enough: one with a duration resumes by itself.
  - resume = promote one pause, never a step: `spec.paused=false` if set, and
    `status.pauseConditions=null` (+ `controllerPause:false` after an inconclusive analysis)
    if a pause step or analysis holds it. Never `currentStepIndex+1` (what `promote` does to a
    rollout that is not paused: it skips a step) and never `promoteFull` (skipping analysis
    and bake is a human's call). Not paused → AlreadyDone, nothing sent.
    No double promote across a crash: before clearing a pause, the actuator writes the
    journal key and where the rollout stood (step, pod hash) into the annotation
    `tidegate.dev/resume`. A re-applied intent with that key that finds the rollout elsewhere
    — say at the next pause step, which a fast controller reaches at once — is AlreadyDone.
    Resuming an aborted rollout is Refused: un-aborting (`retry`) restarts the bad release.

Connection: `api_server` + `token_env`, a `kubeconfig` (+ `context`), or `in_cluster: true`
(the pod's service account); `namespace` defaults to the context's / the pod's / "default".
See adapters/kubernetes.py.

Errors (Kubernetes `Status` bodies): 401/403 → AuthFailed (403 is RBAC: the service account
needs get+patch on rollouts and rollouts/status); 404 → Permanent; 409 → Transient (re-read
and retry); 422/415 → Permanent; 429 (Retry-After) and 5xx retried by adapters.http.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import Field

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result
from adapters.errors import ActuatorError, AuthFailed, Permanent, Transient
from adapters.http import RetryPolicy, VendorHttp
from adapters.kubernetes import Cluster, KubernetesSettings, resolve_cluster, tls_client
from policies.operations import Op, Operation

if TYPE_CHECKING:
    from adapters.actuators.base import Actuator
    from adapters.actuators.registry import BuildContext

log = logging.getLogger(__name__)

CAPABILITIES = frozenset({Op.ROLLBACK, Op.PAUSE, Op.RESUME})
RESUME_MARK = "tidegate.dev/resume"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


class ArgoRolloutsSettings(KubernetesSettings):
    rollout: str = Field(min_length=1)


def capabilities_for(settings: ArgoRolloutsSettings) -> frozenset[Op]:
    return CAPABILITIES


def build(name: str, settings: ArgoRolloutsSettings, context: BuildContext) -> Actuator:
    cluster = resolve_cluster(settings, context.env)
    client = context.client() if cluster.ca_pem is None and not cluster.insecure else tls_client(cluster)
    return ArgoRollouts(name, settings.rollout, cluster, client, context.env)


# --- the Rollout as read --------------------------------------------------------------


@dataclass(frozen=True)
class RolloutState:
    spec_paused: bool
    pause_reasons: tuple[str, ...]
    aborted: bool
    phase: str
    message: str
    step: int | None
    steps: int
    pod_hash: str
    stable_hash: str
    canary_weight: int | None
    mark: dict[str, Any]  # the resume annotation: {key, step, podHash}, {} when absent

    @property
    def paused(self) -> bool:
        return self.spec_paused or bool(self.pause_reasons)

    @property
    def promoted(self) -> bool:
        return bool(self.pod_hash) and self.pod_hash == self.stable_hash

    def where(self) -> str:
        step = f"step {self.step}/{self.steps}" if self.step is not None else "no step"
        weight = f", canary {self.canary_weight}%" if self.canary_weight is not None else ""
        return f"{self.phase or 'Unknown'} at {step}{weight}"


def parse_rollout(body: Any) -> RolloutState:
    body = _dict(body)
    meta, spec, status = _dict(body.get("metadata")), _dict(body.get("spec")), _dict(body.get("status"))
    steps = _dict(_dict(spec.get("strategy")).get("canary")).get("steps") or []
    weight = _dict(_dict(_dict(status.get("canary")).get("weights")).get("canary")).get("weight")
    try:
        mark = _dict(json.loads(_dict(meta.get("annotations")).get(RESUME_MARK) or "{}"))
    except json.JSONDecodeError:
        mark = {}
    step = status.get("currentStepIndex")
    return RolloutState(
        spec_paused=spec.get("paused") is True,
        pause_reasons=tuple(str(_dict(c).get("reason", "")) for c in status.get("pauseConditions") or ()),
        aborted=status.get("abort") is True,
        phase=str(status.get("phase") or ""),
        message=str(status.get("message") or ""),
        step=step if isinstance(step, int) else None,
        steps=len(steps) if isinstance(steps, list) else 0,
        pod_hash=str(status.get("currentPodHash") or ""),
        stable_hash=str(status.get("stableRS") or ""),
        canary_weight=weight if isinstance(weight, int) else None,
        mark=mark,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _NotFound(Permanent):
    pass


# --- the actuator ------------------------------------------------------------------------


class ArgoRollouts:
    """The Actuator for one Rollout; see the module docstring."""

    def __init__(
        self,
        name: str,
        rollout: str,
        cluster: Cluster,
        client: httpx.Client,
        env: Mapping[str, str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._name = name
        self._rollout = rollout
        self._cluster = cluster
        self._client = client
        self._env = env
        self._sleep = sleep
        self._retry = retry
        self._path = f"/apis/argoproj.io/v1alpha1/namespaces/{cluster.namespace}/rollouts/{rollout}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return CAPABILITIES

    def observe(self) -> Observed:
        state = self._fetch(self._http())
        extra = ", aborted" if state.aborted else ""
        return Observed(traffic=state.canary_weight, paused=state.paused, detail=state.where() + extra)

    def apply(self, operation: Operation, key: str) -> Result:
        if operation.target != self._name:
            return Refused(f"operation for target {operation.target!r} sent to {self._name!r}")
        if operation.op not in CAPABILITIES:
            return Refused(
                f"Argo Rollouts cannot {operation.op.value}: weights move only through the Rollout's"
                " canary steps"
            )
        http = self._http()
        state = self._fetch(http)
        log.info("argo-rollouts %s: %s (key %s) — %s", self._name, operation.describe(), key, state.where())
        if operation.op is Op.PAUSE:
            return self._pause(http, state)
        if operation.op is Op.RESUME:
            return self._resume(http, state, key)
        return self._abort(http, state, operation.version)

    def _abort(self, http: VendorHttp, state: RolloutState, version: str | None) -> Result:
        if state.aborted:
            return AlreadyDone(f"already aborted: traffic is on the stable ReplicaSet {state.stable_hash}")
        if state.promoted:
            return Refused(
                f"rollout {self._rollout} is fully promoted (stable is the new version {state.pod_hash}):"
                " abort cannot bring the previous version back — `kubectl argo rollouts undo` or a"
                " revert in git"
            )
        after = self._patch_status(http, {"status": {"abort": True}})
        if not after.aborted:
            raise Permanent(f"argo-rollouts {self._name}: status.abort did not stick ({after.where()})")
        previous = f" ({version})" if version else ""
        return Applied(
            f"aborted: all traffic goes back to the stable ReplicaSet {state.stable_hash}{previous} and the"
            " canary scales down; the Rollout stays Degraded on the new template until git brings back"
            " the old one"
        )

    def _pause(self, http: VendorHttp, state: RolloutState) -> Result:
        if state.spec_paused:
            return AlreadyDone(f"already paused ({state.where()})")
        self._patch(http, self._path, {"spec": {"paused": True}})
        return Applied(f"paused at {state.where()}")

    def _resume(self, http: VendorHttp, state: RolloutState, key: str) -> Result:
        if state.aborted:
            return Refused(
                f"rollout {self._rollout} is aborted; un-aborting it (`kubectl argo rollouts retry`) restarts"
                " the release from its first step — a human's call"
            )
        if not state.paused:
            return AlreadyDone(
                f"not paused ({state.where()}): nothing to resume; promoting now would skip a step"
            )
        here = {"step": state.step, "podHash": state.pod_hash}
        if state.mark.get("key") == key and {k: state.mark.get(k) for k in here} != here:
            return AlreadyDone(
                f"resume {key} already moved the rollout on from step {state.mark.get('step')};"
                f" it is now {state.where()} — not promoting twice"
            )
        main: dict[str, Any] = {"metadata": {"annotations": {RESUME_MARK: json.dumps({"key": key, **here})}}}
        if state.spec_paused:
            main["spec"] = {"paused": False}
        self._patch(http, self._path, main)
        if state.pause_reasons:
            clear: dict[str, Any] = {"pauseConditions": None}
            if any(reason.startswith("Inconclusive") for reason in state.pause_reasons):
                clear["controllerPause"] = False
            self._patch_status(http, {"status": clear})
        return Applied(f"resumed from {state.where()}")

    # --- HTTP ------------------------------------------------------------------------

    def _fetch(self, http: VendorHttp) -> RolloutState:
        return parse_rollout(_json(http.request("GET", self._path), self._name))

    def _patch_status(self, http: VendorHttp, patch: dict[str, Any]) -> RolloutState:
        try:
            return self._patch(http, self._path + "/status", patch)
        except _NotFound:  # a CRD without the status subresource: status is part of the main resource
            return self._patch(http, self._path, patch)

    def _patch(self, http: VendorHttp, path: str, patch: dict[str, Any]) -> RolloutState:
        response = http.request("PATCH", path, content=json.dumps(patch).encode(), headers=MERGE_PATCH)
        return parse_rollout(_json(response, self._name))

    def _http(self) -> VendorHttp:
        token = self._cluster.token.read(self._env, self._name)
        return VendorHttp(
            self._client,
            vendor=f"argo-rollouts {self._name}",
            base_url=self._cluster.server,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            secrets=[token],
            retry=self._retry,
            classify=_classify,
            sleep=self._sleep,
        )


def _classify(response: httpx.Response, text: str) -> ActuatorError | None:
    if response.status_code == 404:
        return _NotFound(text)
    if response.status_code == 403:
        return AuthFailed(f"{text} (RBAC: the account needs get and patch on rollouts and rollouts/status)")
    if response.status_code == 409:  # a write conflict: re-read and try again
        return Transient(text)
    return None


def _json(response: httpx.Response, name: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise Transient(
            f"argo-rollouts {name}: answer was not JSON (status {response.status_code})"
        ) from None
