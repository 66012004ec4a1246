"""High availability with real processes on the real PostgreSQL.

Two `tidegate serve` replicas share one store and a dozen rollouts. Three high-severity
incidents roll every rollout back; each target takes a while to answer, so the rollback is
mid-flight when one replica is killed (SIGKILL) or frozen (SIGSTOP, then SIGCONT after its
leases ran out). The other must take the rollouts over within two lease periods, and in the
end every target is rolled back, no operation was applied twice, every journaled operation
has exactly one result, and the audit chain verifies.
"""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import PostgresTestDatabase, require_postgres
from tests.serve_process import Replica
from tests.serve_rollouts import incident, rollout_text, write_pack

ROLLOUTS = 12
TARGETS = 3
TTL = 2.0  # seconds
DELAY = 1.5  # seconds each target takes to apply an operation
APPLIED_TWICE = (
    "SELECT key FROM sandbox_operations WHERE outcome = 'applied' GROUP BY key HAVING COUNT(*) > 1"
)


@pytest.fixture
def database() -> Iterator[PostgresTestDatabase]:
    require_postgres()
    db = PostgresTestDatabase(f"tidegate_ha_{uuid.uuid4().hex[:10]}")
    try:
        yield db
    finally:
        db.drop()


def _start_pair(workdir: Path, database: PostgresTestDatabase) -> tuple[Replica, Replica]:
    rollouts = workdir / "rollouts"
    rollouts.mkdir()
    pack = write_pack(workdir)
    for i in range(ROLLOUTS):
        text = rollout_text(f"svc-{i:02d}", pack, targets=TARGETS, delay=DELAY)
        (rollouts / f"svc-{i:02d}.yaml").write_text(text)
    common = {"store": database.url, "rollouts": rollouts, "lease_ttl": f"{TTL:g}s", "lease_renew": "500ms"}
    a = Replica.start(workdir, "replica-a", **common)  # type: ignore[arg-type]
    b = Replica.start(workdir, "replica-b", **common)  # type: ignore[arg-type]
    return a, b


