"""docs/api.md from the OpenAPI document: `python -m controller.service.api.docs > docs/api.md`.

tests/test_api_docs.py fails when docs/api.md differs from what this prints, so the page
can never drift from the API.
"""

from __future__ import annotations

import json
from typing import Any

from controller.service.config import ServiceConfig
from controller.service.supervisor import Service
from controller.service.tokens import Tokens
from controller.store.sqlite import SqliteStore

HEADER = """\
# HTTP API

`tidegate serve` answers on `listen:` (controller.yaml). The machine-readable description is
served at `/openapi.json`; this page is generated from it
(`python -m controller.service.api.docs > docs/api.md`), and a test keeps the two equal.

**Auth.** `Authorization: Bearer <token>`. Roles are ordered — viewer < operator < admin —
and each may do what the roles below it may. Tokens come from the controller.yaml `tokens:`
file (hashes) or `$TIDEGATE_TOKENS`; the token's name is the actor in the audit log. The
probes are open; webhooks are authenticated by their vendor's signature scheme.

**Errors** are JSON `{"detail": ...}` with a 4xx status and the reason: 401 no or unknown
token, 403 role too low, 404 unknown rollout or endpoint, 409 an act the rollout's state
does not allow (or a replayed webhook), 422 invalid body (blank reason, bad spec with its
line), 503 the store is unreachable.

**Correlation.** Send `X-Request-ID` (or get one back): every log line the request causes,
including the rollout step it wakes, carries it as `correlation_id`.

**Dashboard.** `/` and `/rollouts/{id}` serve a page that reads this API with a token a
person pastes ([dashboard.md](dashboard.md)); they are not part of the API and not listed.

"""


def render(openapi: dict[str, Any]) -> str:
    lines = [HEADER]
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            who = operation.get("x-tidegate-role", "anyone")
            lines.append(f"## `{method.upper()} {path}`\n")
            lines.append(f"*{operation.get('summary', '')}* — **{who}**\n")
            description = operation.get("description", "").strip()
            if description:
                lines.append(description + "\n")
            parameters = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
            if parameters:
                listed = ", ".join(f"`{p['name']}` ({p['in']})" for p in parameters)
                lines.append(f"Parameters: {listed}.\n")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                schema = body["schema"]
                lines.append(f"Body: `{_schema_name(schema)}` — {_fields(openapi, schema)}.\n")
            codes = ", ".join(sorted(operation.get("responses", {})))
            lines.append(f"Responses: {codes}.\n")
    return "\n".join(lines).rstrip() + "\n"


def _schema_name(schema: dict[str, Any]) -> str:
    return str(schema.get("$ref", "object")).rsplit("/", 1)[-1]


def _fields(openapi: dict[str, Any], schema: dict[str, Any]) -> str:
    name = _schema_name(schema)
    model = openapi.get("components", {}).get("schemas", {}).get(name, {})
    required = set(model.get("required", []))
    parts = []
    for field, spec in model.get("properties", {}).items():
        need = "required" if field in required else "optional"
        parts.append(f"`{field}` ({need}): {spec.get('description', '')}".rstrip(": ."))
    return "; ".join(parts) or "JSON"


def openapi_document() -> dict[str, Any]:
    from controller.service.api import create_app

    store = SqliteStore(":memory:")
    try:
        service = Service(ServiceConfig(replica="docs"), store, env={})
        return dict(create_app(service, Tokens({})).openapi())
    finally:
        store.close()


if __name__ == "__main__":
    print(render(json.loads(json.dumps(openapi_document()))), end="")
