"""A webhook receiver as adapters/actuators/webhook.py documents one: it checks the bearer
token and the HMAC signature over the raw body, keeps the Idempotency-Keys it processed
(208 on a repeat), keeps each target's state and serves it at `…/state`.

    with FakeReceiver(secret="s3cret", token="t0ken") as receiver:
        url = receiver.hook_url("legacy-router")          # POST here
        state_url = receiver.state_url("legacy-router")   # GET here
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tests.fakes.server import FakeVendor, Reply, Request

TOLERANCE = 300.0  # seconds a signed timestamp may be old: older is a replay


@dataclass
class TargetState:
    version: str | None = "2.0.0"
    traffic: int | None = 100
    paused: bool | None = False
    enabled: bool | None = True


class FakeReceiver(FakeVendor):
    def __init__(
        self,
        *,
        secret: str | None = None,
        token: str | None = None,
        delay: float = 0.0,
        clock: Any = None,
    ) -> None:
        super().__init__()
        self.secret = secret
        self.token = token
        self.delay = delay  # seconds each answer takes (the fan-out benchmark's 200 ms)
        self.clock = clock  # a callable for the replay check; None skips it
        self.states: dict[str, TargetState] = {}
        self.processed: dict[str, dict[str, Any]] = {}  # Idempotency-Key → the payload applied
        self.applied: list[dict[str, Any]] = []  # every payload that took effect, in order
        self.lose_answers = 0  # the next N applied operations lose their answer (connection reset)
        self.answers: dict[str, Callable[[Request], Reply]] = {}  # per target: answer this instead
        self.route("POST", r"/hooks/(?P<target>[a-z0-9-]+)", self.hook)
        self.route("GET", r"/hooks/(?P<target>[a-z0-9-]+)/state", self.state)

    def forget(self) -> None:
        """Back to a fresh receiver (a module-scoped fake between tests): no state, no requests."""
        with self._lock:
            self.states.clear()
            self.processed.clear()
            self.applied.clear()
            self.answers.clear()
            self.lose_answers = 0
            self.requests.clear()
            self._faults.clear()

    def hook_url(self, target: str) -> str:
        return f"{self.url}/hooks/{target}"

    def state_url(self, target: str) -> str:
        return f"{self.url}/hooks/{target}/state"

    def target(self, name: str) -> TargetState:
        return self.states.setdefault(name, TargetState())

    # --- the receiver's side of the contract -----------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        if self.token is None:
            return None
        said = request.headers.get("authorization")
        if said is None:
            return Reply(401, {"message": "missing bearer token"})
        if not hmac.compare_digest(said, f"Bearer {self.token}"):
            return Reply(403, {"message": "token not allowed"})
        return None

    def hook(self, request: Request) -> Reply:
        special = self.answers.get(request.params["target"])
        if special is not None:
            return special(request)
        bad = self._signature_problem(request)
        if bad:
            return Reply(401, {"message": bad}, delay=self.delay)
        key = request.headers.get("idempotency-key", "")
        payload = request.json()
        if key != payload.get("key"):
            return Reply(400, {"message": "Idempotency-Key header and body key differ"}, delay=self.delay)
        if key in self.processed:
            return Reply(208, {"detail": "already processed"}, delay=self.delay)
        self._apply(request.params["target"], payload)
        self.processed[key] = payload
        self.applied.append(payload)
        if self.lose_answers > 0:  # applied, but the caller never hears so
            self.lose_answers -= 1
            return Reply(reset=True)
        return Reply(200, {"detail": f"done: {payload['operation']}"}, delay=self.delay)

    def state(self, request: Request) -> Reply:
        return Reply(200, asdict(self.target(request.params["target"])), delay=self.delay)

    def _signature_problem(self, request: Request) -> str:
        if self.secret is None:
            return ""
        timestamp = request.headers.get("x-tidegate-timestamp", "")
        signature = request.headers.get("x-tidegate-signature", "")
        if not timestamp or not signature:
            return "unsigned request"
        if self.clock is not None and abs(self.clock() - int(timestamp)) > TOLERANCE:
            return "signature timestamp too old"
        signed = timestamp.encode() + b"." + request.body
        expected = "sha256=" + hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        return "" if hmac.compare_digest(expected, signature) else "bad signature"

    def _apply(self, name: str, payload: dict[str, Any]) -> None:
        state = self.target(name)
        operation = payload["operation"]
        if operation == "set_traffic":
            state.traffic = payload["traffic"]
        elif operation == "rollback":
            state.version = payload["version"]
        elif operation in ("pause", "resume"):
            state.paused = operation == "pause"
        else:
            state.enabled = operation == "enable"
