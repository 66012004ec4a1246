"""Crash safety: a process killed (SIGKILL) right after the N-th journal commit leaves exactly
the first N commits in the store, and an intact audit chain.

The writer is a separate Python process driven by TIDEGATE_CRASH_AT (controller/store/faults.py);
every journal point in its script appends exactly one audit row, so "N commits survived" is
"the audit log has N rows".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controller.core.model import RolloutId
from tests.conftest import STORE_ENV, StoreDatabase

WRITER = """
from controller.core.model import Op, Operation, RolloutId, RolloutStatus, State
from controller.store import open_store
from controller.store.base import AuditDraft, PlannedIntent, RolloutRecord, TransitionRow

r = RolloutId("r1")
store = open_store()
pending = RolloutStatus(State.PENDING, traffic=0, step=0, since=1.0)
store.create_rollout(
    RolloutRecord(r, "web", "{}", pending, 1.0), AuditDraft(1.0, "tidegate", "created", r, {})
)
moved = pending.moved(State.PROGRESSING, traffic=10, step=0, since=2.0, reason="start")
intents = [
    PlannedIntent(f"r1/1/{t}/set_traffic/10", Operation(t, Op.SET_TRAFFIC, traffic=10)) for t in ("a", "b")
]
store.commit_transition(
    r, 0, moved, TransitionRow(r, 1, 2.0, "start", "pending", "progressing", 10, "start", "tidegate"),
    intents, [AuditDraft(2.0, "tidegate", "transition", r, {})],
)
for i in intents:
    store.finish_intent(i.key, "applied", "", 3.0, AuditDraft(3.0, "tidegate", "action", r, {"key": i.key}))
store.append_audit(AuditDraft(4.0, "tidegate", "manual", r, {"note": "done"}))
store.close()
"""
FULL_RUN = ["create_rollout", "commit_transition", "finish_intent", "finish_intent", "append_audit"]
R1 = RolloutId("r1")


def run_writer(store_db: StoreDatabase, tmp_path: Path, **extra: str) -> tuple[int, list[str]]:
    log = tmp_path / "journal-points.log"
    env = {k: v for k, v in os.environ.items() if k not in STORE_ENV}
    env.update(store_db.env(), TIDEGATE_CRASH_LOG=str(log), **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", WRITER],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    points = log.read_text().splitlines() if log.exists() else []
    return done.returncode, points


def test_a_full_run_passes_every_journal_point_once(store_db: StoreDatabase, tmp_path: Path) -> None:
    returncode, points = run_writer(store_db, tmp_path)

    assert returncode == 0
    assert points == [f"{n} {name}" for n, name in enumerate(FULL_RUN, start=1)]


def test_killed_at_the_second_point_the_first_two_commits_survive(
    store_db: StoreDatabase, tmp_path: Path
) -> None:
    returncode, points = run_writer(store_db, tmp_path, TIDEGATE_CRASH_AT="2")

    assert returncode == -signal.SIGKILL
    assert points == ["1 create_rollout", "2 commit_transition"]
    with store_db.open() as store:
        record = store.get_rollout(R1)
        assert record is not None and record.status.seq == 1
        assert len(store.transitions(R1)) == 1
        assert [i.outcome for i in store.unfinished_intents(R1)] == [None, None]  # to be reconciled
        assert [e.kind for e in store.audit_log()] == ["created", "transition"]
        assert store.verify_audit().ok


@pytest.mark.parametrize("crash_at", range(1, len(FULL_RUN) + 1))
def test_killed_at_any_point_exactly_the_commits_before_it_survive(
    store_db: StoreDatabase, tmp_path: Path, crash_at: int
) -> None:
    returncode, points = run_writer(store_db, tmp_path, TIDEGATE_CRASH_AT=str(crash_at))

    assert returncode == -signal.SIGKILL
    assert len(points) == crash_at
    with store_db.open() as store:
        assert len(store.audit_log()) == crash_at
        assert store.verify_audit().ok
        finished = [i for i in store.intents(R1) if i.outcome is not None]
        assert len(finished) == max(0, min(crash_at, 4) - 2)


def test_a_crash_point_that_is_not_a_number_has_no_effect(store_db: StoreDatabase, tmp_path: Path) -> None:
    returncode, _ = run_writer(store_db, tmp_path, TIDEGATE_CRASH_AT="not-a-number")

    assert returncode == 0
    with store_db.open() as store:
        assert len(store.audit_log()) == len(FULL_RUN)
