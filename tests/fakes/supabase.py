"""A Supabase Management API fake on loopback: Edge Functions, their bundles, the rate limit.

Reproduces what reference/apis.md §4 and specs/supabase-management-openapi.json describe:
- Auth `Authorization: Bearer <token>`; missing or unknown → 401 `{"message": "Unauthorized"}`.
- `GET /v1/projects/{ref}/functions`, `GET|PATCH|DELETE …/functions/{slug}`, `GET …/{slug}/body`
  (the *current* bundle only, binary), `POST …/functions/deploy?slug=` (multipart: a `metadata`
  JSON part with `entrypoint_path`, and `file` parts). PATCH takes a raw
  `application/vnd.denoland.eszip` body or JSON `{name, body, verify_jwt}` and metadata in
  the query. Every deploy or PATCH bumps the integer `version` and `updated_at`; no history
  is kept. 402 past `function_limit` functions; 404 for an unknown function or project.
- Rate limit: `limit` requests (60) in any 60 s per token; the request over it gets 429 and
  the token is blocked for a minute — every call answers 429 until then. Every answer carries
  `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until the window
  frees a slot or the block ends). No Retry-After, as documented. Time is the injected clock.
- Timestamps `created_at` / `updated_at` are epoch milliseconds.
`exchanges` keeps every (request, reply) pair so tests can check both against the spec.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, cast

from tests.fakes.server import FakeVendor, Handler, Reply, Request

Json = dict[str, Any]
WINDOW = 60.0
BLOCK = 60.0
_PUBLIC = (
    "id",
    "slug",
    "name",
    "status",
    "version",
    "created_at",
    "updated_at",
    "verify_jwt",
    "import_map",
    "entrypoint_path",
    "import_map_path",
    "ezbr_sha256",
)


def message(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"message": text}, headers or {})


class FakeSupabase(FakeVendor):
    def __init__(
        self,
        token: str = "sbp_test_token",
        *,
        clock: Callable[[], float] = time.time,
        limit: int = 60,
        function_limit: int = 25,
    ) -> None:
        super().__init__()
        self.tokens = {token}
        self.clock = clock
        self.limit = limit
        self.function_limit = function_limit
        self.functions: dict[tuple[str, str], Json] = {}  # (ref, slug) → the function and its bundle
        self.projects: set[str] = set()
        self.exchanges: list[tuple[Request, Reply]] = []
        self.counted: list[float] = []  # when each request that counted against the limit arrived
        self.throttled = 0  # 429s answered by the limit
        self._sent: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._rate_lock = threading.Lock()
        functions = r"/v1/projects/(?P<ref>[^/]+)/functions"
        one = functions + r"/(?P<slug>[^/]+)"
        self.route("POST", functions + "/deploy", self._logged(self.deploy))
        self.route("GET", functions, self._logged(self.list_functions))
        self.route("GET", one + "/body", self._logged(self.get_body))
        self.route("GET", one, self._logged(self.get_function))
        self.route("PATCH", one, self._logged(self.update_function))
        self.route("DELETE", one, self._logged(self.delete_function))

    # --- test set-up and inspection -----------------------------------------------------

    def reset(self, clock: Callable[[], float], *, limit: int = 60) -> None:
        """Forget everything (one server serves a whole test module)."""
        with self._lock, self._rate_lock:
            self.clock = clock
            self.limit = limit
            self.functions.clear()
            self.projects.clear()
            self.exchanges.clear()
            self.counted.clear()
            self.throttled = 0
            self._sent.clear()
            self._blocked_until.clear()
            self.requests.clear()
            self._faults.clear()

    def add_function(self, ref: str, slug: str, bundle: bytes, *, verify_jwt: bool = True) -> Json:
        """A deployed function at version 1, as if `supabase functions deploy` had run."""
        self.projects.add(ref)
        now = self._ms()
        self.functions[(ref, slug)] = {
            "id": str(uuid.uuid4()),
            "slug": slug,
            "name": slug,
            "status": "ACTIVE",
            "version": 0,
            "created_at": now,
            "updated_at": now,
            "verify_jwt": verify_jwt,
            "import_map": False,
            "entrypoint_path": "index.ts",
            "import_map_path": "",
            "ezbr_sha256": "",
        }
        return self.release(ref, slug, bundle)

    def release(self, ref: str, slug: str, bundle: bytes) -> Json:
        """A new deploy of the function's bundle (a CI deploy outside tidegate)."""
        with self._lock:
            return self._deployed(self.functions[(ref, slug)], bundle)

    def bundle(self, ref: str, slug: str) -> bytes:
        with self._lock:
            return cast(bytes, self.functions[(ref, slug)]["_bundle"])

    def function(self, ref: str, slug: str) -> Json:
        with self._lock:
            return _public(self.functions[(ref, slug)])

    # --- auth and the rate limit ------------------------------------------------------------

    def authorize(self, request: Request) -> Reply | None:
        token = _bearer(request)
        if token is None or token not in self.tokens:
            return self._log(request, message(401, "Unauthorized"))
        with self._rate_lock:
            now = self.clock()
            sent = self._sent.setdefault(token, deque())
            while sent and sent[0] <= now - WINDOW:
                sent.popleft()
            blocked = self._blocked_until.get(token, 0.0)
            if now < blocked or len(sent) >= self.limit:
                if now >= blocked:  # going over the limit: the user is blocked for a minute
                    self._blocked_until[token] = blocked = now + BLOCK
                self.throttled += 1
                reset = {"X-RateLimit-Reset": str(math.ceil(blocked - now))}
                reply = message(429, "Too many requests", self._headers(sent) | reset)
                return self._log(request, reply)
            sent.append(now)
            self.counted.append(now)
        return None

    def _headers(self, sent: deque[float]) -> dict[str, str]:
        reset = max(0.0, sent[0] + WINDOW - self.clock()) if sent else 0.0
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - len(sent))),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    # --- endpoints --------------------------------------------------------------------------

    def list_functions(self, request: Request) -> Reply:
        ref = request.params["ref"]
        if ref not in self.projects:
            return message(404, "Project not found")
        found = [_public(f) for (r, _), f in self.functions.items() if r == ref]
        return Reply(200, found)

    def get_function(self, request: Request) -> Reply:
        function = self._find(request)
        return Reply(200, _public(function)) if function else message(404, "Function not found")

    def get_body(self, request: Request) -> Reply:
        function = self._find(request)
        if function is None:
            return message(404, "Function not found")
        return Reply(200, function["_bundle"], {"Content-Type": "application/octet-stream"})

    def update_function(self, request: Request) -> Reply:
        function = self._find(request)
        if function is None:
            return message(404, "Function not found")
        query = {k: v[0] for k, v in request.query.items()}
        for key in ("name", "entrypoint_path", "import_map_path", "ezbr_sha256"):
            if key in query:
                function[key] = query[key]
        for key in ("verify_jwt", "import_map"):
            if key in query:
                function[key] = query[key] == "true"
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind == "application/vnd.denoland.eszip":
            bundle = request.body
        elif kind == "application/json":
            body = request.json() or {}
            function.update({k: body[k] for k in ("name", "verify_jwt") if k in body})
            bundle = body["body"].encode() if "body" in body else function["_bundle"]
        else:
            return message(415, f"Unsupported content type {kind!r}")
        return Reply(200, self._deployed(function, bundle))

    def deploy(self, request: Request) -> Reply:
        ref, slug = request.params["ref"], request.query.get("slug", [""])[0]
        if ref not in self.projects:
            return message(404, "Project not found")
        parts = _multipart(request)
        if parts is None or "metadata" not in parts:
            return message(400, "metadata is required (multipart/form-data)")
        metadata = json.loads(parts["metadata"][0])
        if not slug or "entrypoint_path" not in metadata:
            return message(400, "slug and metadata.entrypoint_path are required")
        function = self.functions.get((ref, slug))
        if function is None:
            if sum(1 for r, _ in self.functions if r == ref) >= self.function_limit:
                return message(402, "Maximum number of functions reached for Plan")
            function = self.functions[(ref, slug)] = {
                "id": str(uuid.uuid4()),
                "slug": slug,
                "name": metadata.get("name", slug),
                "status": "ACTIVE",
                "version": 0,
                "created_at": self._ms(),
                "import_map": False,
            }
        function.update(
            entrypoint_path=metadata["entrypoint_path"],
            import_map_path=metadata.get("import_map_path", ""),
            verify_jwt=metadata.get("verify_jwt", True),
        )
        bundle = b"ESZIP2\n" + b"\n".join(parts.get("file", []))  # the fake's "bundler"
        return Reply(201, self._deployed(function, bundle))

    def delete_function(self, request: Request) -> Reply:
        function = self._find(request)
        if function is None:
            return message(404, "Function not found")
        del self.functions[(request.params["ref"], request.params["slug"])]
        return Reply(200)

    # --- internals ----------------------------------------------------------------------------

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def _find(self, request: Request) -> Json | None:
        return self.functions.get((request.params["ref"], request.params["slug"]))

    def _deployed(self, function: Json, bundle: bytes) -> Json:
        function.update(
            _bundle=bundle,
            version=function["version"] + 1,
            updated_at=self._ms(),
            ezbr_sha256=hashlib.sha256(bundle).hexdigest(),
        )
        return _public(function)

    def _logged(self, handler: Handler) -> Handler:
        def serve(request: Request) -> Reply:
            reply = handler(request)
            with self._rate_lock:
                rate = self._headers(self._sent.get(_bearer(request) or "", deque()))
            reply.headers = rate | reply.headers
            return self._log(request, reply)

        return serve

    def _log(self, request: Request, reply: Reply) -> Reply:
        self.exchanges.append((request, reply))
        return reply


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None


def _public(function: Json) -> Json:
    return {key: function[key] for key in _PUBLIC if key in function}


def _multipart(request: Request) -> dict[str, list[bytes]] | None:
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return None
    parsed = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode() + request.body
    )
    assert isinstance(parsed, EmailMessage)
    parts: dict[str, list[bytes]] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts.setdefault(name, []).append(payload)
    return parts
