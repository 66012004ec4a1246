"""The store contract, run against SQLite and PostgreSQL alike (the `store` fixture)."""

from __future__ import annotations

import json
import threading

import pytest

from controller.core.model import RolloutId, State
from controller.store.base import StaleStatus, StoreError, UnknownRollout
from controller.store.migrations import LATEST_VERSION
from controller.store.sql import SqlStore
from tests.conftest import StoreDatabase, audit_draft, planned, rollout_record, transition_row

R1 = RolloutId("r1")


def started(store: SqlStore, rollout_id: str = "r1") -> None:
    """Create the rollout and move it pending → progressing at 10% with two intents."""
    record = rollout_record(rollout_id)
    store.create_rollout(record, audit_draft(rollout_id, kind="created"))
    after = record.status.moved(State.PROGRESSING, traffic=10, step=0, since=1010.0, reason="start")
    store.commit_transition(
        record.id,
        0,
        after,
        transition_row(record.status, after, rollout_id),
        [planned(rollout_id, 1, "flag", 10), planned(rollout_id, 1, "vercel", 10)],
        [audit_draft(rollout_id, at=1010.0, kind="transition", to="progressing")],
    )


# --- rollouts -------------------------------------------------------------------------


def test_created_rollout_reads_back_with_its_status(store: SqlStore) -> None:
    record = rollout_record("r1")
    store.create_rollout(record, audit_draft("r1", kind="created"))

    assert store.get_rollout(R1) == record
    assert [entry.kind for entry in store.audit_log(R1)] == ["created"]


def test_unknown_rollout_reads_as_none(store: SqlStore) -> None:
    assert store.get_rollout(RolloutId("nope")) is None
    assert store.list_rollouts() == []


def test_rollouts_list_in_creation_order(store: SqlStore) -> None:
    for rollout_id, created_at in (("b", 2.0), ("c", 3.0), ("a", 1.0)):
        store.create_rollout(rollout_record(rollout_id, created_at=created_at), audit_draft(rollout_id))

    assert [record.id for record in store.list_rollouts()] == ["a", "b", "c"]


def test_creating_a_rollout_twice_is_refused_and_audits_nothing(store: SqlStore) -> None:
    store.create_rollout(rollout_record("r1"), audit_draft("r1"))

    with pytest.raises(StoreError, match="already exists"):
        store.create_rollout(rollout_record("r1", name="other"), audit_draft("r1"))
    assert store.get_rollout(R1) == rollout_record("r1")
    assert len(store.audit_log()) == 1


# --- transitions and the action journal -------------------------------------------------


def test_commit_transition_saves_status_transition_intents_and_audit(store: SqlStore) -> None:
    started(store)

    record = store.get_rollout(R1)
    assert record is not None
    assert (record.status.state, record.status.traffic, record.status.seq) == (State.PROGRESSING, 10, 1)
    [transition] = store.transitions(R1)
    assert (transition.seq, transition.before, transition.after, transition.traffic) == (
        1,
        "pending",
        "progressing",
        10,
    )
    intents = store.intents(R1)
    assert [(i.operation.target, i.operation.traffic, i.seq, i.outcome) for i in intents] == [
        ("flag", 10, 1, None),
        ("vercel", 10, 1, None),
    ]
    assert [entry.kind for entry in store.audit_log(R1)] == ["created", "transition"]


def test_stale_expected_seq_raises_and_writes_nothing(store: SqlStore) -> None:
    started(store)
    record = store.get_rollout(R1)
    assert record is not None
    stale_before = rollout_record("r1").status  # seq 0: what a second replica last read
    rolled_back = stale_before.moved(State.ROLLING_BACK, traffic=0, step=0, since=1020.0, reason="late")
    audit_before = store.audit_log()

    with pytest.raises(StaleStatus, match="expected seq 0, stored seq 1"):
        store.commit_transition(
            R1,
            0,
            rolled_back,
            transition_row(stale_before, rolled_back),
            [planned("r1", 1, "argocd", 0)],
            [audit_draft("r1", kind="transition")],
        )

    assert store.get_rollout(R1) == record
    assert len(store.transitions(R1)) == 1
    assert [i.operation.target for i in store.intents(R1)] == ["flag", "vercel"]
    assert store.audit_log() == audit_before


