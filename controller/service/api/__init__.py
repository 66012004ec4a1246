"""The HTTP API of `tidegate serve` (FastAPI): read rollouts, act on them, receive webhooks.

Auth: `Authorization: Bearer <token>`; viewer reads, operator acts by hand, admin registers.
The token's name is the actor in the audit log; there are no anonymous writes. /healthz,
/readyz and /metrics are open (probes and scrapers); webhooks are authenticated by their
vendor's signature scheme instead of a token. The dashboard's page and script (`/`,
`/static/`) are open too: they hold no data, and read the API with the token a person gives.

Errors are 4xx with a reason (`{"detail": ...}`), never a 500 for bad input: unknown rollout
404, a manual act the state does not allow 409, a bad spec 422 with file:line, a bad
signature 401. The store being unreachable is a 503.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from controller.service.api import audit, dashboard, rollouts, signals, whoami
from controller.service.logs import correlation_id
from controller.service.supervisor import Service
from controller.service.tokens import Tokens
from controller.store.base import StoreError, UnknownRollout

log = logging.getLogger("tidegate.api")


def create_app(service: Service, tokens: Tokens) -> FastAPI:
    app = FastAPI(
        title="tidegate",
        version="1",
        description="Automated rollback decisions: rollouts, their evidence, and the acts on them.",
    )
    app.state.service = service
    app.state.tokens = tokens
    app.include_router(rollouts.router)
    app.include_router(signals.router)
    app.include_router(audit.router)
    app.include_router(whoami.router)
    dashboard.mount(app)  # `/` and `/rollouts/{id}`: the dashboard page, not part of the API
    app.middleware("http")(_correlate)
    app.add_exception_handler(StoreError, _store_error)  # type: ignore[arg-type]

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"])
    async def readyz() -> JSONResponse:
        """Ready when the store answers and this replica claimed its leases within one period."""
        problems = []
        try:
            await asyncio.to_thread(service.reader.inbox_head)
        except StoreError as exc:
            problems.append(f"store: {exc}")
        claimed = service.last_claim
        if claimed is None or service.clock() - claimed > service.config.lease.ttl:
            problems.append("leases: not claimed within one lease period")
        body = {"ready": not problems, "replica": service.config.replica, "leases": len(service.handles)}
        return JSONResponse({**body, "problems": problems}, status_code=503 if problems else 200)

    @app.get("/metrics", tags=["probes"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text format."""
        service.metrics.refresh(service)
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


async def _correlate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Every log line an API request causes carries its X-Request-ID (given, or a new one)."""
    given = request.headers.get("x-request-id", "")
    ident = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex[:16]
    token = correlation_id.set(ident)
    try:
        response = await call_next(request)
    finally:
        correlation_id.reset(token)
    response.headers["X-Request-ID"] = ident
    return response


async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
    if isinstance(exc, UnknownRollout):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    log.error("store error on %s: %s", request.url.path, exc)
    return JSONResponse({"detail": f"the store is unavailable: {exc}"}, status_code=503)
