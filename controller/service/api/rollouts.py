"""/api/v1/rollouts: list, register, inspect, and act on rollouts by hand."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from controller.cli.view import source_health_json
from controller.core.machine import NotAllowed, allowed_acts
from controller.core.model import RolloutId
from controller.service.api.auth import ACT_ERRORS, READ_ERRORS, Admin, Operator, TheService, Viewer, role
from controller.service.api.views import evaluation_json, health, iso, request_json, summary
from controller.spec import RolloutSpec, spec_from_json
from controller.store.base import EvaluationRow, Intent, Lease, RolloutRecord, SourceHealth, Store
from policies.errors import TidegateError
from policies.loader import validate_located
from policies.yamlmap import load_located

router = APIRouter(prefix="/api/v1", tags=["rollouts"], responses=READ_ERRORS)
Trigger = Literal["rollback", "pause", "resume", "promote"]


class ActRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why: recorded in the audit log.")


class RegisterRequest(BaseModel):
    spec: dict[str, Any] | None = Field(default=None, description="The rollout spec as JSON.")
    yaml: str | None = Field(default=None, description="The rollout spec as rollout.yaml text.")


async def _record(store: Store, rollout_id: str) -> RolloutRecord:
    record = await asyncio.to_thread(store.get_rollout, RolloutId(rollout_id))
    if record is None:
        raise HTTPException(404, f"unknown rollout {rollout_id}")
    return record


async def _leases(store: Store) -> dict[RolloutId, Lease]:
    return {lease.rollout_id: lease for lease in await asyncio.to_thread(store.leases)}


@router.get("/rollouts", openapi_extra=role("viewer"))
async def list_rollouts(service: TheService, who: Viewer) -> list[dict[str, Any]]:
    """Every rollout with its state, traffic, the replica holding it and its `health`: the
    rules breaching, pending (known to the holder only) and without data, and the decision."""
    records = await asyncio.to_thread(service.reader.list_rollouts)
    leases = await _leases(service.reader)
    recorded = await asyncio.to_thread(service.reader.latest_evaluations)
    now = service.clock()
    return [
        {
            **summary(record, leases.get(record.id), now),
            "health": health(service.live(record.id), recorded.get(record.id)),
        }
        for record in records
    ]


@router.post("/rollouts", status_code=201, openapi_extra=role("admin"))
async def register(body: RegisterRequest, service: TheService, who: Admin) -> dict[str, Any]:
    """Register a rollout (admin). Paths in the spec are resolved on the server."""
    record = await service.register(_parse_spec(body), who.name)
    return summary(record, None, service.clock())


@router.get("/rollouts/{rollout_id}", openapi_extra=role("viewer"))
async def get_rollout(rollout_id: str, service: TheService, who: Viewer) -> dict[str, Any]:
    """State, step, the manual `acts` the state allows, what each target was last told and
    answered (and `at`: when it answered, or was told while in flight), the rules' readings
    (when this replica holds the rollout) and each source's read health."""
    found = await asyncio.to_thread(_detail_reads, service.reader, RolloutId(rollout_id))
    if found is None:
        raise HTTPException(404, f"unknown rollout {rollout_id}")
    record, intents, evaluations, lease, health = found
    spec = parsed_spec(record.spec_json)
    targets = []
    for target in spec.targets:
        told = next((i for i in reversed(intents) if i.operation.target == target.name), None)
        targets.append(
            {
                "name": target.name,
                "kind": target.kind,
                "last_operation": None if told is None else told.operation.describe(),
                "outcome": None if told is None else told.outcome or "in flight",
                "detail": None if told is None else told.detail,
                "at": None if told is None else iso(_told_at(told)),
            }
        )
    return {
        **summary(record, next(iter(lease), None), service.clock()),
        "version": spec.version,
        "previous_version": spec.previous_version,
        "targets": targets,
        "acts": allowed_acts(record.status.state),
        "rules": service.rules_of(record.id),
        "sources": [source_health_json(h) for h in health],
        "last_evaluation": evaluation_json(evaluations[-1]) if evaluations else None,
    }


@router.get("/rollouts/{rollout_id}/evaluations", openapi_extra=role("viewer"))
async def evaluations(
    rollout_id: str, service: TheService, who: Viewer, limit: int = 500
) -> list[dict[str, Any]]:
    """Each change of the decision, newest `limit`, oldest first."""
    record = await _record(service.reader, rollout_id)
    rows = await asyncio.to_thread(service.reader.evaluations, record.id, max(1, min(limit, 10_000)))
    return [evaluation_json(row) for row in rows]


