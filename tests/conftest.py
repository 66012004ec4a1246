"""Shared fixtures.

`store` (and `store_db`, the database behind it) run a test against every store backend:
SQLite in tmp_path, and PostgreSQL in a fresh schema dropped afterwards. PostgreSQL is a
real server (DESIGN.md "Real components"); when it is unreachable the PostgreSQL variant
skips with the reason — except in CI (CI=true), where it fails loudly instead.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest

from controller.core.model import Op, Operation, RolloutId, RolloutStatus, State
from controller.store.base import AuditDraft, PlannedIntent, RolloutRecord, TransitionRow
from controller.store.postgres import PostgresStore, redact
from controller.store.sql import SqlStore
from controller.store.sqlite import SqliteStore

POSTGRES_URL = os.environ.get("TIDEGATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
STORE_ENV = ("TIDEGATE_DATABASE_URL", "TIDEGATE_STATE", "TIDEGATE_CRASH_AT", "TIDEGATE_CRASH_LOG")


class StoreDatabase(Protocol):
    """One empty database for one test, and a way around the store to read or tamper with it."""

    backend: str

    def open(self) -> SqlStore: ...

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run `?`-placeholder SQL on a connection of its own, committed at once."""
        ...

    def env(self) -> dict[str, str]:
        """The environment that makes `open_store()` open this database."""
        ...


class SqliteTestDatabase:
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self) -> SqlStore:
        return SqliteStore(self.path)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path)) as conn, conn:
            return conn.execute(statement, params).fetchall()

    def env(self) -> dict[str, str]:
        return {"TIDEGATE_STATE": str(self.path)}


class PostgresTestDatabase:
    backend = "postgres"

    def __init__(self, schema: str) -> None:
        self.schema = schema
        separator = "&" if "?" in POSTGRES_URL else "?"
        # the URL form keeps the schema on the search_path, for open_store and subprocesses
        self.url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
        self._admin(f'CREATE SCHEMA "{schema}"')

    def open(self) -> SqlStore:
        return PostgresStore(POSTGRES_URL, schema=self.schema)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def env(self) -> dict[str, str]:
        return {"TIDEGATE_DATABASE_URL": self.url}

    def drop(self) -> None:
        self._admin(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    @staticmethod
    def _admin(statement: str) -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(statement.encode())  # a schema name we generated, not user input


@functools.cache
def postgres_unreachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return redact(f"{redact(POSTGRES_URL)}: {exc}", POSTGRES_URL)
    return None


def require_postgres() -> None:
    reason = postgres_unreachable()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI and is unreachable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unreachable (set CI=true to make this a failure): {reason}")


@pytest.fixture(params=["sqlite", "postgres"])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreDatabase]:
    if request.param == "sqlite":
        yield SqliteTestDatabase(tmp_path / "state" / "state.db")
        return
    require_postgres()
    database = PostgresTestDatabase(f"tidegate_test_{uuid.uuid4().hex[:12]}")
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def store(store_db: StoreDatabase) -> Iterator[SqlStore]:
    opened = store_db.open()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def clean_store_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TIDEGATE_* store variables from the outer environment leak into the test."""
    for name in STORE_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- records for store tests ----------------------------------------------------------


def rollout_record(rollout_id: str = "r1", *, created_at: float = 1000.0, name: str = "") -> RolloutRecord:
    status = RolloutStatus(state=State.PENDING, traffic=0, step=0, since=created_at)
    return RolloutRecord(
        RolloutId(rollout_id), name or f"{rollout_id}-app", '{"steps": [10, 50, 100]}', status, created_at
    )


def audit_draft(
    rollout_id: str | None = "r1", *, at: float = 1000.0, kind: str = "decision", **payload: Any
) -> AuditDraft:
    return AuditDraft(at, "tidegate", kind, None if rollout_id is None else RolloutId(rollout_id), payload)


def transition_row(
    status_from: RolloutStatus, status_to: RolloutStatus, rollout_id: str = "r1"
) -> TransitionRow:
    return TransitionRow(
        RolloutId(rollout_id),
        status_to.seq,
        status_to.since,
        "advance",
        status_from.state.value,
        status_to.state.value,
        status_to.traffic,
        status_to.reason,
        "tidegate",
    )


def planned(rollout_id: str, seq: int, target: str, traffic: int) -> PlannedIntent:
    operation = Operation(target, Op.SET_TRAFFIC, traffic=traffic)
    return PlannedIntent(f"{rollout_id}/{seq}/{target}/set_traffic/{traffic}", operation)
