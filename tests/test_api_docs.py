"""docs/api.md is generated from the OpenAPI document; it must not drift from the API."""

from __future__ import annotations

from pathlib import Path

from controller.service.api.docs import openapi_document, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_docs_api_md_matches_the_served_openapi() -> None:
    expected = render(openapi_document())
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/api.md is stale: run `.venv/bin/python -m controller.service.api.docs > docs/api.md`"
    )


def test_every_route_names_who_may_call_it() -> None:
    document = openapi_document()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path.startswith("/api/"):
                assert "x-tidegate-role" in operation, f"{method.upper()} {path}"
