"""Every notifier kind is registered, has its test module, and its settings reject unknown
fields (STYLE.md §3: one module, one line in the registry; a kind without tests fails here)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from controller.notify import NOTIFIERS, NotifierSpec

TESTS = Path(__file__).resolve().parent


def specs() -> dict[str, type[BaseModel]]:
    """kind → its settings model, read from the NotifierSpec union."""
    union = typing.get_args(NotifierSpec)[0]
    models = [typing.get_args(member)[0] for member in typing.get_args(union)]
    return {typing.get_args(model.model_fields["kind"].annotation)[0]: model for model in models}


def test_every_configurable_kind_has_a_builder_and_every_builder_a_kind() -> None:
    assert set(specs()) == set(NOTIFIERS) == {"slack", "webhook"}


@pytest.mark.parametrize("kind", sorted(NOTIFIERS))
def test_every_notifier_kind_has_a_test_module(kind: str) -> None:
    assert (TESTS / f"test_notify_{kind}.py").is_file(), (
        f"notifier {kind!r} has no tests/test_notify_{kind}.py"
    )


@pytest.mark.parametrize("kind", sorted(NOTIFIERS))
def test_every_notifier_settings_model_forbids_unknown_fields(kind: str) -> None:
    assert specs()[kind].model_config.get("extra") == "forbid"
