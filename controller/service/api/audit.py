"""/api/v1/audit and /api/v1/webhooks: the hash-chained log, and pushed incidents."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from adapters.sources.webhooks import (
    BadSignature,
    MalformedWebhook,
    ReplayedWebhook,
    StaleWebhook,
    WebhookError,
)
from controller.core.model import RolloutId
from controller.service.api.auth import READ_ERRORS, TheService, Viewer, role
from controller.service.api.views import iso
from controller.service.webhooks import UnknownEndpoint

router = APIRouter(prefix="/api/v1")
REJECTED = {BadSignature: 401, StaleWebhook: 401, ReplayedWebhook: 409, MalformedWebhook: 400}


@router.get("/audit", tags=["audit"], openapi_extra=role("viewer"), responses=READ_ERRORS)
async def audit(service: TheService, who: Viewer, rollout: str | None = None) -> list[dict[str, Any]]:
    """The audit log (one rollout's rows with `?rollout=`), oldest first."""
    entries = await asyncio.to_thread(
        service.reader.audit_log, None if rollout is None else RolloutId(rollout)
    )
    return [
        {
            "id": e.id,
            "at": iso(e.at),
            "actor": e.actor,
            "kind": e.kind,
            "rollout": e.rollout_id,
            "payload": json.loads(e.payload_json),
            "hash": e.hash,
        }
        for e in entries
    ]


@router.get(
    "/audit/verify",
    tags=["audit"],
    openapi_extra=role("viewer"),
    responses={**READ_ERRORS, 409: {"description": "the chain is broken: `first_bad` names the row"}},
)
async def audit_verify(service: TheService, who: Viewer) -> JSONResponse:
    """Walk the hash chain: 200 when intact, 409 naming the first bad row."""
    report = await asyncio.to_thread(service.reader.verify_audit)
    body = {"ok": report.ok, "rows": report.rows, "first_bad": report.first_bad, "reason": report.reason}
    return JSONResponse(body, status_code=200 if report.ok else 409)


@router.post(
    "/webhooks/{endpoint}",
    tags=["webhooks"],
    status_code=202,
    openapi_extra=role("vendor signature"),
    responses={
        400: {"description": "not the vendor's documented payload"},
        401: {"description": "missing, wrong or stale signature"},
        404: {"description": "no such endpoint in controller.yaml"},
        409: {"description": "this exact signed delivery was already received (a replay)"},
    },
)
async def webhook(endpoint: str, request: Request, service: TheService) -> dict[str, Any]:
    """An incident or alert delivery, verified by the endpoint's vendor scheme (no token)."""
    body = await request.body()
    try:
        added = await service.deliver(endpoint, dict(request.headers), body)
    except UnknownEndpoint as exc:
        raise HTTPException(404, str(exc)) from None
    except WebhookError as exc:
        reason = type(exc).__name__
        service.metrics.webhook_rejected.labels(endpoint=endpoint, reason=reason).inc()
        raise HTTPException(REJECTED.get(type(exc), 400), str(exc)) from None
    return {"new_events": added}
