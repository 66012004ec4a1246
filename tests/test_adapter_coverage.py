"""No adapter without its registration, its tests and strict settings (issue 5: "a test fails
when an adapter exists without tests"; STYLE.md §3: one module, one line in the registry).

Every module in adapters/actuators/ other than the Protocol, the registry and the package
itself is a target kind: its settings model is registered in ACTUATORS, it has
tests/test_<kind>_actuator.py, and its settings reject unknown fields (a typo in rollout.yaml
is an error, never a silently ignored setting).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from adapters.actuators import registry
from adapters.actuators.registry import ACTUATORS, Kind

ACTUATOR_DIR = Path(registry.__file__).resolve().parent
TESTS = Path(__file__).resolve().parent
NOT_KINDS = {"__init__", "base", "registry"}
MODULES = sorted(p.stem for p in ACTUATOR_DIR.glob("*.py") if p.stem not in NOT_KINDS)


def settings_model(kind: str) -> type[BaseModel]:
    target_kind = ACTUATORS[kind]
    assert isinstance(target_kind, Kind), f"kind {kind!r} is not registered through registry.Kind"
    model: type[BaseModel] = target_kind.settings
    return model


def registered_modules() -> dict[str, list[str]]:
    """adapters.actuators.<module> → the kinds whose settings model it defines."""
    modules: dict[str, list[str]] = {}
    for kind in ACTUATORS:
        module = settings_model(kind).__module__.removeprefix("adapters.actuators.")
        modules.setdefault(module, []).append(kind)
    return modules


def test_there_are_actuator_modules_to_check() -> None:
    assert {"sandbox", "webhook", "command"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_every_actuator_module_is_a_registered_kind(module: str) -> None:
    assert module in registered_modules(), (
        f"adapters/actuators/{module}.py defines no registered target kind: add it to ACTUATORS "
        "in adapters/actuators/registry.py"
    )


@pytest.mark.parametrize("module", MODULES)
def test_every_actuator_module_has_a_test_module(module: str) -> None:
    kinds = registered_modules().get(module, [module])
    wanted = [f"test_{kind.replace('-', '_')}_actuator.py" for kind in kinds]
    missing = [name for name in wanted if not (TESTS / name).is_file()]
    assert not missing, f"adapters/actuators/{module}.py has no tests: {', '.join(missing)} missing"


@pytest.mark.parametrize("kind", sorted(ACTUATORS))
def test_every_registered_kind_forbids_unknown_settings(kind: str) -> None:
    model = settings_model(kind)
    assert model.model_config.get("extra") == "forbid", (
        f"{model.__module__}.{model.__qualname__} must set ConfigDict(extra='forbid')"
    )


@pytest.mark.parametrize("kind", sorted(ACTUATORS))
def test_every_registered_kind_lives_in_its_own_actuator_module(kind: str) -> None:
    module = settings_model(kind).__module__
    assert module.startswith("adapters.actuators."), f"kind {kind!r}: settings defined in {module}"
    assert module.removeprefix("adapters.actuators.") in MODULES
