"""`tidegate targets check rollout.yaml` through the real console script, in a subprocess.

Targets: a sandbox, a webhook whose receiver answers on loopback, and (where a test says so)
a webhook pointing at a closed port. Exit 0 when every target is ready, 1 when one is not,
2 on a bad rollout file; credentials reported by name, never by value; nothing written.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STORE_ENV
from tests.fakes.server import Reply
from tests.fakes.webhook import FakeReceiver

TIDEGATE = Path(sys.executable).with_name("tidegate")
TOKEN = "tok-preflight-3b9d27e1c4"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReceiver]:
    with FakeReceiver(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def receiver(server: FakeReceiver) -> FakeReceiver:
    server.forget()
    state = server.target("edge")
    state.version, state.traffic = "2.0.0", 50
    return server


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_rollout(folder: Path, receiver: FakeReceiver, *, dead: bool = False) -> Path:
    edge = {
        "url": receiver.hook_url("edge"),
        "state_url": receiver.state_url("edge"),
        "token_env": "HOOK_TOKEN",
    }
    targets = [
        ("web", "sandbox", {"emulates": "vercel", "version": "2.0.0", "traffic": 50}),
        ("ios", "sandbox", {"emulates": "app-store"}),
        ("edge", "webhook", edge),
    ]
    if dead:
        port = closed_port()
        targets.append(
            (
                "legacy",
                "webhook",
                {"url": f"http://127.0.0.1:{port}/hook", "state_url": f"http://127.0.0.1:{port}/state"},
            )
        )
    listed = "".join(f"  - name: {n}\n    kind: {k}\n    settings: {json.dumps(s)}\n" for n, k, s in targets)
    path = folder / "rollout.yaml"
    path.write_text(
        "apiVersion: tidegate/v1\nkind: Rollout\nmetadata: {name: shop}\n"
        f'version: "2.0.0"\npreviousVersion: "1.9.0"\npolicies: [library:runbook]\ntargets:\n{listed}',
        encoding="utf-8",
    )
    return path


def check(cwd: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (*STORE_ENV, "HOOK_TOKEN")}
    if token is not None:
        env["HOOK_TOKEN"] = token
    return subprocess.run(
        [str(TIDEGATE), "targets", "check", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def target(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in document["targets"] if t["name"] == name)
    return found


def test_every_target_ready_exits_0_with_state_and_operations(tmp_path: Path, receiver: FakeReceiver) -> None:
    write_rollout(tmp_path, receiver)

    done = check(tmp_path, "rollout.yaml")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "  edge (webhook): ready\n    credentials  HOOK_TOKEN set\n" in out
    assert "    state        version 2.0.0, traffic 50%, not paused, enabled\n" in out
    assert "  web (sandbox, emulating vercel): ready\n    credentials  none needed\n" in out
    assert "    rollback     rollback(to 1.9.0)\n" in out
    assert "PAGE a human: app-store cannot roll back by API: ship 1.9.0 (or a fix) by hand" in out
    assert out.endswith("3 target(s): 3 ready, 0 not ready\n")
    assert receiver.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert [r.method for r in receiver.requests] == ["GET"]  # observed only: nothing was sent
    assert TOKEN not in out + done.stderr


def test_an_unreachable_target_exits_1_and_says_why(tmp_path: Path, receiver: FakeReceiver) -> None:
    write_rollout(tmp_path, receiver, dead=True)

    done = check(tmp_path, "rollout.yaml")

    assert done.returncode == 1, done.stderr
    assert "  legacy (webhook): NOT READY\n" in done.stdout
    assert "    state        NOT OBSERVED: webhook legacy: GET /state failed: " in done.stdout
    assert "Connection refused" in done.stdout
    assert "  edge (webhook): ready\n" in done.stdout  # the others are still checked
    assert done.stdout.endswith("4 target(s): 3 ready, 1 not ready\n")


def test_json_describes_each_target_and_each_decision(tmp_path: Path, receiver: FakeReceiver) -> None:
    write_rollout(tmp_path, receiver, dead=True)

    document = as_json(check(tmp_path, "rollout.yaml", "--json"))

    assert (document["rollout"], document["ready"]) == ("shop", False)
    edge = target(document, "edge")
    assert edge["ready"] is True
    assert edge["credentials"] == {"HOOK_TOKEN": True}
    assert edge["observed"] == {
        "version": "2.0.0",
        "traffic": 50,
        "paused": False,
        "enabled": True,
        "detail": "",
    }
    assert edge["decisions"]["rollback"] == {"operations": ["rollback(to 1.9.0)"], "note": None, "page": None}
    assert edge["decisions"]["promote"]["operations"] == ["set_traffic(step)", "resume"]
    legacy = target(document, "legacy")
    assert (legacy["ready"], legacy["observed"], legacy["credentials"]) == (False, None, {})
    assert "Connection refused" in legacy["error"]
    ios = target(document, "ios")
    assert ios["credentials"] is None  # a sandbox needs none
    assert ios["decisions"]["rollback"]["operations"] == ["pause"]
    assert ios["decisions"]["rollback"]["page"].startswith("app-store cannot roll back by API")
    assert set(edge["decisions"]) == {"advance", "step_down", "rollback", "pause", "resume", "promote"}


def test_a_missing_credential_is_named_and_the_target_not_ready(
    tmp_path: Path, receiver: FakeReceiver
) -> None:
    write_rollout(tmp_path, receiver)

    done = check(tmp_path, "rollout.yaml", token=None)

    assert done.returncode == 1
    assert "  edge (webhook): NOT READY\n    credentials  HOOK_TOKEN MISSING\n" in done.stdout
    assert "environment variable HOOK_TOKEN is not set" in done.stdout
    assert receiver.requests == []  # nothing was sent without it


def test_a_refused_credential_is_shown_redacted(tmp_path: Path, receiver: FakeReceiver) -> None:
    write_rollout(tmp_path, receiver)
    receiver.inject(Reply(403, {"message": f"token {TOKEN} is revoked"}))

    done = check(tmp_path, "rollout.yaml", "--json")

    assert done.returncode == 1
    edge = target(as_json(done), "edge")
    assert edge["error"] == "webhook edge: GET /hooks/edge/state → 403: token *** is revoked"
    assert TOKEN not in done.stdout + done.stderr
    assert len(receiver.requests) == 1  # refused credentials are not retried


def test_checking_changes_nothing_on_disk(tmp_path: Path, receiver: FakeReceiver) -> None:
    write_rollout(tmp_path, receiver)

    check(tmp_path, "rollout.yaml")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollout.yaml"]


def test_a_bad_rollout_file_exits_2_naming_file_and_line(tmp_path: Path, receiver: FakeReceiver) -> None:
    path = write_rollout(tmp_path, receiver)
    path.write_text(path.read_text().replace('"token_env"', '"token_envv"'), encoding="utf-8")

    done = check(tmp_path, "rollout.yaml")

    assert done.returncode == 2
    assert done.stderr.startswith("error: rollout.yaml:")
    assert "unknown setting 'token_envv' (did you mean 'token_env'?" in done.stderr
    assert "Traceback" not in done.stderr
