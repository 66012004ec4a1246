"""Per-rollout, per-source read health (schema step 2), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from controller.core.model import RolloutId
from controller.store.base import SourceHealth, SourceRead, StoreError
from controller.store.migrations import LATEST_VERSION
from controller.store.source_health import ERROR_LIMIT
from controller.store.sql import SqlStore
from tests.conftest import StoreDatabase, audit_draft, rollout_record

R1, R2 = RolloutId("r1"), RolloutId("r2")
REFUSED = "source 'metrics' (prometheus): query 'up': prometheus: POST /api/v1/query_range failed: refused"


def created(store: SqlStore, *ids: RolloutId) -> None:
    for rollout_id in ids:
        store.create_rollout(rollout_record(rollout_id), audit_draft(rollout_id, kind="created"))


def test_answered_and_failed_reads_are_counted_per_source(store: SqlStore) -> None:
    created(store, R1)
    store.record_source_reads(R1, [SourceRead("metrics", 1030.0), SourceRead("db", 1030.0, "timed out")])
    store.record_source_reads(R1, [SourceRead("metrics", 1060.0, REFUSED), SourceRead("db", 1060.0)])
    store.record_source_reads(R1, [SourceRead("metrics", 1090.0, REFUSED), SourceRead("db", 1090.0)])

    assert store.source_health(R1) == [
        SourceHealth("db", 2, 1, 0, 1090.0, 1030.0, "timed out"),
        SourceHealth("metrics", 1, 2, 2, 1030.0, 1090.0, REFUSED),
    ]


def test_an_answer_ends_the_run_of_failures_and_keeps_the_last_error(store: SqlStore) -> None:
    created(store, R1)
    for at in (1030.0, 1060.0, 1090.0):
        store.record_source_reads(R1, [SourceRead("metrics", at, f"refused at {at:g}")])
    assert store.source_health(R1)[0].consecutive_failures == 3

    store.record_source_reads(R1, [SourceRead("metrics", 1120.0)])

    assert store.source_health(R1) == [SourceHealth("metrics", 1, 3, 0, 1120.0, 1090.0, "refused at 1090")]


def test_health_belongs_to_its_rollout(store: SqlStore) -> None:
    created(store, R1, R2)
    store.record_source_reads(R1, [SourceRead("metrics", 1030.0, REFUSED)])
    store.record_source_reads(R2, [SourceRead("metrics", 1030.0)])

    assert [(h.ok_reads, h.failed_reads) for h in store.source_health(R1)] == [(0, 1)]
    assert [(h.ok_reads, h.failed_reads) for h in store.source_health(R2)] == [(1, 0)]
    assert store.source_health(RolloutId("never-read")) == []


def test_a_long_multi_line_error_is_stored_on_one_line_and_truncated(store: SqlStore) -> None:
    created(store, R1)
    error = "connection failed: refused\n\tIs the server running on that host?\n" + "x" * 1000
    store.record_source_reads(R1, [SourceRead("db", 1030.0, error)])

    stored = store.source_health(R1)[0].last_error
    assert stored.startswith("connection failed: refused Is the server running on that host? xxx")
    assert len(stored) == ERROR_LIMIT and stored.endswith("…") and "\n" not in stored


def test_reads_of_an_unknown_rollout_are_refused(store: SqlStore) -> None:
    with pytest.raises(StoreError):
        store.record_source_reads(RolloutId("ghost"), [SourceRead("metrics", 1.0)])


def test_a_tick_without_reads_writes_nothing(store: SqlStore, store_db: StoreDatabase) -> None:
    created(store, R1)
    store.record_source_reads(R1, [])
    assert store_db.execute("SELECT COUNT(*) FROM source_health") == [(0,)]


def test_a_version_1_database_gains_the_table_and_keeps_its_rollouts(store_db: StoreDatabase) -> None:
    with store_db.open() as first:
        created(first, R1)
    # what a database written by the previous release looks like: step 1 only
    for table in ("source_health", "leases", "replicas", "inbox", "requests"):
        store_db.execute(f"DROP TABLE {table}")
    store_db.execute("DELETE FROM schema_migrations WHERE version >= 2")

    with store_db.open() as upgraded:
        assert upgraded.get_rollout(R1) is not None
        upgraded.record_source_reads(R1, [SourceRead("metrics", 1030.0)])
        assert [h.ok_reads for h in upgraded.source_health(R1)] == [1]
        assert upgraded.verify_audit().ok

    versions = store_db.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(v,) for v in range(1, LATEST_VERSION + 1)] and LATEST_VERSION >= 2
