"""Every shipped example rollout loads and plans every decision (`tidegate plan … --decision D`
exits 0), so the files docs/adapters.md points people at never rot.

`plan` maps decisions onto declared capabilities only: no network, no credentials, no state.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli.main import app
from controller.core.plan import Intent
from controller.spec import load_rollout

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROLLOUTS = sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*/rollout.yaml")])
IDS = [str(path.relative_to(EXAMPLES)) for path in ROLLOUTS]


def test_the_examples_folder_has_the_documented_rollouts() -> None:
    assert {"rollout.yaml", "demo/rollout.yaml"} <= set(IDS)


@pytest.mark.parametrize("path", ROLLOUTS, ids=IDS)
def test_the_spec_loads_and_its_replay_files_exist(path: Path) -> None:
    spec = load_rollout(str(path))
    assert spec.targets
    for source in spec.sources:
        if source.data is not None:
            assert Path(source.data).is_file(), source.data
        if source.events is not None:
            assert Path(source.events).is_file(), source.events


@pytest.mark.parametrize("decision", [intent.value for intent in Intent])
@pytest.mark.parametrize("path", ROLLOUTS, ids=IDS)
def test_tidegate_plan_works_for_every_decision(path: Path, decision: str) -> None:
    result = CliRunner().invoke(app, ["plan", str(path), "--decision", decision])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"plan for {load_rollout(str(path)).name}: {decision}")
    for target in load_rollout(str(path)).targets:
        assert f"  {target.name} " in result.output


def test_the_main_example_rolls_back_every_real_kind_as_docs_adapters_md_says() -> None:
    result = CliRunner().invoke(app, ["plan", str(EXAMPLES / "rollout.yaml"), "--decision", "rollback"])

    lines = {line.split()[0]: line for line in result.output.splitlines()[1:] if not line.startswith(" " * 4)}
    assert "disable" in lines["checkout-flag"]
    assert "rollback(to 2.3.9)" in lines["backend"]
    assert "rollback(to 2.3.9)" in lines["web"]
    assert "rollback(to 2.3.9)" in lines["voucher-fn"]
    assert "pause" in lines["ios-app"]
    assert "enable" in lines["beta-banner"]
    assert "PAGE a human: app-store cannot roll back by API" in result.output
