"""PostgreSQL backend (psycopg 3), for replicas sharing one database.

Every write is one transaction at READ COMMITTED; an audited write first takes a
transaction-scoped advisory lock (released at COMMIT/ROLLBACK), so appends to the hash chain
are serialized across replicas while everything else runs concurrently. Reads run at
REPEATABLE READ so a verify sees the rows and the chain head from one snapshot.
The DSN's password never appears in messages: see `redact`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from controller.store.base import StoreError
from controller.store.sql import Database, Param, Row, Serial, SqlStore

CONNECT_TIMEOUT_S = 10
# advisory lock namespace (first int4 key); the second key is the schema, so isolated schemas
# (tests, several installations in one database) do not wait on each other
LOCK_NAMESPACE = 0x7D6E  # arbitrary; Serial.value is added to it

_URL_PASSWORD = re.compile(r"(?P<start>[a-z][a-z0-9+.-]*://[^:/@\s]*):\S*@", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(?P<start>password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def redact(text: str, dsn: str = "") -> str:
    """`text` with the password of `dsn` (and any `user:pass@` or `password=…`) replaced by ***."""
    try:
        password = str(conninfo_to_dict(dsn).get("password") or "") if dsn else ""
    except psycopg.Error:
        password = ""
    if password:
        text = text.replace(password, "***")
    text = _URL_PASSWORD.sub(r"\g<start>:***@", text)
    return _PARAM_PASSWORD.sub(r"\g<start>***", text)


class PostgresStore(SqlStore):
    def __init__(
        self, dsn: str, schema: str | None = None, *, idle_in_transaction: float | None = None
    ) -> None:
        super().__init__(PostgresDatabase(dsn, schema, idle_in_transaction=idle_in_transaction))


class PostgresDatabase(Database):
    """One connection. With `idle_in_transaction` (seconds), PostgreSQL ends the session when
    it sits inside a transaction that long: a replica frozen mid-write (a GC pause, SIGSTOP,
    a VM migration) otherwise keeps its row locks, and a lease row it locked is skipped by
    every other replica's claim (`SKIP LOCKED`) for as long as the freeze lasts. `tidegate
    serve` sets it to the lease TTL on the connection that writes under leases, so a frozen
    holder delays a takeover by about one TTL at most, as an expired lease would; when it
    wakes, its broken connection is replaced at the next transaction and its writes are
    fenced out."""

    driver_error = psycopg.Error

    def __init__(
        self, dsn: str, schema: str | None = None, *, idle_in_transaction: float | None = None
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._idle_in_transaction = idle_in_transaction
        self._lock_key = 0
        self._conn = self._connect()

    @property
    def location(self) -> str:
        where = f"PostgreSQL {redact(self._dsn, self._dsn)}"
        return f"{where} (schema {self._schema})" if self._schema else where

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            conn = psycopg.connect(_with_timeout(self._dsn), autocommit=True)
            if self._idle_in_transaction is not None:
                milliseconds = max(1, round(self._idle_in_transaction * 1000))
                setting = sql.SQL("SET idle_in_transaction_session_timeout = {}")
                conn.execute(setting.format(sql.Literal(milliseconds)))
            if self._schema:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema)))
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            found = conn.execute("SELECT current_schema()").fetchone()
        except psycopg.Error as exc:
            # `from None`: the driver's own exception may echo the connection string
            raise StoreError(f"cannot open {self.location}: {redact(str(exc), self._dsn)}") from None
        schema = found[0] if found else None
        if schema is None:
            conn.close()
            raise StoreError(f"cannot open {self.location}: no schema on the search_path exists")
        self._lock_key = _int4(zlib.crc32(str(schema).encode("utf-8")))
        return conn

    def begin(self, write: bool) -> None:
        if self._conn.broken:  # the server went away: one fresh connection per transaction attempt
            self._conn = self._connect()
        self._conn.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def run(self, statement: str, params: Sequence[Param] = ()) -> int:
        return self._conn.execute(_placeholders(statement), params).rowcount

    def rows(self, statement: str, params: Sequence[Param] = ()) -> list[Row]:
        return self._conn.execute(_placeholders(statement), params).fetchall()

    def serialize(self, what: Serial) -> None:
        key = (LOCK_NAMESPACE + what.value, self._lock_key)
        self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", key)

    def skip_locked(self, table: str) -> str:
        return f" FOR UPDATE OF {table} SKIP LOCKED"

    def close(self) -> None:
        self._conn.close()


def _with_timeout(dsn: str) -> str:
    """`dsn` with a connect_timeout unless it names one: an unreachable host fails, not hangs."""
    if "connect_timeout" in conninfo_to_dict(dsn):
        return dsn
    return make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT_S)


def _placeholders(statement: str) -> str:
    # the shared SQL uses `?` and never contains `%` or a literal `?`
    return statement.replace("?", "%s")


def _int4(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value
