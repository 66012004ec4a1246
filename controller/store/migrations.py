"""Versioned schema migrations, one SQL dialect for SQLite and PostgreSQL.

`MIGRATIONS[k]` brings the schema from version k to k+1; each applied step is recorded in
`schema_migrations`. Statements use only what both databases accept: TEXT, BIGINT, INTEGER,
DOUBLE PRECISION, explicit ids (no AUTOINCREMENT/SERIAL), times as unix seconds. Never edit
a released step: append a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.store.audit import GENESIS_HASH
from controller.store.base import StoreError

if TYPE_CHECKING:
    from controller.store.sql import Database

CREATE_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " applied_at DOUBLE PRECISION NOT NULL)"
)

INITIAL_SCHEMA = (
    """CREATE TABLE rollouts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        state TEXT NOT NULL,
        traffic INTEGER NOT NULL,
        step INTEGER NOT NULL,
        since DOUBLE PRECISION NOT NULL,
        seq BIGINT NOT NULL,
        reason TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE transitions (
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        seq BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        trigger_name TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        traffic INTEGER NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (rollout_id, seq))""",
    # the action journal: one row per intended operation, finished (outcome set) after it ran
    """CREATE TABLE intents (
        key TEXT PRIMARY KEY,
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        seq BIGINT NOT NULL,
        position INTEGER NOT NULL,
        target TEXT NOT NULL,
        op TEXT NOT NULL,
        traffic INTEGER,
        version TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        outcome TEXT,
        detail TEXT NOT NULL,
        finished_at DOUBLE PRECISION,
        UNIQUE (rollout_id, seq, position))""",
    "CREATE INDEX intents_unfinished ON intents (rollout_id) WHERE outcome IS NULL",
    """CREATE TABLE evaluations (
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        at DOUBLE PRECISION NOT NULL,
        decision TEXT NOT NULL,
        payload_json TEXT NOT NULL)""",
    "CREATE INDEX evaluations_by_rollout ON evaluations (rollout_id, at)",
    """CREATE TABLE audit (
        id BIGINT PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        rollout_id TEXT,
        payload_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX audit_by_rollout ON audit (rollout_id, id)",
    # the chain head: deleting the newest audit rows leaves a valid shorter chain; this row,
    # updated with every append, is what shows they are gone
    """CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY,
        last_id BIGINT NOT NULL,
        last_hash TEXT NOT NULL)""",
    f"INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
)

# step 2: per rollout and source, how its reads went — counted by the runtime each tick and
# shown by `tidegate status` (a failing source is "no data", never silent)
SOURCE_HEALTH = (
    """CREATE TABLE source_health (
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        source TEXT NOT NULL,
        ok_reads BIGINT NOT NULL,
        failed_reads BIGINT NOT NULL,
        consecutive_failures BIGINT NOT NULL,
        last_ok_at DOUBLE PRECISION,
        last_error_at DOUBLE PRECISION,
        last_error TEXT NOT NULL,
        PRIMARY KEY (rollout_id, source))""",
)

# step 3, `tidegate serve`: leases with fencing tokens, the live replicas, pushed events and manual
# requests — the store is how replicas hand work to each other (controller/service).
SERVICE_SCHEMA = (
    """CREATE TABLE replicas (
        name TEXT PRIMARY KEY,
        seen_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE leases (
        rollout_id TEXT PRIMARY KEY REFERENCES rollouts (id),
        holder TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX leases_by_holder ON leases (holder)",
    """CREATE TABLE inbox (
        id BIGINT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        event_id TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        signal TEXT NOT NULL,
        fields_json TEXT NOT NULL,
        UNIQUE (endpoint, event_id))""",
    """CREATE TABLE requests (
        id BIGINT PRIMARY KEY,
        rollout_id TEXT NOT NULL REFERENCES rollouts (id),
        trigger_name TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        requested_at DOUBLE PRECISION NOT NULL,
        outcome TEXT,
        detail TEXT NOT NULL,
        finished_at DOUBLE PRECISION)""",
    "CREATE INDEX requests_pending ON requests (rollout_id) WHERE outcome IS NULL",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (INITIAL_SCHEMA, SOURCE_HEALTH, SERVICE_SCHEMA)

LATEST_VERSION = len(MIGRATIONS)


def migrate(db: Database, now: float) -> int:
    """Apply the missing steps inside the caller's write transaction; return the version.
    A database whose schema is newer than this code is refused, never downgraded."""
    db.run(CREATE_SCHEMA_MIGRATIONS)
    current = int(db.rows("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0])
    if current > LATEST_VERSION:
        raise StoreError(
            f"{db.location}: the database schema is at version {current}, newer than this tidegate "
            f"understands (up to {LATEST_VERSION}); upgrade tidegate or use another database"
        )
    for version in range(current + 1, LATEST_VERSION + 1):
        for statement in MIGRATIONS[version - 1]:
            db.run(statement)
        db.run("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, now))
    return LATEST_VERSION
