"""The crash test: a rollback across six sandbox targets survives SIGKILL at every journal point.

A real `tidegate run` (the console script, in a subprocess, on replayed signals and so on a
virtual clock) drives a rollout that advances 10 → 100 % and then rolls back on the
runbook's error-rate rule. First a full run counts its journal points (TIDEGATE_CRASH_LOG);
then, for every point k, a fresh run is killed there by the fault-injection hook
(TIDEGATE_CRASH_AT=k: SIGKILL right after the k-th durable commit, controller/store/faults.py),
and a second `tidegate run` resumes the unfinished rollout of the same name. Afterwards:

- the rollout is rolled_back, and every target shows it (previous version, flag off, or the
  App Store release paused);
- the journal holds exactly the operations of an uninterrupted run, each with a result, and
  each result journaled (audited) once;
- every operation took effect on its target exactly once: one `applied` record per key in the
  sandbox's own log (`already_done` records are the recovery path re-applying it);
- `tidegate audit verify` exits 0.

SQLite at every point; PostgreSQL (a fresh schema per run) at a spread of points.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.actuators.sandbox import STATE_FILE, Outcome, Sandbox, SandboxSettings
from controller.cli.main import app
from controller.core.model import Operation, RolloutId, State
from controller.store.sql import SqlStore
from tests.conftest import STORE_ENV, PostgresTestDatabase, SqliteTestDatabase, require_postgres

TIDEGATE = Path(sys.executable).with_name("tidegate")
NAME = "crash-checkout"
VERSION, PREVIOUS = "2.0.0", "1.9.0"
START = 1_790_000_000  # 2026-09-21T14:13:20Z, the first sample: the rollout starts there
BAD_FROM_MINUTE = 22  # errors jump from 0.5% to 10% here; error-rate breaches 5 minutes later
SQLITE_SHARDS = 4  # crash points are split over this many tests, so xdist can run them side by side


@dataclass(frozen=True)
class Target:
    name: str
    emulates: str
    traffic: int  # the sandbox's initial traffic
    rolled_back: str  # what "rolled back" means for it: "version", "disabled" or "paused"


TARGETS = (
    Target("checkout-flag", "launchdarkly", 0, "disabled"),
    Target("backend", "argocd", 100, "version"),
    Target("web", "vercel", 0, "version"),
    Target("voucher-fn", "supabase-functions", 100, "version"),
    Target("ios-app", "app-store", 100, "paused"),
    Target("android-app", "google-play", 0, "version"),
)


def settings_of(target: Target) -> dict[str, object]:
    return {
        "emulates": target.emulates,
        "version": VERSION,
        "previous_version": PREVIOUS,
        "traffic": target.traffic,
    }


def write_rollout(folder: Path) -> Path:
    """rollout.yaml and its replay data: healthy through all steps, then 10% errors."""
    rows = ["timestamp,signal,value"]
    for i in range(60 * 60 // 30):  # one hour of 30 s scrapes, 200 requests each
        errors = 20 if i * 30 >= BAD_FROM_MINUTE * 60 else 1
        rows += [f"{START + i * 30},error_rate:num,{errors}", f"{START + i * 30},error_rate:den,200"]
    (folder / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    targets = "".join(
        f"  - name: {t.name}\n    kind: sandbox\n    settings: {settings_of(t)}\n" for t in TARGETS
    )
    rollout = folder / "rollout.yaml"
    rollout.write_text(
        f"""apiVersion: tidegate/v1
kind: Rollout
metadata:
  name: {NAME}
version: "{VERSION}"
previousVersion: "{PREVIOUS}"
steps:
  - {{traffic: 10, bake: 10m}}
  - {{traffic: 100, bake: 1h}}
policies: [library:runbook]
sources:
  - kind: replay
    data: data.csv