def test_commit_transition_on_unknown_rollout_raises(store: SqlStore) -> None:
    status = rollout_record("ghost").status
    after = status.moved(State.PROGRESSING, traffic=10, step=0, since=1.0, reason="")

    with pytest.raises(UnknownRollout):
        store.commit_transition(RolloutId("ghost"), 0, after, transition_row(status, after, "ghost"), [], [])


def test_a_failing_write_inside_commit_transition_rolls_all_of_it_back(store: SqlStore) -> None:
    record = rollout_record("r1")
    store.create_rollout(record, audit_draft("r1"))
    after = record.status.moved(State.PROGRESSING, traffic=10, step=0, since=1010.0, reason="")
    duplicate = planned("r1", 1, "flag", 10)

    with pytest.raises(StoreError):
        store.commit_transition(
            R1, 0, after, transition_row(record.status, after), [duplicate, duplicate], [audit_draft("r1")]
        )

    assert store.get_rollout(R1) == record
    assert store.transitions(R1) == []
    assert store.intents(R1) == []
    assert len(store.audit_log()) == 1
    assert store.verify_audit().ok


def test_a_transition_must_advance_the_seq(store: SqlStore) -> None:
    record = rollout_record("r1")
    store.create_rollout(record, audit_draft("r1"))

    with pytest.raises(StoreError, match="advance seq"):
        store.commit_transition(R1, 0, record.status, transition_row(record.status, record.status), [], [])


def test_intents_stay_unfinished_until_finished(store: SqlStore) -> None:
    started(store)
    flag, vercel = store.intents(R1)

    assert store.unfinished_intents(R1) == [flag, vercel]
    store.finish_intent(flag.key, "applied", "", 1011.0, audit_draft("r1", kind="action", key=flag.key))

    assert store.unfinished_intents(R1) == [vercel]
    finished = store.intents(R1)[0]
    assert (finished.outcome, finished.detail, finished.finished_at) == ("applied", "", 1011.0)
    store.finish_intent(vercel.key, "already_done", "at 10%", 1012.0, audit_draft("r1", kind="action"))
    assert store.unfinished_intents(R1) == []
    assert store.intents(R1)[1].detail == "at 10%"


def test_intents_of_other_rollouts_are_not_listed(store: SqlStore) -> None:
    started(store, "r1")
    started(store, "r2")

    assert {i.rollout_id for i in store.unfinished_intents(RolloutId("r2"))} == {"r2"}


def test_finishing_an_unknown_intent_raises_and_audits_nothing(store: SqlStore) -> None:
    started(store)
    audit_before = store.audit_log()

    with pytest.raises(StoreError, match="unknown intent"):
        store.finish_intent("r1/9/flag/pause/", "applied", "", 1011.0, audit_draft("r1", kind="action"))
    assert store.audit_log() == audit_before


def test_an_intent_is_finished_once(store: SqlStore) -> None:
    started(store)
    key = store.intents(R1)[0].key
    store.finish_intent(key, "failed", "gave up", 1011.0, audit_draft("r1", kind="action"))

    with pytest.raises(StoreError, match="already finished"):
        store.finish_intent(key, "applied", "", 1012.0, audit_draft("r1", kind="action"))
    assert store.intents(R1)[0].outcome == "failed"


def test_an_intent_outcome_outside_the_vocabulary_is_refused(store: SqlStore) -> None:
    started(store)

    with pytest.raises(StoreError, match="outcome must be one of"):
        store.finish_intent(store.intents(R1)[0].key, "done", "", 1011.0, audit_draft("r1"))
    assert len(store.unfinished_intents(R1)) == 2


# --- evaluations ----------------------------------------------------------------------


