"""Load policy packs from files (or `library:NAME`) into validated models.

Every mistake becomes a PolicyError naming file, line and field, in words a person can act
on: `runbook.yaml:12:10: policies[1].for: expected a duration like 5m, got 'five minutes'`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast, get_args

from pydantic import BaseModel, ValidationError

from policies.errors import PolicyError
from policies.schema import POLICY_MODELS, Policy, PolicyPack
from policies.yamlmap import Located, load_located
from policies.yamlmap import Path as YamlPath

LIBRARY_PREFIX = "library:"
_M = TypeVar("_M", bound=BaseModel)


def library_names() -> list[str]:
    folder = resources.files("policies") / "library"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_source(ref: str) -> tuple[str, str]:
    """(text, display name) of a pack given as a path or as `library:NAME`."""
    if ref.startswith(LIBRARY_PREFIX):
        name = ref.removeprefix(LIBRARY_PREFIX)
        if name not in library_names():
            known = ", ".join(library_names())
            raise PolicyError(ref, None, f"no shipped pack named {name!r} (shipped: {known})")
        resource = resources.files("policies") / "library" / f"{name}.yaml"
        return resource.read_text(encoding="utf-8"), ref
    path = Path(ref)
    try:
        return path.read_text(encoding="utf-8"), ref
    except FileNotFoundError:
        raise PolicyError(ref, None, "no such file") from None
    except IsADirectoryError:
        raise PolicyError(ref, None, "is a directory, expected a policy pack file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(ref, None, f"cannot read: {exc}") from None


def load_pack(ref: str) -> PolicyPack:
    text, name = read_source(ref)
    return parse_pack(text, name)


def load_packs(refs: Sequence[str]) -> list[PolicyPack]:
    """Several packs that will be evaluated together: policy ids must be unique across them."""
    packs = [load_pack(ref) for ref in refs]
    owner: dict[str, str] = {}
    for ref, pack in zip(refs, packs, strict=True):
        for index, policy in enumerate(pack.policies):
            if policy.id in owner:
                # Point at the offending id like every other pack error (FILE:LINE:COL: path).
                path: YamlPath = ("policies", index, "id")
                located = load_located(read_source(ref)[0], ref)
                message = f"{_dotted(path)}: policy id {policy.id!r} is also defined in {owner[policy.id]}"
                raise located.error(path, message)
            owner[policy.id] = ref
    return packs


def parse_pack(text: str, file: str) -> PolicyPack:
    located = load_located(text, file)
    return validate_located(located, PolicyPack, policies_of(located))


def policies_of(located: Located) -> list[Policy]:
    """Validate each entry of `policies:` against the model its rule keyword selects."""
    raw = located.value.get("policies") if isinstance(located.value, dict) else None
    if not isinstance(raw, list):
        return []
    built: list[Policy] = []
    ids: dict[str, int] = {}
    for index, entry in enumerate(raw):
        path: YamlPath = ("policies", index)
        model = _model_for(entry, path, located)
        policy = cast(Policy, validate_located(located, model, None, entry, path))
        if policy.id in ids:
            first = f"policies[{ids[policy.id]}]"
            message = f"{_dotted((*path, 'id'))}: duplicate policy id {policy.id!r} (first at {first})"
            raise located.error((*path, "id"), message)
        ids[policy.id] = index
        built.append(policy)
    return built


def _model_for(entry: Any, path: YamlPath, located: Located) -> type[BaseModel]:
    if not isinstance(entry, dict):
        raise located.error(path, f"{_dotted(path)}: expected a mapping (a policy), got {_kind(entry)}")
    keywords = [key for key in POLICY_MODELS if key in entry]
    if len(keywords) != 1:
        found = " and ".join(f"{k}:" for k in keywords) if keywords else "none"
        raise located.error(
            path,
            f"{_dotted(path)}: a policy needs exactly one of when: (threshold), count: (events) "
            f"or drift: (change against a baseline); found {found}",
        )
    return POLICY_MODELS[keywords[0]]


def validate_located(
    located: Located,
    model: type[_M],
    policies: list[Policy] | None,
    value: Any = None,
    path: YamlPath = (),
) -> _M:
    """`model.model_validate` whose errors point into the YAML file."""
    data = located.value if value is None else value
    if not isinstance(data, dict):
        raise located.error(path, f"{_dotted(path) or 'document'}: expected a mapping, got {_kind(data)}")
    if policies is not None and isinstance(data.get("policies"), list):
        data = {**data, "policies": policies}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, located, path, model) from None


def _first_error(
    exc: ValidationError, located: Located, base: YamlPath, model: type[BaseModel]
) -> PolicyError:
    # Report the mistake that comes first in the file, as a person reads it. A missing field
    # has no line of its own, and is often the typo'd key reported as unknown: report it last.
    errors = exc.errors(include_url=False)
    present = [e for e in errors if e["type"] != "missing"] or errors
    error = min(present, key=lambda e: located.where((*base, *_strip_union_tags(tuple(e["loc"])))))
    loc = _strip_union_tags(tuple(error["loc"]))
    path = (*base, *loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        names = sorted(_field_names(model, tuple(error["loc"])[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        message = f"{_dotted(path)}: unknown field {loc[-1]!r} ({hint}expected one of: {', '.join(names)})"
        return located.error(path, message, key=True)
    if kind == "missing":
        return located.error(
            path[:-1], f"{_dotted(path[:-1]) or 'document'}: missing required field {loc[-1]!r}"
        )
    return located.error(path, f"{_dotted(path)}: {_describe(error)}")


def _describe(error: Any) -> str:
    message = str(error["msg"])
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    got = error.get("input")
    shown = f", got {got!r}" if not isinstance(got, dict | list) else ""
    kind = error["type"]
    expectations = {
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "string_type": "expected a string",
        "bool_type": "expected true or false",
        "tuple_type": "expected a list",
        "list_type": "expected a list",
        "dict_type": "expected a mapping",
        "model_type": "expected a mapping",
        "enum": f"expected one of {_enum_choices(error)}",
        "literal_error": f"expected {_literal_choices(error)}",
        "string_pattern_mismatch": "expected lower-case letters, digits, '.', '_' or '-'",
        "too_short": "must not be empty",
    }
    if kind in expectations:
        return expectations[kind] + shown
    return message[0].lower() + message[1:] + shown


def _enum_choices(error: Any) -> str:
    expected = str(error.get("ctx", {}).get("expected", ""))
    return expected.replace("'", "") or "the allowed values"


def _literal_choices(error: Any) -> str:
    return str(error.get("ctx", {}).get("expected", "an allowed value"))


def _strip_union_tags(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic inserts the member model's name (a CamelCase class name, or a tag spelled
    # like one) into the path of union errors; our field names never start upper-case.
    return tuple(part for part in loc if not (isinstance(part, str) and part[:1].isupper()))


def _field_names(model: type[BaseModel], loc: Iterable[Any]) -> list[str]:
    current: type[BaseModel] | None = model
    annotation: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        if part[:1].isupper():  # a union's tag: the member the error is about (tag = class name)
            current = _model_in(annotation, part) or current
            continue
        field = current.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        current = _model_in(annotation) if field is not None else None
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any, name: str | None = None) -> type[BaseModel] | None:
    """The model a field holds (the one called `name`, in a union), looking through
    tuple[...], list[...], Annotated[...] and X | None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation if name is None or annotation.__name__ == name else None
    for argument in get_args(annotation):
        found = _model_in(argument, name)
        if found is not None:
            return found
    return None


def _dotted(path: YamlPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )
