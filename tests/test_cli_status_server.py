"""`tidegate status --server URL`: the local status, read through a running `tidegate serve`.

A real `tidegate serve` process on the real PostgreSQL holds two rollouts: `web` with two
sandbox targets and a `sql` source that cannot connect (so its source health has failed
reads and a last error), and `search` on pushed incidents only. `tidegate status` run with
the server's store (TIDEGATE_DATABASE_URL) and with `--server` must print the same: plain
lines, JSON and the table on a terminal. Every way it can fail is one line and exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.cli.remote import RemoteError
from controller.cli.status import rows_from_server, status_lines
from policies.timestamps import parse_timestamp
from tests.conftest import STORE_ENV, PostgresTestDatabase, require_postgres
from tests.prometheus_server import free_port
from tests.serve_process import TIDEGATE, TOKENS, Replica
from tests.serve_rollouts import rollout_text, write_pack
from tests.terminal import in_terminal
from tests.test_serve_api import wait_for

UNREACHABLE_DSN = "postgresql://postgres:hunter2-pw@127.0.0.1:1/test"  # nothing listens on port 1

PACK = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: web-health}
interval: 1s
policies:
  - id: error-rate
    signal: error_rate
    when: "> 0.05"
    window: 1m
    on_no_data: ok
    action: rollback
"""

# Ticks an hour apart: after the first one nothing changes while the test compares.
WEB = """\
apiVersion: tidegate/v1
kind: Rollout
metadata: {{name: web}}
version: "2.0.0"
previousVersion: "1.9.0"
interval: 1h
steps:
  - {{traffic: 10, bake: 1h}}
  - {{traffic: 100, bake: 1h}}
policies: [{pack}]
sources:
  - kind: sql
    name: health
    settings:
      dsn_env: STATUS_TEST_DSN
      signals:
        error_rate: "select 0 as num, 100 as den"
targets:
  - name: web-flag
    kind: sandbox
    settings: {{emulates: launchdarkly, version: "2.0.0", previous_version: "1.9.0"}}
  - name: web-app
    kind: sandbox
    settings: {{emulates: vercel, version: "2.0.0", previous_version: "1.9.0"}}
"""


@dataclass(frozen=True)
class Served:
    replica: Replica
    database: PostgresTestDatabase
    workdir: Path

    def status(self, *args: str, token: str | None = TOKENS["viewer"]) -> subprocess.CompletedProcess[str]:
        """`tidegate status ARGS --server URL` with `token` in $TIDEGATE_TOKEN (None: unset)."""
        return self.run("status", *args, "--server", self.replica.url, env=remote_env(token))

    def local_status(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`tidegate status ARGS` reading the server's store itself."""
        return self.run("status", *args, env=local_env(self.database))

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TIDEGATE, *args],
            check=False,
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def remote_env(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*STORE_ENV, "TIDEGATE_TOKEN")}
    return env if token is None else {**env, "TIDEGATE_TOKEN": token}


def local_env(database: PostgresTestDatabase) -> dict[str, str]:
    return {**remote_env(None), **database.env()}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_postgres()
    database = PostgresTestDatabase(f"tidegate_status_{uuid.uuid4().hex[:10]}")
    workdir = tmp_path_factory.mktemp("status-server")
    rollouts = workdir / "rollouts"
    rollouts.mkdir()
    (workdir / "web-pack.yaml").write_text(PACK)
    (rollouts / "web.yaml").write_text(WEB.format(pack=workdir / "web-pack.yaml"))
    (rollouts / "search.yaml").write_text(rollout_text("search", write_pack(workdir), interval="1h"))
    replica = Replica.start(
        workdir, "status-1", store=database.url, rollouts=rollouts, env={"STATUS_TEST_DSN": UNREACHABLE_DSN}
    )
    try:
        wait_for(lambda: settled(replica), "both rollouts start and web's source reads are recorded")
        yield Served(replica, database, workdir)
    finally:
        replica.terminate()
        database.drop()


def settled(replica: Replica) -> bool:
    rows = replica.get("/api/v1/rollouts").json()
    if sorted(row["state"] for row in rows) != ["progressing", "progressing"]:
        return False
    details = [replica.get(f"/api/v1/rollouts/{row['id']}").json() for row in rows]
    told = all(t["outcome"] == "applied" for d in details for t in d["targets"])
    web = next(d for d in details if d["name"] == "web")
    return told and bool(web["sources"]) and web["sources"][0]["failed_reads"] >= 2


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command: exit 2, nothing on stdout, one line on stderr."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == "" and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    return line


