"""High availability with real processes on the real PostgreSQL.

Two `tidegate serve` replicas share one store and a dozen rollouts. Three high-severity
incidents roll every rollout back; each target takes a while to answer, so the rollback is
mid-flight when one replica is killed (SIGKILL) or frozen (SIGSTOP, then SIGCONT after its
leases ran out). The other must take the rollouts over within two lease periods, and in the
end every target is rolled back, no operation was applied twice, every journaled operation
has exactly one result, and the audit chain verifies.

A replica that joins gets its fair share at its next claim: the replica holding everything
hands back what is beyond its own share, once that rollout's step in flight has finished.
These tests run with a lease ttl thirty times the renew period, so a move at a claim cannot
pass for a move at the lease's expiry.
"""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
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
HANDOFF_TTL = 30.0  # seconds: thirty claim periods
HANDOFF_RENEW = 1.0  # seconds
SLOW = 6.0  # seconds each target takes to apply, so a step is in flight when a replica joins


@pytest.fixture
def database() -> Iterator[PostgresTestDatabase]:
    require_postgres()
    db = PostgresTestDatabase(f"tidegate_ha_{uuid.uuid4().hex[:10]}")
    try:
        yield db
    finally:
        db.drop()


def _write_rollouts(workdir: Path, count: int, delay: float) -> Path:
    rollouts = workdir / "rollouts"
    rollouts.mkdir(exist_ok=True)
    pack = write_pack(workdir)
    for i in range(count):
        text = rollout_text(f"svc-{i:02d}", pack, targets=TARGETS, delay=delay)
        (rollouts / f"svc-{i:02d}.yaml").write_text(text)
    return rollouts


def _start_pair(workdir: Path, database: PostgresTestDatabase) -> tuple[Replica, Replica]:
    rollouts = _write_rollouts(workdir, ROLLOUTS, DELAY)
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
    return _first_logged(replica, "took rollout", but_not="token 1)")


def _handbacks(replica: Replica) -> dict[str, float]:
    """Rollout → the moment the replica handed its lease back, from its JSON log."""
    return _first_logged(replica, "handed back rollout")


def _first_logged(replica: Replica, opening: str, but_not: str | None = None) -> dict[str, float]:
    """Rollout → the time of the first line "<opening> <rollout id> …" without `but_not`."""
    found: dict[str, float] = {}
    for record in replica.records():
        message = str(record.get("message", ""))
        if message.startswith(opening + " ") and (but_not is None or but_not not in message):
            stamp = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            found.setdefault(message.split()[len(opening.split())], stamp.timestamp())
    return found


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
        # it logs each takeover once that rollout's worker is built, just after the claim
        _wait(lambda: held_by_a <= set(_takeovers(b)), "replica-b logged its takeovers", 10)
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


def _start_alone(
    workdir: Path, database: PostgresTestDatabase, count: int, delay: float
) -> tuple[Replica, dict[str, object]]:
    """replica-a alone with `count` rollouts, holding them all; the settings for a second."""
    rollouts = _write_rollouts(workdir, count, delay)
    ttl, renew = f"{HANDOFF_TTL:g}s", f"{HANDOFF_RENEW:g}s"
    common: dict[str, object] = {
        "store": database.url,
        "rollouts": rollouts,
        "lease_ttl": ttl,
        "lease_renew": renew,
    }
    a = Replica.start(workdir, "replica-a", **common)  # type: ignore[arg-type]
    _wait(lambda: list(_holders(database).values()) == ["replica-a"] * count, "replica-a holds all", 30)
    return a, common


def _tokens(database: PostgresTestDatabase) -> dict[str, int]:
    return {str(r): int(t) for r, t in database.execute("SELECT rollout_id, token FROM leases")}


def _sent(workdir: Path, rollout_id: str) -> list[tuple[str, float]]:
    """(key, wall-clock time) of every operation the rollout's targets received."""
    path = workdir / ".tidegate" / "targets" / rollout_id / "sandbox.sqlite3"
    if not path.exists():  # created by the first operation, once it has landed
        return []
    with sqlite3.connect(path) as sandbox:
        return [(str(k), float(at)) for k, at in sandbox.execute("SELECT key, at FROM sandbox_operations")]


def _handbacks_counted(replica: Replica) -> float:
    for line in httpx.get(f"{replica.url}/metrics", timeout=15.0).text.splitlines():
        if line.startswith("tidegate_lease_handbacks_total "):
            return float(line.split()[1])
    raise AssertionError("no tidegate_lease_handbacks_total in /metrics")