def test_evaluations_are_recorded_as_canonical_json(store: SqlStore, store_db: StoreDatabase) -> None:
    started(store)
    store.record_evaluation(R1, 1030.0, "hold", {"policies": ["latency-p95"], "no_data": []})
    store.record_evaluation(R1, 1060.0, "rollback", {"policies": ["error-rate"]})

    rows = store_db.execute("SELECT rollout_id, at, decision, payload_json FROM evaluations ORDER BY at")
    assert rows == [
        ("r1", 1030.0, "hold", '{"no_data":[],"policies":["latency-p95"]}'),
        ("r1", 1060.0, "rollback", '{"policies":["error-rate"]}'),
    ]


def test_latest_evaluations_gives_each_rollouts_newest_decision(store: SqlStore) -> None:
    started(store)
    started(store, "r2")
    started(store, "r3")
    store.record_evaluation(R1, 1030.0, "hold", {"policies": ["latency-p95"]})
    store.record_evaluation(R1, 1060.0, "rollback", {"policies": ["error-rate"]})
    store.record_evaluation(RolloutId("r2"), 1045.0, "advance", {"policies": []})

    latest = store.latest_evaluations()

    assert sorted(latest) == ["r1", "r2"]  # r3 was never evaluated
    assert (latest[R1].at, latest[R1].decision) == (1060.0, "rollback")
    assert json.loads(latest[R1].payload_json) == {"policies": ["error-rate"]}
    assert latest[RolloutId("r2")].decision == "advance"


def test_an_evaluation_of_an_unknown_rollout_is_refused(store: SqlStore) -> None:
    with pytest.raises(StoreError):
        store.record_evaluation(RolloutId("ghost"), 1.0, "hold", {})


# --- audit log --------------------------------------------------------------------------


def test_audit_entries_chain_from_genesis_and_filter_by_rollout(store: SqlStore) -> None:
    first = store.append_audit(audit_draft("r1", kind="manual", why="page"))
    second = store.append_audit(audit_draft(None, kind="page"))
    third = store.append_audit(audit_draft("r1", kind="manual", at=1001.5))

    assert [first.id, second.id, third.id] == [1, 2, 3]
    assert first.prev_hash == "0" * 64
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert json.loads(first.payload_json) == {"why": "page"}
    assert store.audit_log() == [first, second, third]
    assert store.audit_log(R1) == [first, third]
    assert store.audit_log(RolloutId("other")) == []


def test_verify_passes_on_an_intact_chain(store: SqlStore) -> None:
    assert store.verify_audit().ok
    started(store)
    store.append_audit(audit_draft(None, kind="page", at=1000))  # an int time hashes like its float

    report = store.verify_audit()
    assert (report.ok, report.rows, report.first_bad) == (True, 3, None)


def test_a_payload_that_is_not_json_is_refused(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="canonical JSON"):
        store.append_audit(audit_draft("r1", value=float("nan")))
    assert store.audit_log() == []


def test_concurrent_appends_from_two_connections_keep_one_chain(store_db: StoreDatabase) -> None:
    stores = [store_db.open(), store_db.open()]
    errors: list[BaseException] = []

    def append_many(writer: SqlStore, name: str) -> None:
        try:
            for n in range(25):
                writer.append_audit(audit_draft(None, kind="manual", writer=name, n=n))
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=append_many, args=(s, str(i))) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = stores[0].verify_audit()
    for opened in stores:
        opened.close()

    assert errors == []
    assert (report.ok, report.rows) == (True, 50)


# --- migrations and reopening ---------------------------------------------------------


def test_reopening_keeps_the_data_and_applies_migrations_once(store_db: StoreDatabase) -> None:
    with store_db.open() as first:
        started(first)
    with store_db.open() as second:
        assert second.get_rollout(R1) is not None
        assert second.verify_audit().ok

    versions = store_db.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(v,) for v in range(1, LATEST_VERSION + 1)]


def test_a_database_with_a_newer_schema_is_refused(store_db: StoreDatabase) -> None:
    store_db.open().close()
    store_db.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (LATEST_VERSION + 1, 0.0)
    )

    with pytest.raises(
        StoreError, match=f"schema is at version {LATEST_VERSION + 1}, newer than this tidegate"
    ):
        store_db.open()
