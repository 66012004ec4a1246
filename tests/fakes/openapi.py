"""Check HTTP exchanges against a vendor's published OpenAPI 3.0 document (tests/fakes/specs).

    supabase = OpenApi.load("supabase-management-openapi.json")
    supabase.check(request, reply)     # AssertionError naming every problem with either side

The request side (what an adapter sent): the operation exists for the method and path; path
and query parameters are documented and valid against their schemas (query strings coerced
to the schema's boolean / integer first), required ones present; the bearer credential the
document's `security` asks for is there; the body's media type is one the operation accepts
and a JSON or multipart body is valid against its schema. The response side (what a fake
answered): the status is documented for the operation (or listed in `undocumented_ok`, for
codes a vendor answers in practice, like Supabase's 404 for an unknown function), and a JSON
body is valid against the documented schema.

Schemas are checked with jsonschema (draft 4, close to OpenAPI 3.0's dialect), `$ref`s resolved
through a `referencing` registry holding the whole document. As in swagger.py, an object
schema that lists `properties` is made strict (no other keys), so a misspelt or leaked field
fails instead of passing as "additional".
"""

from __future__ import annotations

import copy
import json
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.fakes.server import Reply, Request

SPECS = Path(__file__).resolve().parent / "specs"
URI = "urn:tidegate:openapi"
# Supabase documents its binary bundle download as a JSON object ("StreamableFile"); the API
# answers bytes. Such a schema accepts any non-JSON body.
BINARY_AS_JSON = "#/components/schemas/StreamableFile"


class OpenApi:
    def __init__(self, document: dict[str, Any], *, undocumented_ok: frozenset[int] = frozenset()) -> None:
        self.document = document
        self.undocumented_ok = undocumented_ok
        strict = _strict(copy.deepcopy(document))
        resource = Resource.from_contents(strict, default_specification=DRAFT4)
        self.registry: Registry[Any] = Registry().with_resource(URI, resource)
        self._operations = sorted(
            (
                (template.count("{"), method.upper(), _pattern(template), template)
                for template, item in document["paths"].items()
                for method in item
                if method in ("get", "put", "post", "patch", "delete")
            ),
            key=lambda entry: entry[0],  # literal segments first: /functions/deploy before /{slug}
        )

    @staticmethod
    @cache
    def load(name: str, *, undocumented_ok: frozenset[int] = frozenset()) -> OpenApi:
        return OpenApi(json.loads((SPECS / name).read_text()), undocumented_ok=undocumented_ok)

    def check(self, request: Request, reply: Reply) -> None:
        problems = self.request_problems(request) + self.response_problems(request, reply)
        assert not problems, f"{request.method} {request.path}: " + "; ".join(problems)

    # --- the request ----------------------------------------------------------------------------

    def request_problems(self, request: Request) -> list[str]:
        found = self._operation(request.method, request.path)
        if found is None:
            return ["no such operation in the document"]
        pointer, operation, path_values = found
        problems = self._parameter_problems(pointer, operation, request, path_values)
        if operation.get("security") and not request.headers.get("authorization", "").startswith("Bearer "):
            problems.append("no bearer credential")
        return problems + self._body_problems(pointer, operation, request)

    def _parameter_problems(
        self, pointer: str, operation: dict[str, Any], request: Request, path_values: dict[str, str]
    ) -> list[str]:
        problems = []
        documented = {(p["in"], p["name"]): (i, p) for i, p in enumerate(operation.get("parameters", []))}
        for name in request.query:
            if ("query", name) not in documented:
                problems.append(f"query parameter {name!r} is not documented")
        for (where, name), (index, parameter) in documented.items():
            values = {"path": [path_values.get(name)], "query": request.query.get(name)}.get(where)
            if not values or values[0] is None:
                if parameter.get("required"):
                    problems.append(f"{where} parameter {name!r} is required")
                continue
            value = _coerce(values[0], parameter.get("schema", {}))
            at = f"{pointer}/parameters/{index}/schema"
            problems += [f"{where} parameter {name!r}: {p}" for p in self._schema_problems(at, value)]
        return problems

    def _body_problems(self, pointer: str, operation: dict[str, Any], request: Request) -> list[str]:
        body = operation.get("requestBody")
        if body is None:
            return [] if not request.body else ["a body was sent to an operation that takes none"]
        media = request.headers.get("content-type", "").split(";")[0].strip()
        if media not in body["content"]:
            return [f"media type {media!r} is not one of {sorted(body['content'])}"]
        at = f"{pointer}/requestBody/content/{_escape(media)}/schema"
        if media == "application/json":
            return self._schema_problems(at, json.loads(request.body or b"null"))
        if media == "multipart/form-data":
            return self._schema_problems(at, _form(request))
        return [] if request.body else [f"an empty {media} body"]

    # --- the response ---------------------------------------------------------------------------

    def response_problems(self, request: Request, reply: Reply) -> list[str]:
        found = self._operation(request.method, request.path)
        if found is None:
            return []
        pointer, operation, _ = found
        documented = operation.get("responses", {}).get(str(reply.status))
        if documented is None:
            if reply.status in self.undocumented_ok:
                return []
            return [f"status {reply.status} is not documented (documented: {sorted(operation['responses'])})"]
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        if schema.get("$ref") == BINARY_AS_JSON:
            return [] if isinstance(reply.body, bytes) else ["the body should be the binary bundle"]
        at = f"{pointer}/responses/{reply.status}/content/application~1json/schema"
        return self._schema_problems(at, reply.body)

    # --- internals ------------------------------------------------------------------------------

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]] | None:
        for _, wanted, pattern, template in self._operations:
            match = pattern.fullmatch(path)
            if match is not None and wanted == method:
                operation = self.document["paths"][template][method.lower()]
                return f"#/paths/{_escape(template)}/{method.lower()}", operation, match.groupdict()
        return None

    def _schema_problems(self, pointer: str, instance: Any) -> list[str]:
        validator = Draft4Validator({"$ref": URI + pointer}, registry=self.registry)
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
        ]


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "array":  # style form, explode false (App Store Connect's filters): comma-separated
        return [_coerce(item, schema.get("items", {})) for item in value.split(",")]
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    if kind == "integer" and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return value


def _form(request: Request) -> dict[str, Any]:
    """A multipart/form-data body as the schema sees it: JSON parts parsed, files as strings."""
    kind = request.headers.get("content-type", "")
    parsed = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode() + request.body
    )
    assert isinstance(parsed, EmailMessage)
    form: dict[str, Any] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes), "a form part without a name"
        if part.get_content_type() == "application/json" or name == "metadata":
            form[name] = json.loads(payload)
        else:
            form.setdefault(name, []).append(payload.decode("latin-1"))
    return form


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: _strict(value) for key, value in schema.items()}
    if schema.get("type") == "object" and schema.get("properties") and "additionalProperties" not in schema:
        tightened["additionalProperties"] = False
    return tightened
