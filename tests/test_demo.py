"""`tidegate demo`: the bundled incident replayed through the real engine, in a fresh directory.

The story (controller/demo.py, controller/simulator.py `demo_spec`): checkout 2.4.0 goes
10 → 50 → 100 % on five sandbox targets; p95 latency degrades 40 minutes in and the rollout
steps down to 50 % on latency-p95; the error rate follows at 70 minutes and error-rate rolls
everything back — the App Store release, which cannot be rolled back by API, is paused and a
human is paged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.actuators.sandbox import STATE_FILE, Sandbox, SandboxSettings
from tests.conftest import STORE_ENV

TIDEGATE = Path(sys.executable).with_name("tidegate")
DemoRun = tuple[Path, subprocess.CompletedProcess[str]]
RESULT = re.compile(r"^(checkout-demo-[0-9a-f]+): rolled back", re.MULTILINE)


def tidegate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in STORE_ENV and k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run(
        [str(TIDEGATE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def transitions(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"^\S+Z\s+transition\s", line)]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    cwd = tmp_path_factory.mktemp("demo")
    return cwd, tidegate(cwd, "demo")


def test_the_demo_exits_0_and_steps_down_on_latency_before_rolling_back(
    first_run: DemoRun,
) -> None:
    _, done = first_run
    assert done.returncode == 0, done.stdout + done.stderr
    moves = transitions(done.stdout)

    step_down = [i for i, line in enumerate(moves) if "→ stepping_down at 50%" in line]
    assert step_down, "\n".join(moves)
    assert "latency-p95" in moves[step_down[0]]
    rollback = [i for i, line in enumerate(moves) if "→ rolling_back" in line]
    assert rollback and rollback[0] > step_down[0], "\n".join(moves)
    assert "→ rolled_back" in moves[-1]


def test_the_demo_rolls_back_on_the_error_rate(
    first_run: DemoRun,
) -> None:
    """The scenario's second act: errors follow the latency at 70 minutes and error-rate,
    not another rule, is what rolls the release back."""
    _, done = first_run
    (rolling_back,) = [line for line in transitions(done.stdout) if "→ rolling_back" in line]
    assert "error-rate" in rolling_back, rolling_back


def test_the_demo_pauses_the_app_store_release_and_pages_a_human(
    first_run: DemoRun,
) -> None:
    cwd, done = first_run
    assert re.search(r"^\S+Z\s+page\s+PAGE a human: ios-app: ", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^\S+Z\s+action\s+ios-app: pause → (applied|already_done)", done.stdout, re.MULTILINE)
    (rollout_id,) = RESULT.findall(done.stdout)
    assert f"final state of {rollout_id}: rolled_back at 0%" in done.stdout
    assert "audit chain: intact" in done.stdout

    targets = cwd / ".tidegate" / "targets" / rollout_id / STATE_FILE
    ios = Sandbox("ios-app", SandboxSettings.model_validate({"emulates": "app-store"}), targets).state()
    assert ios.paused and ios.version == "2.4.0"  # paused, not rolled back: a human ships 2.3.9
    backend = Sandbox("backend", SandboxSettings.model_validate({"emulates": "argocd"}), targets).state()
    assert backend.version == "2.3.9"


def test_the_demo_runs_again_as_a_new_rollout_and_the_store_stays_verifiable(tmp_path: Path) -> None:
    runs = [tidegate(tmp_path, "demo") for _ in range(2)]

    assert [done.returncode for done in runs] == [0, 0], runs[-1].stderr
    ids = [RESULT.findall(done.stdout)[0] for done in runs]
    assert ids[0] != ids[1]
    assert f"final state of {ids[1]}:" in runs[1].stdout  # the second run reports itself

    verified = tidegate(tmp_path, "audit", "verify")
    assert verified.returncode == 0, verified.stdout
    listed = tidegate(tmp_path, "status")
    assert listed.returncode == 0
    assert re.search(rf"^{ids[0]}\s+rolled_back\s+0%", listed.stdout, re.MULTILINE), listed.stdout
    rows = json.loads(tidegate(tmp_path, "status", "--json").stdout)
    assert sorted((row["id"], row["state"]) for row in rows) == sorted((i, "rolled_back") for i in ids)
