"""`webhook`: tell a system that has no adapter, by POSTing it a signed JSON operation.

    targets:
      - name: legacy-router
        kind: webhook
        settings:
          url: https://deploy.internal/tidegate/legacy-router
          state_url: https://deploy.internal/tidegate/legacy-router/state  # optional: observe first
          secret_env: LEGACY_ROUTER_WEBHOOK_SECRET   # optional: sign every request (HMAC-SHA256)
          token_env: LEGACY_ROUTER_TOKEN             # optional: Authorization: Bearer <token>
          capabilities: [set_traffic, rollback]      # what the receiver can do (default: everything)

The request. `POST url` with the body (JSON, keys sorted, no spaces)
`{"key", "operation", "sent_at", "target", "traffic", "version"}` — `operation` one of
set_traffic, pause, resume, rollback, disable, enable; `traffic` a whole percentage 0..100 for
set_traffic (null otherwise); `version` the version to return to for rollback (null
otherwise); `key` the journal's idempotency key, also sent as the `Idempotency-Key` header.

The signature. With `secret_env`, `X-Tidegate-Timestamp: <unix seconds>` and
`X-Tidegate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`. A receiver
recomputes it over the raw bytes it received, compares in constant time, and rejects a
timestamp more than a few minutes old (a replayed request); each attempt is signed afresh,
so a retry carries a new timestamp with the same body and key. The check:

    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(f"sha256={expected}", signature)

What the answer means (everything else as adapters/http.py classifies it):
  - 200, 201, 202, 204 → applied;
  - 208 Already Reported, 409 Conflict → already done: the receiver has seen this
    Idempotency-Key, or is already where the operation would put it. A receiver must keep
    the keys it processed: a restart after a crash sends the same key again;
  - 401, 403 → AuthFailed at once; 412, 423 → Precondition; 429 / 503 with Retry-After → rate
    limited (honoured); other 5xx and timeouts → transient (retried); other 4xx → permanent.

Observe first. With `state_url`, `GET state_url` answers the receiver's state as JSON
`{"version": str, "traffic": 0..100, "paused": bool, "enabled": bool}` (each optional;
unknown keys ignored) and `apply` sends nothing when the target already is where the
operation would put it. Without it, `observe()` knows nothing and idempotency rests on the
receiver honouring `Idempotency-Key`.

Secrets are read from the environment when a request is made — never from YAML, never at
construction — and are redacted from every error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result, satisfied
from adapters.credentials import secret
from adapters.errors import Permanent
from adapters.http import RetryPolicy, VendorHttp, vendor_message
from policies.operations import Op, Operation
from policies.timestamps import format_timestamp

if TYPE_CHECKING:
    from adapters.actuators.registry import BuildContext

HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
APPLIED = frozenset({200, 201, 202, 204})
ALREADY_DONE = frozenset({208, 409})  # Already Reported; Conflict: this key was processed


class WebhookSettings(BaseModel):
    """A webhook target's settings in rollout.yaml; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    state_url: HttpUrl | None = None
    secret_env: EnvName | None = None  # the variable holding the HMAC signing secret
    token_env: EnvName | None = None  # the variable holding a bearer token
    capabilities: Annotated[frozenset[Op], Field(min_length=1)] = frozenset(Op)
    timeout: float = Field(default=10.0, gt=0, le=300)  # seconds per request

    def secret_variables(self) -> tuple[str, ...]:
        return tuple(name for name in (self.secret_env, self.token_env) if name is not None)


def capabilities_for(settings: WebhookSettings) -> frozenset[Op]:
    return settings.capabilities


def build(name: str, settings: WebhookSettings, context: BuildContext) -> Webhook:
    return Webhook(name, settings, context.client(), context.env)


class _State(BaseModel):
    """What `state_url` answers; a percentage is a whole number 0..100, not a fraction."""

    model_config = ConfigDict(extra="ignore")

    version: str | None = None
    traffic: int | None = Field(default=None, ge=0, le=100)  # 0.5 is refused, 50.0 is 50
    paused: bool | None = Field(default=None, strict=True)
    enabled: bool | None = Field(default=None, strict=True)


