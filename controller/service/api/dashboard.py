"""The dashboard at `/` and `/rollouts/{id}`: one page and its script, shipped in the package
(controller/web/static), reading the same API as everyone else with the token the person
gives it. Nothing is built or fetched from elsewhere; the CSP keeps it that way."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(str(resources.files("controller.web").joinpath("static")))
# Scripts and styles from this server only; the page talks to this server only.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def rollouts_page() -> HTMLResponse:
    return _page()


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse)
async def rollout_page(rollout_id: str) -> HTMLResponse:
    return _page()  # the script reads the id from the address


def _page() -> HTMLResponse:
    return HTMLResponse((STATIC / "dashboard.html").read_text(encoding="utf-8"), headers=HEADERS)


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
