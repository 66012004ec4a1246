"""A replica frozen inside a write transaction must not stall a takeover (PostgreSQL).

Its open transaction keeps the row lock on the lease it fenced, and claims select expired
leases `FOR UPDATE SKIP LOCKED`: without a limit the lease is skipped for as long as the
freeze lasts. With `idle_in_transaction` (what `tidegate serve` sets, to the lease TTL) the
server ends the frozen session, the lease is taken, and the frozen replica, once awake,
gets a fresh connection and is fenced out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from controller.core.model import RolloutId
from controller.store.base import FencedOut, Lease
from controller.store.postgres import PostgresDatabase, PostgresStore
from tests.conftest import POSTGRES_URL, PostgresTestDatabase, audit_draft, require_postgres, rollout_record

TTL = 10.0
IDLE = 0.5  # seconds a session may sit inside a transaction


@pytest.fixture
def database() -> Iterator[PostgresTestDatabase]:
    require_postgres()
    created = PostgresTestDatabase(f"tidegate_frozen_{time.time_ns()}")
    try:
        yield created
    finally:
        created.drop()


def _freeze_holding(
    database: PostgresTestDatabase, idle: float | None
) -> tuple[PostgresStore, PostgresDatabase, Lease]:
    """Replica a holds r1 (expired by t=2011) and is frozen mid-write: the fence UPDATE ran,
    no COMMIT came. Returns a's store, the connection it froze on and its lease."""
    a = PostgresStore(POSTGRES_URL, schema=database.schema, idle_in_transaction=idle)
    a.create_rollout(rollout_record("r1"), audit_draft("r1", kind="created"))
    (lease,) = a.claim_leases("a", now=2000.0, ttl=TTL)
    frozen = PostgresDatabase(POSTGRES_URL, database.schema, idle_in_transaction=idle)
    frozen.begin(write=True)
    assert frozen.run(
        "UPDATE leases SET token = token WHERE rollout_id = ? AND token = ?", ("r1", lease.token)
    )
    return a, frozen, lease


def test_the_server_ends_a_frozen_session_and_the_lease_moves(database: PostgresTestDatabase) -> None:
    a, frozen, lease = _freeze_holding(database, IDLE)
    b = database.open()
    try:
        time.sleep(IDLE + 1.0)  # the freeze outlasts the limit
        (taken,) = b.claim_leases("b", now=2011.0, ttl=TTL)
        assert (taken.rollout_id, taken.holder, taken.token) == (RolloutId("r1"), "b", 2)
        # a wakes: its transaction is gone with its session …
        with pytest.raises(Exception, match=r"terminat|closed|connection"):
            frozen.run("SELECT 1")
        # … and its next write, on a fresh connection, is refused by the fence
        frozen.close()
        with pytest.raises(FencedOut):
            a.append_audit(audit_draft("r1", at=2012.0), fence=lease.fence)
    finally:
        b.close()
        a.close()


def test_without_the_limit_the_frozen_lock_blocks_the_takeover(database: PostgresTestDatabase) -> None:
    """The control: the same freeze, no limit. The lease has expired, yet nobody can take it."""
    a, frozen, _ = _freeze_holding(database, None)
    b = database.open()
    try:
        time.sleep(IDLE + 1.0)
        assert b.claim_leases("b", now=2011.0, ttl=TTL) == []
        frozen.rollback()
        (taken,) = b.claim_leases("b", now=2012.0, ttl=TTL)
        assert taken.holder == "b"
    finally:
        frozen.close()
        b.close()
        a.close()


def test_the_limit_is_set_on_the_session_and_only_when_asked(database: PostgresTestDatabase) -> None:
    limited = PostgresDatabase(POSTGRES_URL, database.schema, idle_in_transaction=IDLE)
    plain = PostgresDatabase(POSTGRES_URL, database.schema)
    try:
        assert limited.rows("SHOW idle_in_transaction_session_timeout") == [("500ms",)]
        assert plain.rows("SHOW idle_in_transaction_session_timeout") == [("0",)]
    finally:
        limited.close()
        plain.close()
