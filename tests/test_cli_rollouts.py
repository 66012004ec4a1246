"""`tidegate gate | run | rollback | pause | resume | promote | status | audit` end to end.

Every test runs the real console script in a subprocess, in a fresh working directory, on
replayed signals (a virtual clock: an hour of release replays in well under a second) with
sandbox targets. Exit codes, stdout/stderr split, the store and the sandbox state are checked
from the outside. The manual acts and the audit chain run against SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.actuators.sandbox import STATE_FILE, Sandbox, SandboxSettings
from tests.conftest import STORE_ENV, StoreDatabase

TIDEGATE = Path(sys.executable).with_name("tidegate")
START = 1_790_000_000  # 2026-09-21T14:13:20Z
VERSION, PREVIOUS = "2.0.0", "1.9.0"
TARGETS: dict[str, dict[str, object]] = {
    "checkout-flag": {"emulates": "launchdarkly"},
    "web": {"emulates": "vercel"},
    "ios-app": {"emulates": "app-store", "traffic": 100},
}


def write_data(
    folder: Path, *, bad_from_minute: int | None = None, requests: int = 200, minutes: int = 40
) -> Path:
    """error_rate as errors/requests every 30 s: 0.5% errors, 10% from `bad_from_minute` on."""
    rows = ["timestamp,signal,value"]
    for i in range(minutes * 2):
        bad = bad_from_minute is not None and i * 30 >= bad_from_minute * 60
        errors = requests // 10 if bad else requests // 200
        rows += [f"{START + i * 30},error_rate:num,{errors}", f"{START + i * 30},error_rate:den,{requests}"]
    path = folder / "data.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_rollout(
    folder: Path,
    *,
    name: str = "shop",
    delay: float = 0.0,
    bad_from_minute: int | None = None,
    requests: int = 200,
) -> Path:
    """A rollout 10% (5m) → 50% (5m) → 100% (20m) over three sandbox targets, with its data."""
    write_data(folder, bad_from_minute=bad_from_minute, requests=requests)
    targets = ""
    for target, settings in TARGETS.items():
        merged: dict[str, object] = {**settings, "version": VERSION, "previous_version": PREVIOUS}
        if delay and target == "web":
            merged["delay"] = delay  # each operation on it takes this long: time to interrupt
        targets += f"  - name: {target}\n    kind: sandbox\n    settings: {json.dumps(merged)}\n"
    path = folder / "rollout.yaml"
    path.write_text(
        f"""apiVersion: tidegate/v1
kind: Rollout
metadata:
  name: {name}
version: "{VERSION}"
previousVersion: "{PREVIOUS}"
steps:
  - {{traffic: 10, bake: 5m}}
  - {{traffic: 50, bake: 5m}}
  - {{traffic: 100, bake: 20m}}
policies: [library:runbook]
sources:
  - kind: replay
    data: data.csv