def test_the_server_shows_what_the_local_status_of_its_store_shows(served: Served) -> None:
    remote, local = served.status("--json"), served.local_status("--json")

    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    rows = {row["name"]: row for row in json.loads(remote.stdout)}
    assert sorted(rows) == ["search", "web"]
    web = rows["web"]
    assert (web["state"], web["traffic"]) == ("progressing", 10)
    assert web["targets"] == ["web-flag: set_traffic(10%) → applied", "web-app: set_traffic(10%) → applied"]
    (health,) = web["sources"]
    assert health["source"] == "health" and health["ok_reads"] == 0 and health["last_ok_at"] is None
    assert health["failed_reads"] == health["consecutive_failures"] >= 2
    assert health["last_error"].startswith("sql source 'health': cannot connect")
    assert "hunter2" not in remote.stdout
    assert rows["search"]["targets"] == ["target-0: set_traffic(10%) → applied"]

    plain = served.status("--plain")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == served.local_status("--plain").stdout
    assert "    web-app: set_traffic(10%) → applied" in plain.stdout.splitlines()


def test_one_rollout_by_name_or_id(served: Served) -> None:
    (web,) = json.loads(served.status("web", "--json").stdout)
    assert web["name"] == "web"
    by_id = served.status(web["id"], "--plain")
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout == served.local_status(web["id"], "--plain").stdout
    assert by_id.stdout.startswith(web["id"]) and "search" not in by_id.stdout


def test_on_a_terminal_it_is_the_same_table(served: Served) -> None:
    args = ("status", "--server", served.replica.url)
    remote = in_terminal(Path(TIDEGATE), served.workdir, *args, env=remote_env(TOKENS["viewer"]))
    local = in_terminal(Path(TIDEGATE), served.workdir, "status", env=local_env(served.database))

    assert remote.code == 0, remote.text
    assert "┃ rollout / target" in remote.text and "source health" in remote.text
    assert remote.text == local.text


def test_watch_reads_the_server_again_until_ctrl_c(served: Served) -> None:
    process = subprocess.Popen(
        [
            TIDEGATE,
            "status",
            "search",
            "--watch",
            "--interval",
            "100ms",
            "--json",
            "--server",
            served.replica.url,
        ],
        env=remote_env(TOKENS["viewer"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    snapshots: list[list[dict[str, Any]]] = [json.loads(process.stdout.readline()) for _ in range(3)]
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=30)

    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert all([row["name"] for row in rows] == ["search"] for rows in snapshots)


def test_without_a_token_it_says_which_variable(served: Served) -> None:
    assert "TIDEGATE_TOKEN" in one_line_error(served.status(token=None))


def test_a_token_the_server_does_not_know_is_a_401(served: Served) -> None:
    line = one_line_error(served.status(token="not-a-token-0123456789"))
    assert "401" in line and "TIDEGATE_TOKEN" in line and "not-a-token" not in line


def test_an_unknown_rollout_is_named(served: Served) -> None:
    assert "no rollout 'nope' on the server" in one_line_error(served.status("nope"))


def test_a_server_that_is_down_is_one_line(served: Served) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = served.run("status", "--server", url, env=remote_env(TOKENS["viewer"]))
    assert url in one_line_error(done)


# --- in-process: reading the server's answer -------------------------------------------


def detail(**changes: Any) -> dict[str, Any]:
    """A `GET /api/v1/rollouts/{id}` answer as docs/api.md describes it."""
    answer: dict[str, Any] = {
        "id": "web-abc123",
        "name": "web",
        "state": "rolling_back",
        "traffic": 0,
        "step": 0,
        "since": "2026-09-21T14:30:00Z",
        "seq": 4,
        "reason": "rollback: error-rate",
        "targets": [
            {"name": "flag", "last_operation": "disable", "outcome": "applied", "at": "2026-09-21T14:30:01Z"},
            {"name": "web", "last_operation": "rollback(to 1.9.0)", "outcome": "in flight", "at": None},
            {"name": "ios", "last_operation": None, "outcome": None, "at": None},
        ],
        "sources": [],
    }
    return {**answer, **changes}


def test_an_operation_in_flight_is_unfinished_and_a_target_never_told_is_left_out() -> None:
    (row,) = rows_from_server([detail()])

    assert status_lines([row]) == [
        "web-abc123                   rolling_back     0%  since 2026-09-21T14:30:00Z  rollback: error-rate",
        "    flag: disable → applied",
        "    web: rollback(to 1.9.0) → unfinished",
    ]
    assert row.told[0].at == parse_timestamp("2026-09-21T14:30:01Z") and row.told[1].at is None


def test_an_answer_that_is_not_a_rollout_is_a_remote_error() -> None:
    with pytest.raises(RemoteError, match=r"not a tidegate rollout \(KeyError: 'state'\)"):
        rows_from_server([{"id": "x", "detail": "Not Found"}])
    with pytest.raises(RemoteError, match="ValueError: 'exploded' is not a valid State"):
        rows_from_server([detail(state="exploded")])