targets:
{targets}""",
        encoding="utf-8",
    )
    return rollout


def tidegate(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in STORE_ENV and k != "GITHUB_STEP_SUMMARY"}
    clean.update(env)
    return subprocess.run(
        [str(TIDEGATE), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


# --- one backend's fresh state ----------------------------------------------------------


class Backend:
    """A fresh store (and the folder beside it that holds the sandbox targets)."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True)
        self.rollout = write_rollout(folder)
        self.postgres: PostgresTestDatabase | None = None
        if kind == "postgres":
            self.postgres = PostgresTestDatabase(f"tidegate_crash_{uuid.uuid4().hex[:12]}")
            self.env = self.postgres.env()
            self.state = self.postgres.url
            self.targets_dir = folder / ".tidegate" / "targets"  # beside the cwd, as with no --state
            self.database: SqliteTestDatabase | PostgresTestDatabase = self.postgres
        else:
            state = folder / "state" / "state.db"
            self.env = {"TIDEGATE_STATE": str(state)}
            self.state = str(state)
            self.targets_dir = state.parent / "targets"
            self.database = SqliteTestDatabase(state)

    def open(self) -> SqlStore:
        return self.database.open()

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        return tidegate(self.folder, "run", str(self.rollout), env={**self.env, **env})

    def drop(self) -> None:
        if self.postgres is not None:
            self.postgres.drop()

    def sandbox(self, rollout_id: str, target: Target) -> Sandbox:
        path = self.targets_dir / rollout_id / STATE_FILE
        return Sandbox(target.name, SandboxSettings.model_validate(settings_of(target)), path)


# --- what an uninterrupted run does ------------------------------------------------------

Shape = tuple[int, str, str, int | None, str | None]  # seq, target, op, traffic, version


@dataclass(frozen=True)
class Reference:
    points: list[str]  # the journal points' names, in order
    operations: Counter[Shape]  # the journal's operations, without the rollout id

    @property
    def rollback_commit(self) -> int:
        """The ordinal of the commit that starts the rollback (the last transition but one)."""
        commits = [n for n, name in enumerate(self.points, start=1) if name == "commit_transition"]
        return commits[-2]


def full_run(backend: Backend) -> Reference:
    log = backend.folder / "journal-points.log"
    done = backend.run(TIDEGATE_CRASH_LOG=str(log))
    assert done.returncode == 1, done.stderr  # rolled back
    lines = log.read_text(encoding="utf-8").splitlines()
    assert [line.split()[0] for line in lines] == [str(n) for n in range(1, len(lines) + 1)]
    with backend.open() as store:
        (record,) = store.list_rollouts()
        assert record.status.state is State.ROLLED_BACK
        intents = store.intents(record.id)
    assert {i.outcome for i in intents} == {"applied"}  # nothing was already in place
    operations = Counter(shape(i.seq, i.operation) for i in intents)
    return Reference([line.split()[1] for line in lines], operations)


