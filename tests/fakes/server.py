"""The base every vendor fake builds on: a real HTTP server on 127.0.0.1 with routes, a
request log, and hooks to inject the failures vendors produce (429 with their rate-limit
headers, 5xx, slow answers, dropped connections).

    class FakeVercel(FakeVendor):
        def __init__(self) -> None:
            super().__init__()
            self.route("GET", r"/v9/projects/(?P<project>[^/]+)", self.get_project)

        def get_project(self, request: Request) -> Reply:
            return Reply(200, {"id": request.params["project"]})

    with FakeVercel() as fake:          # fake.url is http://127.0.0.1:PORT
        ...
        fake.inject(Reply(429, {"error": {"code": "rate_limited"}}, {"Retry-After": "1"}))

Routes see a parsed `Request`; a handler returns a `Reply`. Unknown routes answer 404 with a
JSON body, as real APIs do. Everything is thread-safe: adapters drive targets in parallel.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route pattern

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow vendor)
    reset: bool = False  # drop the connection without answering


Handler = Callable[[Request], Reply]


class FakeVendor:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- configuration ---------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"/?$"), handler))

    def inject(self, reply: Reply, times: int = 1) -> None:
        """The next `times` requests (any route) get `reply` instead of the real answer."""
        with self._lock:
            self._faults.extend([reply] * times)

    def authorize(self, request: Request) -> Reply | None:
        """Override: return a 401/403 Reply when the request's credentials are wrong."""
        return None

    # --- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeVendor:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, every keep-alive answer
            # waits ~40 ms for the client's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                fake._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeVendor:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- serving ---------------------------------------------------------------------

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        split = urlsplit(http.path)
        request = Request(
            http.command,
            split.path,
            parse_qs(split.query),
            {k.lower(): v for k, v in http.headers.items()},
            body,
        )
        with self._lock:
            self.requests.append(request)
            fault = self._faults.popleft() if self._faults else None
        reply = fault or self._authorized(request) or self._dispatch(request)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.reset:
            http.connection.shutdown(socket.SHUT_RDWR)
            http.close_connection = True
            return
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        if reply.body is None:
            payload = b""
        http.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers} if payload else dict(reply.headers)
        for name, value in headers.items():
            http.send_header(name, value)
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        try:
            http.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (a timeout test): nothing to answer

    def _authorized(self, request: Request) -> Reply | None:
        return self.authorize(request)

    def _dispatch(self, request: Request) -> Reply:
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.params = {k: v for k, v in match.groupdict().items() if v is not None}
            with self._lock:  # handlers mutate the fake's state; one at a time like a database
                return handler(request)
        if allowed:
            return Reply(405, {"error": f"method {request.method} not allowed"})
        return Reply(404, {"error": f"no route for {request.method} {request.path}"})