@router.get("/rollouts/{rollout_id}/decisions", openapi_extra=role("viewer"))
async def decisions(rollout_id: str, service: TheService, who: Viewer) -> list[dict[str, Any]]:
    """Decisions that moved the rollout, with the policies behind them (from the audit log)."""
    record = await _record(service.reader, rollout_id)
    entries = await asyncio.to_thread(service.reader.audit_log, record.id)
    decided = [e for e in entries if e.kind == "decision"]
    return [{"at": iso(e.at), "actor": e.actor, **json.loads(e.payload_json)} for e in decided]


@router.get("/rollouts/{rollout_id}/transitions", openapi_extra=role("viewer"))
async def transitions(rollout_id: str, service: TheService, who: Viewer) -> list[dict[str, Any]]:
    record = await _record(service.reader, rollout_id)
    rows = await asyncio.to_thread(service.reader.transitions, record.id)
    return [
        {
            "seq": t.seq,
            "at": iso(t.at),
            "trigger": t.trigger,
            "from": t.before,
            "to": t.after,
            "traffic": t.traffic,
            "reason": t.reason,
            "actor": t.actor,
        }
        for t in rows
    ]


@router.get("/rollouts/{rollout_id}/actions", openapi_extra=role("viewer"))
async def actions(rollout_id: str, service: TheService, who: Viewer) -> list[dict[str, Any]]:
    """Every operation journaled for the rollout's targets, and what each target answered."""
    record = await _record(service.reader, rollout_id)
    rows = await asyncio.to_thread(service.reader.intents, record.id)
    return [
        {
            "key": i.key,
            "seq": i.seq,
            "target": i.operation.target,
            "operation": i.operation.describe(),
            "created_at": iso(i.created_at),
            "outcome": i.outcome or "in flight",
            "detail": i.detail,
            "finished_at": None if i.finished_at is None else iso(i.finished_at),
        }
        for i in rows
    ]


@router.post(
    "/rollouts/{rollout_id}/{trigger}",
    tags=["manual acts"],
    openapi_extra=role("operator"),
    responses=ACT_ERRORS,
)
async def act(
    rollout_id: str, trigger: Trigger, body: ActRequest, service: TheService, who: Operator
) -> JSONResponse:
    """A person's rollback / pause / resume / promote; the reason is required and audited.

    200 when done, 409 when the rollout's state does not allow it, 202 when the replica
    holding the rollout has not answered within 10 s (then poll the request's `url`)."""
    record = await _record(service.reader, rollout_id)
    reason = body.reason.strip()
    if not reason:
        raise HTTPException(422, "reason must not be blank")
    try:
        request = await service.request(record.id, trigger, who.name, reason)
    except NotAllowed as exc:
        raise HTTPException(409, str(exc)) from None
    status = 202 if request.outcome is None else 409 if request.outcome == "refused" else 200
    return JSONResponse(request_json(request), status_code=status)


@router.get("/requests/{request_id}", tags=["manual acts"], openapi_extra=role("viewer"))
async def get_request(request_id: int, service: TheService, who: Viewer) -> dict[str, Any]:
    found = await asyncio.to_thread(service.reader.get_request, request_id)
    if found is None:
        raise HTTPException(404, f"unknown request {request_id}")
    return request_json(found)


def _detail_reads(
    store: Store, rollout_id: RolloutId
) -> tuple[RolloutRecord, list[Intent], list[EvaluationRow], list[Lease], list[SourceHealth]] | None:
    """Every read of a rollout's detail in one worker-thread hop."""
    record = store.get_rollout(rollout_id)
    if record is None:
        return None
    return (
        record,
        store.intents(rollout_id),
        store.evaluations(rollout_id, 1),
        store.leases(rollout_id),
        store.source_health(rollout_id),
    )


def _told_at(intent: Intent) -> float:
    return intent.finished_at if intent.finished_at is not None else intent.created_at


@functools.lru_cache(maxsize=4096)
def parsed_spec(spec_json: str) -> RolloutSpec:
    """A stored spec never changes: parse each once."""
    return spec_from_json(spec_json)


def _parse_spec(body: RegisterRequest) -> RolloutSpec:
    if (body.spec is None) == (body.yaml is None):
        raise HTTPException(422, "give the rollout as exactly one of `spec` (JSON) or `yaml` (text)")
    try:
        if body.yaml is not None:
            return validate_located(load_located(body.yaml, "rollout.yaml"), RolloutSpec, None)
        return RolloutSpec.model_validate(body.spec)
    except TidegateError as exc:  # file:line:col errors of the YAML form
        raise HTTPException(422, str(exc)) from None
    except ValueError as exc:  # pydantic's ValidationError of the JSON form
        raise HTTPException(422, f"rollout spec: {exc}") from None
