"""SQLite backend: one file, one connection, WAL, writes serialized by BEGIN IMMEDIATE.

BEGIN IMMEDIATE takes SQLite's single write lock when the transaction starts, so reading the
audit chain head and appending the next row can never interleave with another writer (in
this process or another one on the same file); busy_timeout makes the other writer wait.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from controller.store.base import StoreError
from controller.store.sql import Database, Param, Row, Serial, SqlStore

BUSY_TIMEOUT_MS = 10_000
MEMORY = ":memory:"


class SqliteStore(SqlStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(SqliteDatabase(path))


class SqliteDatabase(Database):
    driver_error = sqlite3.Error

    def __init__(self, path: str | Path) -> None:
        self._path = path if str(path) == MEMORY else Path(path).expanduser()
        self._conn = self._connect()

    @property
    def location(self) -> str:
        return f"SQLite state {self._path}"

    def _connect(self) -> sqlite3.Connection:
        try:
            if isinstance(self._path, Path):
                self._path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions, we issue BEGIN/COMMIT ourselves
            conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed journal row survives a power cut, not only a process crash
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {self.location}: {exc}") from exc
        return conn

    def begin(self, write: bool) -> None:
        self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def run(self, statement: str, params: Sequence[Param] = ()) -> int:
        return self._conn.execute(statement, params).rowcount

    def rows(self, statement: str, params: Sequence[Param] = ()) -> list[Row]:
        return self._conn.execute(statement, params).fetchall()

    def serialize(self, what: Serial) -> None:
        """Nothing to do: BEGIN IMMEDIATE already holds the database's only write lock."""

    def skip_locked(self, table: str) -> str:
        return ""  # BEGIN IMMEDIATE: this write already excludes every other writer

    def close(self) -> None:
        self._conn.close()
