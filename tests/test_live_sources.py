"""A rollout that reads live sources: `tidegate gate` on the wall clock, with the real
PostgreSQL behind a `sql` source, deciding and acting on sandbox targets.

The gate watches for three one-second ticks; each tick reads only what arrived since the
last read. A bad source is reported and gives no data — never zeros."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terminal import in_terminal

TIDEGATE = str(Path(sys.executable).with_name("tidegate"))  # the one beside the running Python
DSN = "postgresql://postgres@127.0.0.1:5432/test"

PACK = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: live}
interval: 1s
policies:
  - id: error-rate
    signal: error_rate
    when: "> 0.05"
    window: 1m
    min_samples: 10
    action: rollback
"""

ROLLOUT = """\
apiVersion: tidegate/v1
kind: Rollout
metadata: {{name: live-web}}
version: "2.0.0"
previousVersion: "1.9.0"
policies: [pack.yaml]
sources:
  - kind: sql
    name: health
    settings:
      dsn_env: TIDEGATE_TEST_DSN
      signals:
        error_rate: "select {errors} as num, 100 as den"
targets:
  - name: web
    kind: sandbox
    settings: {{emulates: vercel, version: "2.0.0", previous_version: "1.9.0", traffic: 100}}
"""


def _gate(tmp_path: Path, errors: int, dsn: str = DSN) -> tuple[int, dict[str, object], str]:
    (tmp_path / "pack.yaml").write_text(PACK)
    (tmp_path / "rollout.yaml").write_text(ROLLOUT.format(errors=errors))
    env = {**os.environ, "TIDEGATE_TEST_DSN": dsn}
    env.pop("TIDEGATE_DATABASE_URL", None)
    done = subprocess.run(
        [TIDEGATE, "gate", "rollout.yaml", "--for", "3s", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def test_a_live_sql_source_breaching_rolls_back(tmp_path: Path) -> None:
    code, result, progress = _gate(tmp_path, errors=30)
    assert code == 1, progress
    assert result["state"] == "rolled_back"
    assert "error-rate breached" in progress


def test_a_healthy_live_source_passes_the_gate(tmp_path: Path) -> None:
    code, result, progress = _gate(tmp_path, errors=0)
    assert code == 0, progress
    assert result["state"] == "progressing"


def test_an_unreachable_source_is_no_data_never_zero(tmp_path: Path) -> None:
    code, result, progress = _gate(tmp_path, errors=0, dsn="postgresql://postgres@127.0.0.1:1/test")
    assert result["decision"] == "hold"
    assert code == 3, progress  # inconclusive: no value, on_no_data hold — not "0% errors"
    assert "no data this tick" in progress
    assert "127.0.0.1:1" in progress or "health" in progress


def test_status_counts_the_failed_reads_of_a_source_without_its_password(tmp_path: Path) -> None:
    code, result, _ = _gate(tmp_path, errors=0, dsn="postgresql://postgres:hunter2-pw@127.0.0.1:1/test")
    assert code == 3
    env = {k: v for k, v in os.environ.items() if k != "TIDEGATE_DATABASE_URL"}

    def status(*options: str) -> str:
        done = subprocess.run(
            [TIDEGATE, "status", *options], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        )
        assert "hunter2" not in done.stdout
        return done.stdout

    (row,) = json.loads(status("--json"))
    (health,) = row["sources"]
    # the history read, then one read per tick of the 3 s watch (at 0, 1, 2 and 3 s), all failed
    assert (health["source"], health["ok_reads"], health["failed_reads"]) == ("health", 0, 5)
    assert health["consecutive_failures"] == 5 and health["last_ok_at"] is None
    assert health["last_error"].startswith("sql source 'health': cannot connect")
    assert "127.0.0.1" in health["last_error"] and "\n" not in health["last_error"]
    text = status(str(result["rollout"]))
    assert "source health: 0 ok / 5 failed reads, 5 consecutive failures, last error at " in text


@pytest.fixture(autouse=True)
def _postgres_is_up() -> None:
    probe = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False)
    if probe.returncode != 0 and os.environ.get("CI") != "true":
        pytest.skip("PostgreSQL is not running (make test starts it)")


def _check(tmp_path: Path, dsn: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pack.yaml").write_text(PACK)
    (tmp_path / "rollout.yaml").write_text(ROLLOUT.format(errors=7))
    env = {k: v for k, v in os.environ.items() if k != "TIDEGATE_TEST_DSN"}
    if dsn is not None:
        env["TIDEGATE_TEST_DSN"] = dsn
    return subprocess.run(
        [TIDEGATE, "signals", "check", "rollout.yaml", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_signals_check_runs_every_bound_query_once(tmp_path: Path) -> None:
    done = _check(tmp_path, DSN)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    signals = report["sources"][0]["signals"]
    assert signals["error_rate:num"]["last_value"] == 7.0
    assert signals["error_rate:den"]["samples"] == 1


def test_signals_check_names_a_missing_credential_and_fails(tmp_path: Path) -> None:
    done = _check(tmp_path, None)
    assert done.returncode == 1
    error = json.loads(done.stdout)["sources"][0]["error"]
    assert "TIDEGATE_TEST_DSN" in error


def test_backtest_from_source_reads_the_bound_history(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK)
    (tmp_path / "rollout.yaml").write_text(ROLLOUT.format(errors=30))
    env = {**os.environ, "TIDEGATE_TEST_DSN": DSN}
    done = subprocess.run(
        [TIDEGATE, "backtest", "-p", "pack.yaml", "--from-source", "rollout.yaml", "--since", "1h", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # a health query reads the present: 30/100 now
    assert [f["policy"] for f in json.loads(done.stdout)["firings"]] == ["error-rate"]


def test_a_live_gate_on_a_terminal_draws_the_wall_clock_view_and_status_its_source_health(
    tmp_path: Path,
) -> None:
    (tmp_path / "pack.yaml").write_text(PACK)
    (tmp_path / "rollout.yaml").write_text(ROLLOUT.format(errors=0))
    env = {k: v for k, v in os.environ.items() if k not in ("TIDEGATE_DATABASE_URL", "TIDEGATE_VIEW")}
    env["TIDEGATE_TEST_DSN"] = "postgresql://postgres@127.0.0.1:1/test"  # nobody listens there
    tidegate = Path(TIDEGATE)

    gated = in_terminal(tidegate, tmp_path, "gate", "rollout.yaml", "--for", "3s", env=env)

    assert gated.code == 3, gated.text
    final = gated.text[gated.text.rindex("tidegate gate ·") :]
    assert "(wall clock, live sources)" in final and "progressing at 100%" in final
    assert re.search(r"│? *error-rate +no_data +— ", final), final
    assert re.search(r"source +health: no data this tick: sql source 'health': cannot connect", final)
    assert re.search(r"web +vercel +nothing yet", final)  # a gate that holds tells no target anything

    shown = in_terminal(tidegate, tmp_path, "status", env=env)

    assert shown.code == 0, shown.text
    assert re.search(
        r"│ +source health +│ 0 ok / 5 failed +│ +│ 20\d\d-.*│ sql source 'health': cannot", shown.text
    )