def shape(seq: int, operation: Operation) -> Shape:
    return (seq, operation.target, operation.op.value, operation.traffic, operation.version)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The uninterrupted run on SQLite, once per test process."""
    return full_run(Backend("sqlite", tmp_path_factory.mktemp("crash-reference") / "run"))


def test_a_full_run_rolls_back_through_many_journal_points(reference: Reference) -> None:
    points = Counter(reference.points)
    # create, start, advance, rollback, complete; one result per operation
    assert reference.points[0] == "create_rollout"
    assert points["commit_transition"] == 4
    assert points["finish_intent"] == sum(reference.operations.values())
    assert reference.points[-1] == "commit_transition"  # the rollback's completion
    rollback_ops = {s[1:] for s in reference.operations if s[0] == max(x[0] for x in reference.operations)}
    assert {(t, op) for t, op, _, _ in rollback_ops} == {
        ("checkout-flag", "disable"),
        ("backend", "rollback"),
        ("web", "rollback"),
        ("voucher-fn", "rollback"),
        ("ios-app", "pause"),
        ("android-app", "rollback"),
    }


# --- the crash, the restart, the checks ------------------------------------------------


def crash_and_resume(backend: Backend, reference: Reference, crash_at: int, *, console_verify: bool) -> None:
    crashed = backend.run(TIDEGATE_CRASH_AT=str(crash_at))
    assert crashed.returncode == -signal.SIGKILL, f"point {crash_at}: {crashed.stderr}"
    with backend.open() as store:
        (record,) = store.list_rollouts()  # the first journal point is the rollout's creation
        unfinished = len(store.unfinished_intents(record.id))
    rollout_id = record.id
    if reference.points[crash_at - 1] == "commit_transition" and crash_at < len(reference.points):
        assert unfinished > 0, f"point {crash_at}: the intents are committed with the transition"

    resumed = backend.run()
    assert resumed.returncode == 1, f"point {crash_at}: {resumed.stdout}{resumed.stderr}"
    if unfinished:  # the restart finished the journaled operations before anything else
        assert f"finishing {unfinished} journaled operation(s)" in resumed.stderr, resumed.stderr
    last_point = crash_at == len(reference.points)
    if not last_point:
        assert rollout_id in resumed.stdout, f"point {crash_at}: a new rollout instead of resuming"

    with backend.open() as store:
        records = store.list_rollouts()
        # crashed after its very last commit the rollout was complete: the next run is a new one
        assert len(records) == (2 if last_point else 1), f"point {crash_at}: {records}"
        check_rolled_back(backend, store, rollout_id, reference, crash_at)

    # `tidegate audit verify`: the console script now and then, the same command in-process
    # otherwise (a subprocess costs half a second of interpreter start-up)
    if console_verify:
        verified = tidegate(backend.folder, "audit", "verify", env=backend.env)
        assert verified.returncode == 0, f"point {crash_at}: {verified.stdout}{verified.stderr}"
    else:
        result = CliRunner().invoke(app, ["audit", "verify", "--state", backend.state])
        assert result.exit_code == 0, f"point {crash_at}: {result.output}"
    assert "audit chain intact" in (verified.stdout if console_verify else result.output)


def check_rolled_back(
    backend: Backend, store: SqlStore, rollout_id: RolloutId, reference: Reference, crash_at: int
) -> None:
    where = f"crash at point {crash_at} ({reference.points[crash_at - 1]})"
    record = store.get_rollout(rollout_id)
    assert record is not None
    assert record.status.state is State.ROLLED_BACK, where

    intents = store.intents(rollout_id)
    assert Counter(shape(i.seq, i.operation) for i in intents) == reference.operations, where
    assert all(i.outcome in ("applied", "already_done") for i in intents), f"{where}: {intents}"
    action_rows = Counter(e.payload_json for e in store.audit_log(rollout_id) if e.kind == "action")
    assert sum(action_rows.values()) == len(intents), f"{where}: a result journaled twice or never"

    keys = {i.key for i in intents}
    for target in TARGETS:
        sandbox = backend.sandbox(rollout_id, target)
        received = sandbox.operations()
        assert {o.key for o in received} <= keys, f"{where}: {target.name} got an unjournaled operation"
        applied = Counter(o.key for o in received if o.outcome is Outcome.APPLIED)
        mine = [i.key for i in intents if i.operation.target == target.name]
        assert {key: applied[key] for key in mine} == dict.fromkeys(mine, 1), f"{where}: {target.name}"
        assert {o.outcome for o in received} <= {Outcome.APPLIED, Outcome.ALREADY_DONE}, where

        state = sandbox.state()
        if target.rolled_back == "version":
            assert state.version == PREVIOUS, f"{where}: {target.name} {state}"
        elif target.rolled_back == "disabled":
            assert not state.enabled, f"{where}: {target.name} {state}"
        else:
            assert state.paused and state.version == VERSION, f"{where}: {target.name} {state}"


@pytest.mark.parametrize("shard", range(SQLITE_SHARDS))
def test_sqlite_killed_at_every_journal_point_resumes_to_a_clean_rollback(
    tmp_path: Path, reference: Reference, shard: int, clean_store_env: pytest.MonkeyPatch
) -> None:
    points = range(1 + shard, len(reference.points) + 1, SQLITE_SHARDS)
    assert points, "fewer journal points than shards"
    for crash_at in points:
        backend = Backend("sqlite", tmp_path / f"k{crash_at}")
        crash_and_resume(backend, reference, crash_at, console_verify=crash_at == points[-1])


def test_postgres_killed_at_a_spread_of_journal_points_resumes_to_a_clean_rollback(
    tmp_path: Path, reference: Reference, clean_store_env: pytest.MonkeyPatch
) -> None:
    require_postgres()
    full = Backend("postgres", tmp_path / "full")
    try:
        # the same run on PostgreSQL passes the very same journal points
        assert full_run(full) == reference
    finally:
        full.drop()
    n, rollback = len(reference.points), reference.rollback_commit
    spread = sorted({2, 3, rollback, rollback + 2, n - 1, n})
    for crash_at in spread:
        backend = Backend("postgres", tmp_path / f"k{crash_at}")
        try:
            crash_and_resume(backend, reference, crash_at, console_verify=crash_at == n)
        finally:
            backend.drop()