def test_a_joining_replica_gets_its_share_at_its_next_claim_not_at_the_ttl(
    tmp_path: Path, database: PostgresTestDatabase
) -> None:
    count, share = 8, 4
    a, common = _start_alone(tmp_path, database, count, delay=0.0)
    b: Replica | None = None
    try:
        _wait(lambda: list(_states(database).values()).count("progressing") == count, "all start", 30)
        b = Replica.start(tmp_path, "replica-b", **common)  # type: ignore[arg-type]
        joined = time.time()  # replica-b has made its first claim: nothing was free then
        _wait(lambda: len(_takeovers(b)) == share, "replica-b took its share", HANDOFF_TTL / 2)
        took, handed = _takeovers(b), _handbacks(a)
        assert set(handed) == set(took)  # it took exactly what replica-a handed back
        assert all(handed[r] <= took[r] for r in took)
        # by their own logs: about one claim period each way, where waiting for expiry is the ttl
        assert max(took.values()) - joined <= 3 * HANDOFF_RENEW
        listed = b.get("/api/v1/rollouts").json()
        assert Counter(r["holder"] for r in listed) == {"replica-a": share, "replica-b": share}
        assert {r["id"] for r in listed if r["holder"] == "replica-b"} == set(took)
        assert _handbacks_counted(a) == share
        assert {r: t for r, t in _tokens(database).items() if r in took} == dict.fromkeys(took, 2)
        for n in range(3):
            assert incident(b.url, f"INC-{n}").status_code == 202
        _check_the_end(tmp_path, database, b)
    finally:
        a.terminate()
        if b is not None:
            b.terminate()


def test_a_lease_is_handed_back_only_after_its_step_in_flight_journaled(
    tmp_path: Path, database: PostgresTestDatabase
) -> None:
    count, share = 4, 2
    folder = tmp_path / "rollouts"
    folder.mkdir()
    a = Replica.start(
        tmp_path,
        "replica-a",
        store=database.url,
        rollouts=folder,
        lease_ttl=f"{HANDOFF_TTL:g}s",
        lease_renew=f"{HANDOFF_RENEW:g}s",
    )
    b: Replica | None = None
    try:
        # replica-b's first claim waits at its heartbeat, on a row lock held here, so that it
        # arrives while replica-a's steps are in flight however long its start-up takes
        with psycopg.connect(database.url) as gate:
            gate.execute("INSERT INTO replicas (name, seen_at) VALUES ('replica-b', 0)")  # not live
            gate.commit()
            gate.execute("SELECT 1 FROM replicas WHERE name = 'replica-b' FOR UPDATE")
            b = Replica.start(
                tmp_path,
                "replica-b",
                store=database.url,
                lease_ttl=f"{HANDOFF_TTL:g}s",
                lease_renew=f"{HANDOFF_RENEW:g}s",
                wait=False,
            )
            waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))"
            _wait(lambda: database.execute(waiting, (gate.info.backend_pid,))[0][0] > 0, "b claims", 60)
            _write_rollouts(tmp_path, count, SLOW)
            _wait(lambda: list(_holders(database).values()) == ["replica-a"] * count, "a holds all", 30)
            surplus = sorted(_states(database))[share:]  # replica-a keeps the first share in id order
            placeholders = ", ".join("?" for _ in surplus)
            starting = (
                "SELECT COUNT(DISTINCT rollout_id) FROM intents"
                f" WHERE outcome IS NULL AND rollout_id IN ({placeholders})"
            )
            _wait(lambda: database.execute(starting, surplus)[0][0] == share, "a starts them", 20)
            gate.rollback()
            joined = time.time()
        b.wait_ready()
        _wait(lambda: len(_takeovers(b)) == share, "replica-b took its share", HANDOFF_TTL / 2)
        took, handed = _takeovers(b), _handbacks(a)
        assert set(took) == set(handed) == set(surplus)
        assert max(took.values()) - joined <= SLOW + 3 * HANDOFF_RENEW
        for r in surplus:
            started = [at for _, at in _sent(tmp_path, r) if at < took[r]]  # replica-a's start
            assert started, r
            # still applying a claim period or two after replica-b joined: replica-a's next claim
            # left it out mid-step, and handed the lease back only once the step had landed
            assert min(started) > joined + 2 * HANDOFF_RENEW, r
            assert max(started) <= handed[r] <= took[r], r
        for n in range(3):
            assert incident(b.url, f"INC-{n}").status_code == 202
        _check_the_end(tmp_path, database, b)
        for r in _states(database):  # nobody re-sent an operation left in flight
            keys = Counter(key for key, _ in _sent(tmp_path, r))
            assert [k for k, n in keys.items() if n > 1] == [], r
        assert {r: t for r, t in _tokens(database).items() if r in took} == dict.fromkeys(took, 2)
    finally:
        a.terminate()
        if b is not None:
            b.terminate()
