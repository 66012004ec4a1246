"""Check JSON bodies against a vendor's published Swagger 2.0 document (tests/fakes/specs).

    argocd = Swagger.load("argocd-swagger.json")
    argocd.check("v1alpha1Application", body)               # AssertionError naming every problem

A definition is checked with jsonschema (draft 4, the dialect Swagger 2.0 builds on), `$ref`s
resolved within the same document, `date-time` formats checked. Two tightenings make the
check catch what matters in a fake or an adapter:

- strict: an object schema that lists `properties` accepts no other keys, so a misspelt
  field (`autoSync` for `automated`) fails instead of passing as "additional";
- merge patches (`check_merge_patch`): RFC 7386 bodies use null to delete a field, so every
  property may also be null — a misspelt one is still caught, null or not.

`kubernetes_json=True` is for descriptions generated from a gRPC API (Argo Rollouts'): they
spell Kubernetes types the protobuf way, while the custom resource on the Kubernetes API is
plain Kubernetes JSON. It rewrites the known differences — `Time` is an RFC 3339 string,
`IntOrString` an integer or a string, `Quantity` a string, int64 may be a JSON number — and
adds the `apiVersion`/`kind` every object carries (TypeMeta, inlined and so missing).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker

SPECS = Path(__file__).resolve().parent / "specs"
_TYPE_META = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}


class Swagger:
    def __init__(self, document: dict[str, Any], *, kubernetes_json: bool = False) -> None:
        definitions = copy.deepcopy(document["definitions"])
        if kubernetes_json:
            _as_kubernetes_json(definitions)
        self.definitions = definitions
        self._strict = {name: _strict(schema) for name, schema in definitions.items()}
        self._patch = {name: _nullable(schema) for name, schema in self._strict.items()}

    @staticmethod
    @cache
    def load(name: str, *, kubernetes_json: bool = False) -> Swagger:
        return Swagger(json.loads((SPECS / name).read_text()), kubernetes_json=kubernetes_json)

    def problems(self, definition: str, instance: Any, *, patch: bool = False) -> list[str]:
        assert definition in self.definitions, f"no definition {definition!r} in the document"
        schema = {
            "$ref": f"#/definitions/{definition}",
            "definitions": self._patch if patch else self._strict,
        }
        validator = Draft4Validator(schema, format_checker=FormatChecker(["date-time"]))
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
        ]

    def check(self, definition: str, instance: Any) -> None:
        problems = self.problems(definition, instance)
        assert not problems, f"{definition}: " + "; ".join(problems)

    def check_merge_patch(self, definition: str, patch: Any) -> None:
        problems = self.problems(definition, patch, patch=True)
        assert not problems, f"{definition} (merge patch): " + "; ".join(problems)


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: _strict(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        tightened["additionalProperties"] = False
    return tightened


def _as_kubernetes_json(definitions: dict[str, Any]) -> None:
    meta = "k8s.io.apimachinery.pkg.apis.meta.v1."
    definitions[meta + "Time"] = {"type": "string", "format": "date-time"}
    definitions["k8s.io.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["integer", "string"]}
    definitions["k8s.io.apimachinery.pkg.api.resource.Quantity"] = {"type": "string"}
    for name, schema in definitions.items():
        _int64_as_number(schema)
        if name.endswith(".v1alpha1.Rollout"):
            schema["properties"] |= _TYPE_META


def _int64_as_number(schema: Any) -> None:
    if isinstance(schema, list):
        for item in schema:
            _int64_as_number(item)
    elif isinstance(schema, dict):
        if schema.get("format") == "int64" and schema.get("type") == "string":
            schema["type"] = ["integer", "string"]
        for value in schema.values():
            _int64_as_number(value)


def _nullable(schema: Any) -> Any:
    """Every object property may also be null (RFC 7386: delete it); list items may not."""
    if isinstance(schema, list):
        return [_nullable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    loosened = {key: _nullable(value) for key, value in schema.items() if key != "properties"}
    if isinstance(schema.get("properties"), dict):
        loosened["properties"] = {
            name: {"anyOf": [_nullable(value), {"type": "null"}]}
            for name, value in schema["properties"].items()
        }
    return loosened
