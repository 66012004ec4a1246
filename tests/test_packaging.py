"""The Dockerfile, the compose example and the CI examples do what they say.

No image can be built here (no registry to pull the base image from), so the Dockerfile is
checked for what matters — non-root, a healthcheck, the same entry point — and its
healthcheck command is run for real against a live `tidegate serve`. The compose example's
controller.yaml and rollout load; the CI jobs' `tidegate gate` line runs as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from controller.service.config import load_config
from controller.spec import load_rollout
from tests.prometheus_server import free_port
from tests.serve_process import TIDEGATE, Replica

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instruction(name: str) -> str:
    found = re.findall(rf"^{name} (.+?)(?<!\\)$", DOCKERFILE.replace("\\\n", " "), re.MULTILINE)
    assert found, f"no {name} in the Dockerfile"
    return str(found[-1])


def test_the_image_runs_tidegate_serve_as_a_non_root_user() -> None:
    user = _instruction("USER").strip()
    assert user not in ("root", "0")
    assert json.loads(_instruction("ENTRYPOINT")) == ["tidegate"]
    assert json.loads(_instruction("CMD"))[0] == "serve"
    assert "-r requirements.lock" in DOCKERFILE  # the pinned versions, not a fresh resolve


def test_the_healthcheck_command_asks_healthz(tmp_path: Path) -> None:
    command = json.loads(_instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    assert command[0] == "python"
    replica = Replica.start(tmp_path, "health", store=str(tmp_path / "state.db"))
    try:
        port = replica.url.rsplit(":", 1)[1]
        live = [part.replace("8080", port) for part in command]
        assert subprocess.run(live, check=False, timeout=30).returncode == 0
    finally:
        replica.terminate()
    dead = [part.replace("8080", str(free_port())) for part in command]
    assert subprocess.run(dead, check=False, capture_output=True, timeout=30).returncode != 0


def test_the_compose_example_wires_two_replicas_to_one_database() -> None:
    compose = yaml.safe_load((ROOT / "examples" / "serve" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "prometheus", "tidegate-a", "tidegate-b"} <= set(services)
    for name in ("tidegate-a", "tidegate-b"):
        assert services[name]["environment"]["TIDEGATE_DATABASE_URL"].startswith("postgresql://")
    config = load_config(str(ROOT / "examples" / "serve" / "controller.yaml"))
    assert config.rollouts is not None
    for path in Path(config.rollouts).glob("*.yaml"):
        load_rollout(str(path))  # validates sources and targets offline


def _gate_lines(path: Path) -> list[str]:
    text = path.read_text()
    commands = [line.split("run:", 1)[-1].strip(" -") for line in text.splitlines()]
    return [command for command in commands if command.startswith("tidegate gate")]


def _credentials(rollout: Path) -> dict[str, str]:
    """Stand-ins for every credential the rollout names (a real EC key where one is parsed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    names = re.findall(r"(?:token|private_key)_env: (\w+)", rollout.read_text())
    return {name: pem if "KEY" in name else f"stand-in-{name.lower()}" for name in names}


def test_the_ci_examples_gate_command_runs_as_written(tmp_path: Path) -> None:
    lines = _gate_lines(ROOT / "examples" / "ci" / "github-actions.yml")
    lines += _gate_lines(ROOT / "examples" / "ci" / "gitlab-ci.yml")
    assert len(lines) == 2
    for line in lines:
        argv = shlex.split(line)
        assert argv[:2] == ["tidegate", "gate"]
        # --dry-run: decide and print, touch no (real, credentialed) target
        command = [TIDEGATE, *argv[1:], "--dry-run", "--state", str(tmp_path / "state.db")]
        env = {**os.environ, **_credentials(ROOT / argv[2])}
        done = subprocess.run(
            command, cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=120
        )
        assert done.returncode in (0, 1, 3), done.stderr
        assert "rolled back" in done.stdout or "healthy" in done.stdout or "inconclusive" in done.stdout
    for path in (ROOT / "examples" / "ci").glob("*.yml"):
        yaml.safe_load(path.read_text())
