"""Persistence: rollouts, transitions, the action journal, evaluations and the audit log.

SQLite by default (one file under `.tidegate/`), PostgreSQL when TIDEGATE_DATABASE_URL is set;
one schema with versioned migrations serves both (`open_store`).
"""

from __future__ import annotations

import os
from pathlib import Path

from controller.store.base import Store, StoreError

DATABASE_URL_ENV = "TIDEGATE_DATABASE_URL"
STATE_ENV = "TIDEGATE_STATE"
DEFAULT_STATE = Path(".tidegate") / "state.db"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = ["Store", "StoreError", "open_store"]


def open_store(state: str | None = None, *, idle_in_transaction: float | None = None) -> Store:
    """Open (and migrate) the store the configuration names, in this order: `state` when it
    is a postgresql:// URL; $TIDEGATE_DATABASE_URL; else SQLite at `state`, $TIDEGATE_STATE
    or .tidegate/state.db under the working directory. Raises StoreError, password redacted.

    `idle_in_transaction` (seconds, PostgreSQL only): the server ends this connection's
    session when it sits inside a transaction that long (see PostgresDatabase)."""
    url = state if state and state.startswith(POSTGRES_SCHEMES) else os.environ.get(DATABASE_URL_ENV)
    if url:
        # imported here so a SQLite-only run never needs the PostgreSQL driver
        from controller.store.postgres import PostgresStore

        return PostgresStore(url, idle_in_transaction=idle_in_transaction)
    from controller.store.sqlite import SqliteStore

    return SqliteStore(state or os.environ.get(STATE_ENV) or DEFAULT_STATE)
