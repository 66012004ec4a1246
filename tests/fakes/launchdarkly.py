"""A LaunchDarkly REST API v2 fake on loopback: flags, semantic patch, JSON Patch, errors, rate limits.

Reproduces what reference/apis.md §7.1 documents and the actuator relies on:
- `GET /api/v2/flags/{project}/{flag}[?env=KEY]` → the flag: `_version`, `variations[{_id, value}]`,
  `environments.{env} = {on, version, lastModified (ms), offVariation, fallthrough}`; the
  fallthrough is `{variation: index}` or `{rollout: {variations: [{variation: index, weight}]}}`.
- `PATCH` the same path with `Content-Type: application/json; domain-model=launchdarkly.semanticpatch`
  and `{environmentKey, comment, instructions}`: `turnFlagOn`, `turnFlagOff`,
  `updateFallthroughVariationOrRollout` (`variationId` or `rolloutWeights` keyed by variation
  **_id**, weights in thousandths of a percent that must sum to 100000). Instructions apply
  atomically. Without the `domain-model` suffix the body is a JSON Patch (`test`, `replace`,
  `add`), where a failed `test` of `/_version` is a 409.
- Auth: the raw token in `Authorization`; missing, unknown or `Bearer `-prefixed → 401; a
  reader token PATCHing → 403. Error bodies are `{"code", "message", "id"}`.
- Every answer carries `X-Ratelimit-Global-Remaining`, `X-Ratelimit-Route-Remaining` and
  `X-Ratelimit-Reset` (epoch milliseconds); `rate_limited()` builds LaunchDarkly's 429 to inject.
- Environments listed in `approvals` refuse direct changes with 405.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from tests.fakes.server import FakeVendor, Reply, Request

FULL_WEIGHT = 100_000
SEMANTIC = "domain-model=launchdarkly.semanticpatch"


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"code": code, "message": message, "id": str(uuid.uuid4())}, headers or {})


class _Refusal(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.body)
        self.reply = reply


class FakeLaunchDarkly(FakeVendor):
    def __init__(self, token: str = "api-0000-test-token", *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.tokens: dict[str, str] = {token: "writer"}  # token → "writer" | "reader"
        self.clock = clock
        self.flags: dict[tuple[str, str], dict[str, Any]] = {}
        self.approvals: set[str] = set()  # environments that take changes only via approval requests
        self.patches: list[Request] = []  # PATCH requests that were authorised, in order
        self._patch_faults: deque[Reply] = deque()
        flag_path = r"/api/v2/flags/(?P<project>[^/]+)/(?P<flag>[^/]+)"
        self.route("GET", flag_path, self.get_flag)
        self.route("PATCH", flag_path, self.patch_flag)

    # --- test set-up and inspection -------------------------------------------------

    def reset(self, token: str) -> None:
        """Forget every flag, request and fault: one server can serve a whole test module."""
        with self._lock:
            self.tokens = {token: "writer"}
            self.flags.clear()
            self.approvals.clear()
            self.patches.clear()
            self.requests.clear()
            self._faults.clear()
            self._patch_faults.clear()

    def add_flag(
        self,
        project: str,
        key: str,
        *,
        values: Iterable[Any] = (True, False),
        environments: Iterable[str] = ("production", "staging"),
        on: bool = False,
        fallthrough: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        variations = [
            {"_id": f"{key}-var-{i}-{uuid.uuid4().hex[:8]}", "value": v} for i, v in enumerate(values)
        ]
        flag = {
            "key": key,
            "name": key,
            "kind": "boolean" if list(values) == [True, False] else "multivariate",
            "_version": 1,
            "variations": variations,
            "defaults": {"onVariation": 0, "offVariation": len(variations) - 1},
            "environments": {
                env: {
                    "on": on,
                    "archived": False,
                    "version": 1,
                    "lastModified": int(self.clock() * 1000),
                    "targets": [],
                    "contextTargets": [],
                    "rules": [],
                    "fallthrough": copy.deepcopy(fallthrough or {"variation": len(variations) - 1}),
                    "offVariation": len(variations) - 1,
                    "prerequisites": [],
                }
                for env in environments
            },
        }
        with self._lock:
            self.flags[(project, key)] = flag
        return flag

    def environment(self, project: str, key: str, env: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.flags[(project, key)]["environments"][env])

    def variation_id(self, project: str, key: str, index: int) -> str:
        return str(self.flags[(project, key)]["variations"][index]["_id"])

    def inject_on_patch(self, reply: Reply, times: int = 1) -> None:
        """The next `times` authorised PATCHes get `reply` (reads still answer normally)."""
        with self._lock:
            self._patch_faults.extend([reply] * times)

    def rate_limited(self, reset_in: float) -> Reply:
        """LaunchDarkly's 429: the route budget is spent until `reset_in` seconds from now."""
        headers = self._limit_headers(route_remaining=0, reset_in=reset_in)
        return error(429, "rate_limited", "You've exceeded the API rate limit. Try again later.", headers)

    # --- auth -------------------------------------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        given = request.headers.get("authorization")
        if not given:
            return error(401, "unauthorized", "No Authorization header: send an access token")
        role = self.tokens.get(given)
        if role is None:
            # LaunchDarkly wants the raw token; "Bearer api-…" is as unknown as a wrong one.
            return error(401, "unauthorized", f"Invalid access token {given!r}")
        if role == "reader" and request.method != "GET":
            return error(403, "forbidden", "Access to the requested resource was denied")
        return None

    # --- routes -----------------------------------------------------------------------

    def get_flag(self, request: Request) -> Reply:
        flag = self.flags.get((request.params["project"], request.params["flag"]))
        if flag is None:
            return self._limited(error(404, "not_found", "Unknown resource"))
        document = copy.deepcopy(flag)
        wanted = request.query.get("env")
        if wanted:
            env = wanted[0]
            document["environments"] = {k: v for k, v in document["environments"].items() if k == env}
        return self._limited(Reply(200, document))

    def patch_flag(self, request: Request) -> Reply:
        flag = self.flags.get((request.params["project"], request.params["flag"]))
        if flag is None:
            return self._limited(error(404, "not_found", "Unknown resource"))
        self.patches.append(request)
        if self._patch_faults:
            return self._limited(self._patch_faults.popleft())
        try:
            body = request.json()
        except ValueError:
            return self._limited(error(400, "invalid_request", "request body is not JSON"))
        working = copy.deepcopy(flag)
        try:
            if SEMANTIC in request.headers.get("content-type", ""):
                changed_envs = self._semantic(working, body)
            else:
                changed_envs = self._json_patch(working, body)
        except _Refusal as refusal:
            return self._limited(refusal.reply)
        working["_version"] += 1
        for env in changed_envs:
            working["environments"][env]["version"] += 1
            working["environments"][env]["lastModified"] = int(self.clock() * 1000)
        self.flags[(request.params["project"], request.params["flag"])] = working
        return self._limited(Reply(200, copy.deepcopy(working)))

    # --- semantic patch -----------------------------------------------------------------

    def _semantic(self, flag: dict[str, Any], body: Any) -> set[str]:
        if not isinstance(body, dict) or not isinstance(body.get("instructions"), list):
            raise _Refusal(error(400, "invalid_request", "semantic patch needs an instructions array"))
        env_key = body.get("environmentKey")
        if env_key not in flag["environments"]:
            raise _Refusal(error(400, "invalid_request", f"unknown or missing environmentKey {env_key!r}"))
        if env_key in self.approvals:
            raise _Refusal(error(405, "method_not_allowed", "This environment requires approval for changes"))
        env = flag["environments"][env_key]
        for instruction in body["instructions"]:
            self._instruction(flag, env, instruction)
        return {str(env_key)}

    def _instruction(self, flag: dict[str, Any], env: dict[str, Any], instruction: Any) -> None:
        kind = instruction.get("kind") if isinstance(instruction, dict) else None
        if kind in ("turnFlagOn", "turnFlagOff"):
            env["on"] = kind == "turnFlagOn"
            return
        if kind != "updateFallthroughVariationOrRollout":
            raise _Refusal(error(400, "invalid_request", f"unknown instruction kind {kind!r}"))
        ids = [v["_id"] for v in flag["variations"]]
        if "variationId" in instruction:
            if instruction["variationId"] not in ids:
                raise _Refusal(error(400, "invalid_request", "variationId is not a variation of this flag"))
            env["fallthrough"] = {"variation": ids.index(instruction["variationId"])}
            return
        weights = instruction.get("rolloutWeights")
        if not isinstance(weights, dict) or not weights:
            raise _Refusal(error(400, "invalid_request", "rolloutWeights or variationId is required"))
        for variation_id, weight in weights.items():
            if variation_id not in ids:
                raise _Refusal(error(400, "invalid_request", f"unknown variation id {variation_id!r}"))
            if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= FULL_WEIGHT:
                raise _Refusal(error(400, "invalid_request", "weights are integers in 0..100000"))
        if sum(weights.values()) != FULL_WEIGHT:
            raise _Refusal(error(400, "invalid_request", "rollout weights must sum to 100000"))
        rollout: dict[str, Any] = {
            "variations": [{"variation": ids.index(i), "weight": w} for i, w in sorted(weights.items())]
        }
        if "rolloutBucketBy" in instruction:
            rollout["bucketBy"] = instruction["rolloutBucketBy"]
        env["fallthrough"] = {"rollout": rollout}

    # --- JSON Patch (RFC 6902, the ops a controller needs) ------------------------------

    def _json_patch(self, flag: dict[str, Any], body: Any) -> set[str]:
        if not isinstance(body, list):
            raise _Refusal(error(400, "invalid_request", "expected a JSON Patch array"))
        changed: set[str] = set()
        for op in body:
            path = str(op.get("path", "")) if isinstance(op, dict) else ""
            parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
            if not parts:
                raise _Refusal(error(400, "invalid_request", f"bad JSON Patch operation {op!r}"))
            parent: Any = flag
            for part in parts[:-1]:
                parent = parent[int(part)] if isinstance(parent, list) else parent.get(part)
                if parent is None:
                    raise _Refusal(error(400, "invalid_request", f"path {path} does not exist"))
            if op.get("op") == "test":
                if parent.get(parts[-1]) != op.get("value"):
                    raise _Refusal(error(409, "conflict", f"test of {path} failed: the flag has changed"))
                continue
            if op.get("op") not in ("replace", "add"):
                raise _Refusal(error(400, "invalid_request", f"unsupported JSON Patch op {op.get('op')!r}"))
            if parts[0] == "environments" and parts[1] in self.approvals:
                raise _Refusal(
                    error(405, "method_not_allowed", "This environment requires approval for changes")
                )
            parent[parts[-1]] = op.get("value")
            if parts[0] == "environments":
                changed.add(parts[1])
        return changed

    # --- rate-limit headers -------------------------------------------------------------

    def _limit_headers(self, *, route_remaining: int = 99, reset_in: float = 10.0) -> dict[str, str]:
        return {
            "X-Ratelimit-Global-Remaining": "999",
            "X-Ratelimit-Route-Remaining": str(route_remaining),
            "X-Ratelimit-Reset": str(int((self.clock() + reset_in) * 1000)),  # epoch milliseconds
        }

    def _limited(self, reply: Reply) -> Reply:
        reply.headers = {**self._limit_headers(), **reply.headers}
        return reply