def _wait(condition: object, what: str, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting until {what}")


def _states(database: PostgresTestDatabase) -> dict[str, str]:
    return dict(database.execute("SELECT id, state FROM rollouts"))  # type: ignore[arg-type]


def _holders(database: PostgresTestDatabase) -> dict[str, str]:
    rows = database.execute("SELECT rollout_id, holder FROM leases WHERE expires_at > %s", (time.time(),))
    return {str(r[0]): str(r[1]) for r in rows}


def _in_flight_on(database: PostgresTestDatabase, replica: str) -> int:
    rows = database.execute(
        "SELECT COUNT(*) FROM intents i JOIN leases l ON l.rollout_id = i.rollout_id"
        " WHERE i.outcome IS NULL AND i.op = 'rollback' AND l.holder = %s",
        (replica,),
    )
    return int(rows[0][0])


def _takeovers(replica: Replica) -> dict[str, float]:
    """Rollout → the moment (unix seconds) the replica took it over, from its JSON log."""
    took = {}
    for record in replica.records():
        words = str(record.get("message", "")).split()
        if words[:2] == ["took", "rollout"] and "token 1)" not in record["message"]:
            stamp = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            took.setdefault(words[2], stamp.timestamp())
    return took


def _start_and_split(workdir: Path, database: PostgresTestDatabase) -> tuple[Replica, Replica]:
    a, b = _start_pair(workdir, database)
    _wait(lambda: list(_states(database).values()).count("progressing") == ROLLOUTS, "all start", 30)
    _wait(lambda: set(_holders(database).values()) == {"replica-a", "replica-b"}, "both hold some", 15)
    return a, b


def _check_the_end(workdir: Path, database: PostgresTestDatabase, survivor: Replica) -> None:
    _wait(lambda: set(_states(database).values()) == {"rolled_back"}, "every rollout rolled back", 40)
    unfinished = database.execute("SELECT key FROM intents WHERE outcome IS NULL")
    assert unfinished == []
    outcomes = database.execute("SELECT outcome, COUNT(*) FROM intents GROUP BY outcome")
    assert {str(o) for o, _ in outcomes} <= {"applied", "already_done"}
    applied_twice = []
    for rollout_id in _states(database):
        path = workdir / ".tidegate" / "targets" / rollout_id / "sandbox.sqlite3"
        with sqlite3.connect(path) as sandbox:
            versions = sandbox.execute("SELECT name, version FROM sandbox_targets").fetchall()
            applied_twice += sandbox.execute(APPLIED_TWICE).fetchall()
        assert len(versions) == TARGETS and {v for _, v in versions} == {"2.3.9"}, rollout_id
    assert applied_twice == []
    report = survivor.get("/api/v1/audit/verify")
    assert report.status_code == 200 and report.json()["ok"], report.text


def test_a_killed_replica_is_replaced_within_two_lease_periods(
    tmp_path: Path, database: PostgresTestDatabase
) -> None:
    a, b = _start_and_split(tmp_path, database)
    try:
        held_by_a = {r for r, h in _holders(database).items() if h == "replica-a"}
        for n in range(3):
            assert incident(b.url, f"INC-{n}").status_code == 202
        _wait(lambda: _in_flight_on(database, "replica-a") > 0, "replica-a is mid-rollback", 10)
        a.kill()
        killed = time.time()
        _wait(
            lambda: held_by_a <= {r for r, h in _holders(database).items() if h == "replica-b"},
            "replica-b holds replica-a's rollouts",
            6 * TTL + 10,  # generous to watch (a loaded CI machine); the bound is checked below
        )
        # when replica-b took each over, by its own log (not when this test got to look)
        took = _takeovers(b)
        assert held_by_a <= set(took)
        assert max(took[r] for r in held_by_a) - killed <= 2 * TTL
        _check_the_end(tmp_path, database, b)
        tokens = database.execute("SELECT rollout_id, token FROM leases")
        assert {int(t) for r, t in tokens if r in held_by_a} == {2}  # exactly one change of hands
    finally:
        a.kill()
        b.terminate()


def test_a_frozen_replica_wakes_up_fenced_out(tmp_path: Path, database: PostgresTestDatabase) -> None:
    a, b = _start_and_split(tmp_path, database)
    try:
        held_by_a = {r for r, h in _holders(database).items() if h == "replica-a"}
        for n in range(3):
            assert incident(b.url, f"INC-{n}").status_code == 202
        _wait(lambda: _in_flight_on(database, "replica-a") > 0, "replica-a is mid-rollback", 10)
        a.process.send_signal(signal.SIGSTOP)
        _wait(
            lambda: held_by_a <= {r for r, h in _holders(database).items() if h == "replica-b"},
            "replica-b holds replica-a's rollouts",
            6 * TTL + 10,
        )
        a.process.send_signal(signal.SIGCONT)  # the old holder resumes mid-rollback
        _check_the_end(tmp_path, database, b)
        _wait(lambda: any("let go of rollout" in str(r.get("message")) for r in a.records()), "a lets go", 10)
        assert a.process.poll() is None  # fenced out, not crashed
        assert a.terminate() == 0
    finally:
        a.kill()
        b.terminate()


def test_an_act_sent_to_either_replica_is_done_by_the_holder(
    tmp_path: Path, database: PostgresTestDatabase
) -> None:
    a, b = _start_and_split(tmp_path, database)
    try:
        held_by_a = sorted(r for r, h in _holders(database).items() if h == "replica-a")
        answer = b.post(f"/api/v1/rollouts/{held_by_a[0]}/pause", {"reason": "asked at b"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "done" and answer.json()["actor"] == "operator-person"
        assert _states(database)[held_by_a[0]] == "paused"
        transitions = database.execute(
            "SELECT actor FROM transitions WHERE rollout_id = %s AND trigger_name = 'pause'", (held_by_a[0],)
        )
        assert transitions == [("operator-person",)]
        assert _holders(database)[held_by_a[0]] == "replica-a"  # done where it is held, not stolen
    finally:
        a.terminate()
        b.terminate()