targets:
{targets}""",
        encoding="utf-8",
    )
    return path


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STORE_ENV and k != "GITHUB_STEP_SUMMARY"}
    env.update(extra)
    return env


def tidegate(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIDEGATE), *args],
        cwd=cwd,
        env=cli_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status(cwd: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    done = tidegate(cwd, "status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def audit_log(cwd: Path, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    done = tidegate(cwd, "audit", "log", *args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def sandbox(targets_dir: Path, rollout_id: str, name: str) -> Sandbox:
    settings: dict[str, object] = {**TARGETS[name], "version": VERSION, "previous_version": PREVIOUS}
    return Sandbox(name, SandboxSettings.model_validate(settings), targets_dir / rollout_id / STATE_FILE)


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


# --- gate ----------------------------------------------------------------------------


def test_gate_exits_0_on_a_healthy_release_and_leaves_traffic_where_it_is(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path)

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "30m")

    assert done.returncode == 0, done.stderr
    assert "healthy for the whole watch at 100%" in done.stdout
    (row,) = status(tmp_path)
    assert (row["state"], row["traffic"]) == ("progressing", 100)
    assert not (tmp_path / ".tidegate" / "targets" / str(row["id"])).exists()  # nothing was told anything


def test_gate_exits_1_when_it_rolls_back_every_target(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path, bad_from_minute=10)

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "30m")

    assert done.returncode == 1, done.stderr
    assert "rolled back" in done.stdout
    (row,) = status(tmp_path)
    assert row["state"] == "rolled_back"
    targets = tmp_path / ".tidegate" / "targets"
    rollout_id = str(row["id"])
    assert not sandbox(targets, rollout_id, "checkout-flag").state().enabled
    assert sandbox(targets, rollout_id, "web").state().version == PREVIOUS
    assert sandbox(targets, rollout_id, "ios-app").state().paused


def test_gate_dry_run_exits_1_and_touches_nothing(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path, bad_from_minute=10)

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "30m", "--dry-run")

    assert done.returncode == 1, done.stderr
    assert "dry run, nothing was touched" in done.stdout
    assert "would tell web: rollback(to 1.9.0)" in done.stderr
    assert status(tmp_path) == []  # no rollout in the store
    targets = tmp_path / ".tidegate" / "targets"
    files = list(targets.rglob(STATE_FILE)) if targets.exists() else []
    for path in files:  # a sandbox file, if one exists at all, recorded no operation
        assert Sandbox("web", SandboxSettings(), path).operations() == []
    assert tidegate(tmp_path, "audit", "log").stdout == ""


def test_gate_exits_3_when_the_data_has_no_values_for_the_rules(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path, requests=0)  # no requests: the error rate has no value at any tick

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "30m")

    assert done.returncode == 3, done.stderr
    assert "inconclusive" in done.stdout


@pytest.mark.parametrize(
    ("line", "mistake", "message"),
    [
        ("  name: shop", "  name: shop\n  team: payments", "unknown field 'team'"),
        ("  - {traffic: 50, bake: 5m}", "  - {traffic: fifty, bake: 5m}", "steps[1].traffic"),
        ("  - {traffic: 100, bake: 20m}", "  - {traffic: 5, bake: 20m}", "must rise strictly"),
        ("    kind: sandbox", "    kind: sandbx", "unknown target kind 'sandbx'"),
    ],
)
def test_gate_on_a_bad_rollout_file_exits_2_naming_file_and_line(
    tmp_path: Path, line: str, mistake: str, message: str
) -> None:
    rollout = write_rollout(tmp_path)
    text = rollout.read_text(encoding="utf-8")
    rollout.write_text(text.replace(line, mistake, 1), encoding="utf-8")

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "30m")

    assert done.returncode == 2
    no_traceback(done)
    assert re.search(r"rollout\.yaml:\d+:\d+: ", done.stderr), done.stderr
    assert message in done.stderr
    assert status(tmp_path) == []


def test_gate_for_a_duration_that_is_not_one_exits_2(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path)

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "five")

    assert done.returncode == 2
    no_traceback(done)
    assert "--for" in done.stderr and "five" in done.stderr
    assert status(tmp_path) == []


def test_gate_json_is_one_object_on_stdout_with_progress_on_stderr(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path, bad_from_minute=10)

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "30m", "--json")

    assert done.returncode == 1
    assert len(done.stdout.strip().splitlines()) == 1
    result = json.loads(done.stdout)
    assert result["exit_code"] == 1 and result["mode"] == "gate" and result["dry_run"] is False
    assert result["state"] == "rolled_back" and result["decision"] == "rollback"
    assert "error-rate" in [f["policy"] for f in result["firing"]]
    assert result["rollout"] == status(tmp_path)[0]["id"]
    progress = done.stderr.splitlines()
    assert any(" firing " in line and "error-rate breached" in line for line in progress)
    assert any(" transition " in line and "rolling_back" in line for line in progress)


def test_gate_appends_a_markdown_summary_for_github_actions(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path, bad_from_minute=10)
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")

    done = tidegate(tmp_path, "gate", str(rollout), "--for", "30m", env={"GITHUB_STEP_SUMMARY": str(summary)})

    assert done.returncode == 1
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")  # appended, not overwritten
    assert "## tidegate gate" in text
    assert "**Result:** rolled back" in text and "(exit 1)" in text
    assert "**Decision:** rollback" in text
    assert re.search(r"^\| error-rate \| 0\.\d+ \|$", text, re.MULTILINE), text


# --- run -----------------------------------------------------------------------------


def test_run_exits_0_when_the_release_is_promoted_through_every_step(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path)

    done = tidegate(tmp_path, "run", str(rollout))

    assert done.returncode == 0, done.stderr
    assert "promoted to 100%" in done.stdout
    steps = [line for line in done.stderr.splitlines() if " transition " in line]
    assert re.findall(r"at (\d+)%", "\n".join(steps)) == ["10", "50", "100", "100"]
    (row,) = status(tmp_path)
    assert (row["state"], row["traffic"]) == ("promoted", 100)
    web = sandbox(tmp_path / ".tidegate" / "targets", str(row["id"]), "web")
    assert (web.state().traffic, web.state().version) == (100, VERSION)


def test_run_exits_1_when_it_rolls_back(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path, bad_from_minute=12)

    done = tidegate(tmp_path, "run", str(rollout))

    assert done.returncode == 1, done.stderr
    (row,) = status(tmp_path)
    assert row["state"] == "rolled_back"
    assert sandbox(tmp_path / ".tidegate" / "targets", str(row["id"]), "web").state().version == PREVIOUS


@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_is_resumed_by_the_next_run(tmp_path: Path, interrupt: signal.Signals) -> None:
    rollout = write_rollout(tmp_path, delay=2.0)  # "web" takes 2 s per operation: time to interrupt
    # Started as from a terminal. A pytest-xdist worker of the full suite ignores SIGINT and
    # a child inherits an ignored signal (then Python raises no KeyboardInterrupt); a handler
    # is not inherited, so while the child starts the worker handles SIGINT as Python does.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [str(TIDEGATE), "run", str(rollout)],
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert process.stderr is not None
    for line in process.stderr:  # the first transition is journaled: its actuation is under way
        if " transition " in line:
            process.send_signal(interrupt)
            break
    process.communicate(timeout=30)
    assert process.returncode in (130, -interrupt), process.returncode
    (interrupted,) = status(tmp_path)
    assert (interrupted["state"], interrupted["traffic"]) == ("progressing", 10)
    assert any(t.endswith("→ unfinished") for t in interrupted["targets"]), interrupted

    write_rollout(tmp_path)  # the same rollout; its targets answer at once now
    done = tidegate(tmp_path, "run", str(rollout))

    assert done.returncode == 0, done.stderr
    assert f"{interrupted['id']}: promoted" in done.stdout
    assert "journaled operation(s)" in done.stderr  # finished what the interrupted run left open
    (row,) = status(tmp_path)  # the same rollout, not a second one
    assert (row["id"], row["state"]) == (interrupted["id"], "promoted")
    web = sandbox(tmp_path / ".tidegate" / "targets", str(row["id"]), "web")
    applied = [o.key for o in web.operations() if o.outcome.value == "applied"]
    assert len(applied) == len(set(applied))  # nothing took effect twice
    assert web.state().traffic == 100


def test_a_run_does_not_adopt_a_gate_watch_of_the_same_name(tmp_path: Path) -> None:
    rollout = write_rollout(tmp_path)
    watched = tidegate(tmp_path, "gate", str(rollout), "--for", "30m", "--json")
    gate_rollout = json.loads(watched.stdout)["rollout"]  # healthy: left progressing at 100%

    done = tidegate(tmp_path, "run", str(rollout))

    assert done.returncode == 0, done.stderr
    assert gate_rollout not in done.stdout
    steps = [line for line in done.stderr.splitlines() if " transition " in line]
    assert "pending → progressing at 10%" in steps[0]  # the whole ladder, from the first step
    states = {row["id"]: row["state"] for row in status(tmp_path)}
    assert states.pop(gate_rollout) == "progressing"
    assert list(states.values()) == ["promoted"]


# --- manual acts, status, audit (SQLite and PostgreSQL) --------------------------------


def targets_dir(store_db: StoreDatabase, cwd: Path) -> Path:
    env = store_db.env()
    if "TIDEGATE_STATE" in env:
        return Path(env["TIDEGATE_STATE"]).parent / "targets"
    return cwd / ".tidegate" / "targets"


def gate_id(cwd: Path, rollout: Path, env: dict[str, str]) -> str:
    done = tidegate(cwd, "gate", str(rollout), "--for", "20m", "--json", env=env)
    assert done.returncode in (0, 1), done.stderr
    return str(json.loads(done.stdout)["rollout"])


def test_manual_acts_change_state_and_are_audited_with_actor_and_reason(
    store_db: StoreDatabase, tmp_path: Path
) -> None:
    env = store_db.env()
    rollout = write_rollout(tmp_path)
    first = gate_id(tmp_path, rollout, env)  # healthy: left progressing at 100%

    def act(verb: str, ref: str, reason: str, actor: str = "alice") -> subprocess.CompletedProcess[str]:
        return tidegate(tmp_path, verb, ref, "--reason", reason, "--actor", actor, env=env)

    # a reason is required: missing or blank, nothing happens
    missing = tidegate(tmp_path, "pause", first, "--actor", "alice", env=env)
    assert missing.returncode == 2
    no_traceback(missing)
    assert "--reason" in missing.stderr
    blank = act("pause", first, "  ")
    assert blank.returncode == 2 and "reason is required" in blank.stderr, blank.stderr
    assert status(tmp_path, env)[0]["state"] == "progressing"

    paused = act("pause", first, "checkout looks odd")
    assert paused.returncode == 0, paused.stderr
    assert "progressing → paused" in paused.stdout
    assert sandbox(targets_dir(store_db, tmp_path), first, "ios-app").state().paused
    assert act("resume", first, "false alarm", actor="bob").returncode == 0
    assert not sandbox(targets_dir(store_db, tmp_path), first, "ios-app").state().paused
    assert act("promote", first, "ship it").returncode == 0

    second = gate_id(tmp_path, rollout, env)
    rolled = act("rollback", second, "support tickets spiking")
    assert rolled.returncode == 0, rolled.stderr
    assert "rolled_back at 0%" in rolled.stdout

    states = {row["id"]: row["state"] for row in status(tmp_path, env)}
    assert states == {first: "promoted", second: "rolled_back"}
    assert sandbox(targets_dir(store_db, tmp_path), second, "web").state().version == PREVIOUS

    manual = [
        (e["rollout"], e["actor"], e["payload"]["trigger"], e["payload"]["reason"])
        for e in audit_log(tmp_path, env=env)
        if e["kind"] == "manual"
    ]
    assert manual == [
        (first, "alice", "pause", "checkout looks odd"),
        (first, "bob", "resume", "false alarm"),
        (first, "alice", "promote", "ship it"),
        (second, "alice", "rollback", "support tickets spiking"),
    ]
    only_second = audit_log(tmp_path, second, env=env)
    assert {e["rollout"] for e in only_second} == {second}
    assert only_second[0]["kind"] == "created"

    # not allowed: acting on a terminal rollout, or on one that does not exist
    refused = act("pause", second, "too late")
    assert refused.returncode == 2
    no_traceback(refused)
    assert "cannot pause a rollout that is rolled_back" in refused.stderr
    unknown = act("pause", "no-such-rollout", "typo")
    assert unknown.returncode == 2 and "no rollout 'no-such-rollout'" in unknown.stderr
    assert {row["id"]: row["state"] for row in status(tmp_path, env)} == states  # nothing moved


def test_a_manual_act_by_name_addresses_the_latest_rollout_of_that_name(
    store_db: StoreDatabase, tmp_path: Path
) -> None:
    env = store_db.env()
    rollout = write_rollout(tmp_path)
    ids = [gate_id(tmp_path, rollout, env) for _ in range(3)]  # same data: same (virtual) creation time

    done = tidegate(tmp_path, "pause", "shop", "--reason", "by name", "--actor", "alice", env=env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{ids[-1]}: progressing → paused")
    states = {row["id"]: row["state"] for row in status(tmp_path, env)}
    assert states == {ids[0]: "progressing", ids[1]: "progressing", ids[2]: "paused"}


def test_status_lists_every_rollout_with_its_targets(tmp_path: Path) -> None:
    healthy = tmp_path / "healthy"
    failing = tmp_path / "failing"
    healthy.mkdir()
    failing.mkdir()
    assert tidegate(tmp_path, "run", str(write_rollout(healthy, name="web-app"))).returncode == 0
    assert tidegate(tmp_path, "run", str(write_rollout(failing, bad_from_minute=12))).returncode == 1

    rows = status(tmp_path)

    assert sorted((r["name"], r["state"], r["traffic"]) for r in rows) == [
        ("shop", "rolled_back", 0),
        ("web-app", "promoted", 100),
    ]
    shop = next(r for r in rows if r["name"] == "shop")
    assert "web: rollback(to 1.9.0) → applied" in shop["targets"]
    text = tidegate(tmp_path, "status", "shop")
    assert text.returncode == 0 and "rolled_back" in text.stdout and "web-app" not in text.stdout


def test_audit_verify_passes_then_names_the_first_tampered_row(
    store_db: StoreDatabase, tmp_path: Path
) -> None:
    env = store_db.env()
    rollout = write_rollout(tmp_path, bad_from_minute=10)
    gate_id(tmp_path, rollout, env)
    rows = store_db.execute("SELECT id, payload_json FROM audit ORDER BY id")
    assert len(rows) >= 6

    intact = tidegate(tmp_path, "audit", "verify", env=env)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"intact: {len(rows)} rows" in intact.stdout

    edited_id, original = rows[2]
    store_db.execute("UPDATE audit SET payload_json = ? WHERE id = ?", ('{"decision":"advance"}', edited_id))
    edited = tidegate(tmp_path, "audit", "verify", env=env)
    assert edited.returncode == 1
    assert f"BROKEN at row {edited_id}:" in edited.stdout and "edited" in edited.stdout

    store_db.execute("UPDATE audit SET payload_json = ? WHERE id = ?", (original, edited_id))
    assert tidegate(tmp_path, "audit", "verify", env=env).returncode == 0  # restored: intact again

    deleted_id = rows[len(rows) // 2][0]
    store_db.execute("DELETE FROM audit WHERE id = ?", (deleted_id,))
    gap = tidegate(tmp_path, "audit", "verify", env=env)
    assert gap.returncode == 1
    no_traceback(gap)
    assert f"BROKEN at row {deleted_id + 1}:" in gap.stdout and "missing" in gap.stdout
