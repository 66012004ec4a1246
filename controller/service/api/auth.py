"""Bearer-token dependencies: `Viewer`, `Operator`, `Admin` parameters of a route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from controller.service.supervisor import Service
from controller.service.tokens import Principal, Role, Tokens


def _require(role: Role) -> object:
    def check(request: Request) -> Principal:
        tokens: Tokens = request.app.state.tokens
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = tokens.authenticate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None:
            raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        if found.role < role:
            have, need = found.role.name.lower(), role.name.lower()
            raise HTTPException(403, f"{found.name} is a {have}; this needs the {need} role")
        return found

    return Depends(check)


def _error(text: str) -> dict[str, object]:
    return {"description": text, "content": {"application/json": {"example": {"detail": text}}}}


READ_ERRORS: dict[int | str, dict[str, object]] = {
    401: _error("no token, or an unknown one"),
    403: _error("the token's role is too low"),
    404: _error("unknown rollout"),
    503: _error("the store is unreachable"),
}
ACT_ERRORS: dict[int | str, dict[str, object]] = {
    **READ_ERRORS,
    202: {"description": "queued: the holding replica has not answered yet; poll `url`"},
    409: _error("the rollout's state does not allow this act"),
}


def role(name: str) -> dict[str, object]:
    """OpenAPI extension naming who may call a route (docs/api.md shows it)."""
    return {"x-tidegate-role": name}


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


Viewer = Annotated[Principal, _require(Role.VIEWER)]
Operator = Annotated[Principal, _require(Role.OPERATOR)]
Admin = Annotated[Principal, _require(Role.ADMIN)]
TheService = Annotated[Service, Depends(_service)]
