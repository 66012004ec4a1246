"""rollout.yaml: valid files load, mistakes are `FILE:LINE:COL: field: what was expected`
(docs/rollouts.md "rollout.yaml"), and a stored spec (JSON) validates back to the same spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.core.model import Step
from controller.core.plan import Intent
from controller.spec import RolloutSpec, load_rollout, spec_from_json, target_views
from policies.errors import PolicyError
from policies.operations import Op

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = [REPO / "examples/demo/rollout.yaml", REPO / "controller/demo_rollout.yaml"]
TIDEGATE = str(Path(sys.executable).with_name("tidegate"))

HEAD = (
    'apiVersion: tidegate/v1\nkind: Rollout\nmetadata: {name: web}\nversion: "2.0"\npreviousVersion: "1.0"\n'
)
POLICIES = "policies: [library:runbook]\n"
TARGET = "targets:\n  - name: web\n    kind: sandbox\n    settings: {emulates: vercel}\n"


def write(folder: Path, text: str, name: str = "r.yaml") -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(folder: Path, text: str) -> str:
    """The rendered error for a rollout file, with the folder left out of the file name."""
    with pytest.raises(PolicyError) as raised:
        load_rollout(write(folder, text))
    return str(raised.value).replace(f"{folder}/", "")


# --- valid files ------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_the_shipped_examples_load(path: Path) -> None:
    spec = load_rollout(str(path))
    assert spec.version == "2.4.0"
    assert spec.previous_version == "2.3.9"
    assert spec.shape.steps == (Step(10, 600.0), Step(50, 600.0), Step(100, 7200.0))
    assert spec.shape.down_steps == (Step(50, 1800.0), Step(10, 1800.0))
    assert spec.policies == ("library:runbook",)
    assert {t.kind for t in spec.targets} == {"sandbox"}


def test_the_example_rollouts_targets_and_overrides() -> None:
    spec = load_rollout(str(EXAMPLES[0]))
    assert spec.name == "checkout-web"
    views = {view.name: view for view in target_views(spec)}
    assert list(views) == ["checkout-flag", "web", "beta-banner", "ios-app"]
    assert views["ios-app"].kind == "app-store"
    assert views["ios-app"].capabilities == frozenset({Op.PAUSE, Op.RESUME})
    assert views["beta-banner"].overrides == {
        Intent.ROLLBACK: Op.ENABLE,
        Intent.STEP_DOWN: Op.ENABLE,
        Intent.ADVANCE: None,
        Intent.PROMOTE: None,
    }


def test_defaults_are_the_documented_ladders(tmp_path: Path) -> None:
    spec = load_rollout(write(tmp_path, HEAD + POLICIES + TARGET))
    assert [(s.traffic, s.bake) for s in spec.steps] == [(10, 900.0), (50, 900.0), (100, 900.0)]
    assert [(s.traffic, s.bake) for s in spec.down_steps] == [(50, 900.0), (10, 900.0)]
    assert spec.interval is None
    assert spec.sources == ()


def test_the_on_key_is_read_as_the_word_on_not_as_true(tmp_path: Path) -> None:
    # YAML 1.1 reads a bare `on` as the boolean true; rollout.yaml means the field `on:`.
    target = TARGET + "    on: {rollback: none, step_down: set_traffic}\n"
    spec = load_rollout(write(tmp_path, HEAD + POLICIES + target))
    assert spec.targets[0].on == {Intent.ROLLBACK: "none", Intent.STEP_DOWN: Op.SET_TRAFFIC}
    assert target_views(spec)[0].overrides == {Intent.ROLLBACK: None, Intent.STEP_DOWN: Op.SET_TRAFFIC}


def test_an_unquoted_timestamp_stays_the_string_it_was_written_as(tmp_path: Path) -> None:
    source = "sources:\n  - kind: replay\n    data: data.csv\n    start: 2026-09-21T14:13:20Z\n"
    spec = load_rollout(write(tmp_path, HEAD + POLICIES + source + TARGET))
    assert spec.sources[0].start == "2026-09-21T14:13:20Z"


def test_relative_paths_are_resolved_against_the_files_folder(tmp_path: Path) -> None:
    text = (
        HEAD
        + "policies: [packs/mine.yaml, library:runbook]\n"
        + "sources:\n  - kind: replay\n    data: data.csv\n    events: feeds/events.jsonl\n"
        + TARGET
    )
    folder = tmp_path / "release"
    spec = load_rollout(write(folder, text))
    assert spec.policies == (str(folder / "packs/mine.yaml"), "library:runbook")
    assert spec.sources[0].data == str(folder / "data.csv")
    assert spec.sources[0].events == str(folder / "feeds/events.jsonl")


def test_relative_paths_from_a_relative_rollout_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "policies: [mine.yaml]\nsources:\n  - kind: replay\n    data: data.csv\n" + TARGET
    write(tmp_path / "release", text)
    monkeypatch.chdir(tmp_path)
    spec = load_rollout("release/r.yaml")
    assert spec.policies == ("release/mine.yaml",)
    assert spec.sources[0].data == "release/data.csv"


# --- errors: FILE:LINE:COL: field: message ----------------------------------------------

FIELDS = (
    "apiVersion, downSteps, interval, kind, metadata, policies, previousVersion, sources, steps, targets,"
    " version"
)

BAD_ROLLOUTS = {
    "unknown-top-level-field": (
        HEAD + "colour: blue\n" + POLICIES + TARGET,
        f"r.yaml:6:1: colour: unknown field 'colour' (expected one of: {FIELDS})",
    ),
    "unknown-field-in-a-step": (
        HEAD + POLICIES + "steps:\n  - {traffic: 10, bak: 1m}\n" + TARGET,
        "r.yaml:8:19: steps[0].bak: unknown field 'bak'",
    ),
    "unknown-field-in-a-target": (
        HEAD + POLICIES + "targets:\n  - name: web\n    kind: sandbox\n    setings: {}\n",
        "r.yaml:10:5: targets[0].setings: unknown field 'setings'",
    ),
    "steps-not-rising": (
        HEAD + POLICIES + "steps:\n  - {traffic: 50}\n  - {traffic: 10}\n" + TARGET,
        "r.yaml:8:3: steps: must rise strictly, got 50 → 10",
    ),
    "steps-repeating": (
        HEAD + POLICIES + "steps: [{traffic: 10}, {traffic: 10}]\n" + TARGET,
        "r.yaml:7:8: steps: must rise strictly, got 10 → 10",
    ),
    "down-steps-not-falling": (
        HEAD + POLICIES + "downSteps:\n  - {traffic: 10}\n  - {traffic: 50}\n" + TARGET,
        "r.yaml:8:3: downSteps: must fall strictly, got 10 → 50",
    ),
    "step-traffic-out-of-range": (
        HEAD + POLICIES + "steps:\n  - {traffic: 10}\n  - {traffic: 101}\n" + TARGET,
        "r.yaml:9:15: steps[1].traffic: input should be less than or equal to 100, got 101",
    ),
    "bad-bake": (
        HEAD + POLICIES + "steps:\n  - {traffic: 10, bake: soon}\n" + TARGET,
        "r.yaml:8:25: steps[0].bake: expected a duration like 5m, got 'soon'",
    ),
    "no-targets": (
        HEAD + POLICIES + "targets: []\n",
        "r.yaml:7:10: targets: must not be empty",
    ),
    "duplicate-target-names": (
        HEAD + POLICIES + TARGET + "  - name: web\n    kind: sandbox\n",
        "r.yaml:8:3: targets: duplicate target name(s): web",
    ),
    "unknown-target-kind": (
        HEAD + POLICIES + "targets:\n  - name: web\n    kind: kubernetes\n",
        "r.yaml:9:11: targets[0]: unknown target kind 'kubernetes' (known: ",  # every registered kind follows
    ),
    "unknown-sandbox-setting": (
        HEAD + POLICIES + TARGET.replace("vercel}", "vercel, fail_tims: 2}"),
        "r.yaml:10:45: targets[0]: sandbox settings: unknown setting 'fail_tims' (did you mean 'fail_times'?"
        " known: capabilities, delay, emulates, fail_always, fail_times, previous_version, refuse,"
        " traffic, version)",
    ),
    "bad-sandbox-emulation": (
        HEAD + POLICIES + TARGET.replace("vercel", "heroku"),
        "r.yaml:10:26: targets[0]: sandbox settings: emulates: expected 'launchdarkly', 'unleash',"
        " 'appconfig', 'argocd', 'argo-rollouts', 'vercel', 'supabase-functions', 'app-store',"
        " 'google-play' or 'generic', got 'heroku'",
    ),
    "bad-sandbox-traffic": (
        HEAD + POLICIES + "targets:\n  - name: web\n    kind: sandbox\n    settings:\n      traffic: 150\n",
        "r.yaml:11:16: targets[0]: sandbox settings: traffic: expected less than or equal to 100, got 150",
    ),
    "on-op-the-target-cannot-perform": (
        HEAD + POLICIES + TARGET + "    on: {pause: pause}\n",
        "r.yaml:11:17: targets[0].on.pause: a sandbox target cannot pause (it can: rollback, set_traffic)",
    ),
    "on-unknown-decision": (
        HEAD + POLICIES + TARGET + "    on: {panic: disable}\n",
        "r.yaml:11:9: targets[0].on: unknown decision 'panic'"
        " (expected one of: advance, step_down, rollback, pause, resume, promote)",
    ),
    "on-unknown-operation": (
        HEAD + POLICIES + TARGET + "    on:\n      rollback: fly\n",
        "r.yaml:12:7: targets[0].on: rollback: expected one of set_traffic, pause, resume, rollback,"
        " disable, enable, none, got 'fly'",
    ),
    "bad-timestamp": (
        HEAD + POLICIES + "sources:\n  - {kind: replay, data: d.csv, start: yesterday}\n" + TARGET,
        "r.yaml:8:40: sources[0].start: expected a timestamp (RFC 3339 or unix seconds), got 'yesterday'",
    ),
    "missing-previous-version": (
        HEAD.replace('previousVersion: "1.0"\n', "") + POLICIES + TARGET,
        "r.yaml:1:1: document: missing required field 'previousVersion'",
    ),
}


@pytest.mark.parametrize(("text", "expected"), BAD_ROLLOUTS.values(), ids=BAD_ROLLOUTS.keys())
def test_mistakes_name_file_line_column_and_field(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text).startswith(expected)


def test_a_missing_file_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.yaml: no such file"):
        load_rollout(str(tmp_path / "nope.yaml"))


def test_a_bad_rollout_exits_2_through_the_cli_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + POLICIES + "steps: [{traffic: 50}, {traffic: 10}]\n" + TARGET)
    result = subprocess.run(
        [TIDEGATE, "plan", path, "--decision", "rollback"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {path}:7:8: steps: must rise strictly, got 50 → 10\n"


# --- stored specs -----------------------------------------------------------------------

FULL = (
    HEAD
    + "steps:\n  - {traffic: 5, bake: 0}\n  - {traffic: 100, bake: 1h30m}\n"
    + "downSteps: [{traffic: 20, bake: 45s}]\n"
    + "interval: 15s\n"
    + "policies: [library:runbook, mine.yaml]\n"
    + "sources:\n  - {kind: replay, data: d.csv, events: e.jsonl, start: 2026-09-21T14:13:20Z}\n"
    + "targets:\n"
    + "  - {name: web, kind: sandbox, settings: {emulates: vercel, version: '2.0', traffic: 5}}\n"
    + "  - name: banner\n    kind: sandbox\n    settings: {emulates: launchdarkly, refuse: [enable]}\n"
    + "    on: {rollback: enable, advance: none}\n"
)


@pytest.mark.parametrize("by_alias", [False, True])
def test_a_stored_spec_validates_back_to_the_same_spec(tmp_path: Path, by_alias: bool) -> None:
    spec = load_rollout(write(tmp_path, FULL))
    again = spec_from_json(spec.model_dump_json(by_alias=by_alias))
    assert again == spec
    assert again.shape == spec.shape
    assert target_views(again) == target_views(spec)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_the_examples_survive_the_json_round_trip(path: Path) -> None:
    spec = load_rollout(str(path))
    assert spec_from_json(spec.model_dump_json()) == spec


def test_a_corrupt_stored_spec_is_a_tidegate_error() -> None:
    with pytest.raises(PolicyError, match="stored rollout spec"):
        spec_from_json('{"kind": "Rollout"}')


def test_a_spec_built_in_code_is_validated_the_same_way() -> None:
    with pytest.raises(ValueError, match="must rise strictly"):
        RolloutSpec.model_validate(
            {
                "apiVersion": "tidegate/v1",
                "kind": "Rollout",
                "metadata": {"name": "x"},
                "version": "2",
                "previousVersion": "1",
                "steps": [{"traffic": 50}, {"traffic": 20}],
                "policies": ["library:runbook"],
                "targets": [{"name": "web", "kind": "sandbox"}],
            }
        )