class Webhook:
    """The Actuator Protocol over one receiver URL; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: WebhookSettings,
        client: httpx.Client,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._name = name
        self._settings = settings
        self._client = client
        self._env = env
        self._clock = clock
        self._sleep = sleep
        self._retry = retry

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self._settings.capabilities

    def observe(self) -> Observed:
        if self._settings.state_url is None:
            return Observed(detail="no state_url: the receiver's state is not observed")
        http, path = self._http(self._settings.state_url)
        response = http.request("GET", path, headers=self._auth())
        try:
            state = _State.model_validate_json(response.content)
        except ValidationError as error:
            text = f"webhook {self._name}: GET {path} answered {_explain(error)}"
            for value in http.secrets:
                text = text.replace(value, "***")
            raise Permanent(text) from None
        return Observed(state.version, state.traffic, state.paused, state.enabled)

    def apply(self, operation: Operation, key: str) -> Result:
        refusal = self._refusal(operation)
        if refusal:
            return Refused(refusal)
        if self._settings.state_url is not None and satisfied(operation, self.observe()):
            return AlreadyDone(f"already {operation.describe()} (observed)")
        body = _body(operation, key, self._clock())
        http, path = self._http(self._settings.url)
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, **self._auth()}
        response = http.request(
            "POST",
            path,
            content=body,
            headers=headers,
            ok=APPLIED | ALREADY_DONE,
            # signed again at every attempt: a retry minutes later must not carry an old
            # timestamp, which a receiver rejects as a replay (the body, and its key, stay)
            fresh_headers=lambda: self._signature(body),
        )
        said = vendor_message(response, http.secrets) if response.content else ""
        detail = operation.describe() + (f": {said}" if said else "")
        if response.status_code in ALREADY_DONE:
            return AlreadyDone(f"receiver answered {response.status_code}: {detail}")
        return Applied(detail)

    def _refusal(self, operation: Operation) -> str:
        """Why this operation cannot be sent at all, or "" — decided before any request."""
        if operation.target != self._name:
            return f"operation for target {operation.target!r} sent to {self._name!r}"
        if operation.op not in self._settings.capabilities:
            return f"webhook {self._name} cannot {operation.op.value} (settings.capabilities)"
        if operation.op is Op.SET_TRAFFIC and (
            operation.traffic is None or not 0 <= operation.traffic <= 100
        ):
            return f"set_traffic needs a percentage in 0..100, got {operation.traffic}"
        if operation.op is Op.ROLLBACK and not operation.version:
            return "rollback needs the version to roll back to"
        return ""

    def _http(self, url: str) -> tuple[VendorHttp, str]:
        """A VendorHttp for `url`'s origin and the path to ask it for (the URL kept exact)."""
        parsed = httpx.URL(url)
        origin = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
        http = VendorHttp(
            self._client,
            vendor=f"webhook {self._name}",
            base_url=origin,
            secrets=self._secrets(),
            retry=self._retry,
            sleep=self._sleep,
            clock=self._clock,
            timeout=httpx.Timeout(self._settings.timeout),
        )
        return http, parsed.raw_path.decode("ascii")

    def _secrets(self) -> list[str]:
        return [secret(self._env, name, self._name) for name in self._settings.secret_variables()]

    def _auth(self) -> dict[str, str]:
        if self._settings.token_env is None:
            return {}
        return {"Authorization": f"Bearer {secret(self._env, self._settings.token_env, self._name)}"}

    def _signature(self, body: bytes) -> dict[str, str]:
        if self._settings.secret_env is None:
            return {}
        key = secret(self._env, self._settings.secret_env, self._name).encode()
        timestamp = str(int(self._clock()))
        digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {"X-Tidegate-Timestamp": timestamp, "X-Tidegate-Signature": f"sha256={digest}"}


def _body(operation: Operation, key: str, now: float) -> bytes:
    payload = {
        "target": operation.target,
        "operation": operation.op.value,
        "traffic": operation.traffic,
        "version": operation.version,
        "key": key,
        "sent_at": format_timestamp(now),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _explain(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        problems.append(f"{field}: {problem['msg'].lower()} (got {problem.get('input')!r:.80})")
    return "an unexpected state: " + "; ".join(problems)
