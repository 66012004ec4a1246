"""/api/v1/whoami: the token's name and role, so a client (the dashboard) shows only the acts
the role allows. The server still checks the role on every act."""

from __future__ import annotations

from fastapi import APIRouter

from controller.service.api.auth import READ_ERRORS, Viewer, role

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.get(
    "/whoami",
    openapi_extra=role("viewer"),
    responses={code: READ_ERRORS[code] for code in (401, 403)},
)
async def whoami(who: Viewer) -> dict[str, str]:
    """The bearer token's name (the actor the audit log records) and role."""
    return {"name": who.name, "role": who.role.name.lower()}
