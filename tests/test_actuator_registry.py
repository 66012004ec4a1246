"""The target-kind registry: explicit kinds, clear errors, capabilities without side effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.actuators.registry import ACTUATORS, build_actuator, capabilities_of
from adapters.actuators.sandbox import STATE_FILE
from adapters.errors import ConfigError
from policies.errors import TidegateError
from policies.operations import Op, Operation

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("kind", sorted(ACTUATORS))
def test_every_registered_kind_has_a_test_module(kind: str) -> None:
    module = TESTS / f"test_{kind.replace('-', '_')}_actuator.py"
    assert module.is_file(), f"target kind {kind!r} is registered but {module.name} does not exist"


def test_unknown_kind_is_an_error_listing_the_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        build_actuator("foo", "web", {}, state_dir=tmp_path)
    assert str(raised.value) == f"unknown target kind 'foo' (known: {', '.join(sorted(ACTUATORS))})"
    assert raised.value.path == ()


def test_unknown_kind_has_no_capabilities_either() -> None:
    with pytest.raises(ConfigError, match="unknown target kind 'argo' "):
        capabilities_of("argo", {})


def test_misspelled_setting_is_named_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        build_actuator("sandbox", "web", {"emulate": "vercel"}, state_dir=tmp_path)
    message = str(raised.value)
    assert message.startswith("target 'web' (sandbox): unknown setting 'emulate' (did you mean 'emulates'?")
    assert raised.value.path == ("emulate",)


def test_bad_value_names_the_field_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        build_actuator("sandbox", "web", {"emulates": "vercell"}, state_dir=tmp_path)
    message = str(raised.value)
    assert message.startswith("target 'web' (sandbox): emulates: expected 'launchdarkly', ")
    assert message.endswith("got 'vercell'")
    assert raised.value.path == ("emulates",)


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        capabilities_of("sandbox", {"traffic": 150, "capabilities": ["rollback", "halt"]})
    message = str(raised.value)
    assert "traffic: expected less than or equal to 100, got 150" in message
    assert "capabilities[1]: expected 'set_traffic', " in message
    assert message.startswith("sandbox settings: ")


def test_unquoted_numeric_version_asks_for_quotes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"version: expected a string, got 2 \(quote it in YAML\)"):
        build_actuator("sandbox", "web", {"version": 2}, state_dir=tmp_path)


def test_config_errors_are_tidegate_errors_so_the_cli_renders_them() -> None:
    assert issubclass(ConfigError, TidegateError)


def test_capabilities_of_reads_settings_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert capabilities_of("sandbox", {"emulates": "app-store"}) == {Op.PAUSE, Op.RESUME}
    assert capabilities_of("sandbox", {"capabilities": ["disable"]}) == {Op.DISABLE}
    assert list(tmp_path.iterdir()) == []


def test_built_sandboxes_share_one_state_file_under_the_state_dir(tmp_path: Path) -> None:
    web = build_actuator("sandbox", "web", {"emulates": "vercel", "version": "v2"}, state_dir=tmp_path)
    flag = build_actuator("sandbox", "banner", {"emulates": "unleash"}, state_dir=tmp_path)
    assert web.capabilities == {Op.SET_TRAFFIC, Op.ROLLBACK}
    web.apply(Operation("web", Op.ROLLBACK, version="v1"), "k1")
    flag.apply(Operation("banner", Op.DISABLE), "k2")
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite3"] == [STATE_FILE]
    assert (web.observe().version, flag.observe().enabled) == ("v1", False)
