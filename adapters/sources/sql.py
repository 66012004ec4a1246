"""SQL health queries (kind `sql`, psycopg 3): one query per signal, read as the runbooks do by hand.

    sources:
      - name: db-health
        kind: sql
        settings:
          dsn_env: HEALTH_DATABASE_URL        # the DSN is read from this environment variable
          statement_timeout: 5s               # per statement, SET LOCAL inside the read
          signals:
            queue_backlog: select count(*) as value from work_queue where status = 'pending'
            error_rate: select count(*) filter (where failed) as num, count(*) as den from jobs

A query returns one row: one number column `value` (a plain signal) or two number columns
`num` and `den` (a ratio signal, columns `<name>:num` and `<name>:den`).

Each read runs every query once, in one READ ONLY transaction with `SET LOCAL
statement_timeout`, and stamps each sample at the read's `end` (a health query reads the
present, not the past). A NULL (or no row) is no sample — never a fabricated zero. A
timeout, an SQL error or a malformed answer (several rows, other columns, not a number) is a
`SignalError` naming the source and the signal; the DSN and its password never appear in it.
The connection is opened on first use, reused across reads, and reopened once when the
server dropped it. docs/sources.md has the runbooks' queries as ready bindings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.errors import ConfigError, SignalError
from adapters.sources.base import Columns, ReadResult
from policies.durations import parse_duration

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.sources.registry import SourceContext

CONNECT_TIMEOUT_S = 10
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_URL_PASSWORD = re.compile(r"(?P<start>[a-z][a-z0-9+.-]*://[^:/@\s]*):\S*@", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(?P<start>password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


class SqlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn_env: str = Field(min_length=1)
    statement_timeout: str = "5s"
    signals: dict[str, str] = Field(min_length=1)

    @field_validator("statement_timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("must be a positive duration like 5s")
        return value

    @field_validator("signals")
    @classmethod
    def _signals(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if _NAME.match(name) is None:
                raise ValueError(f"signal name {name!r} is not a name (letters, digits, _ . -)")
            if not query.strip():
                raise ValueError(f"signal {name!r} has an empty query")
        return value

    def timeout_ms(self) -> int:
        return max(1, round(parse_duration(self.statement_timeout) * 1000))


class SqlSource:
    def __init__(self, name: str, settings: SqlSettings, env: Mapping[str, str]) -> None:
        self._name = name
        self.settings = settings
        self._env = env
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> list[str]:
        return list(self.settings.signals)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def read(self, start: float, end: float) -> ReadResult:
        """Every signal's value now, stamped at `end`; `start` is unused (health reads the present)."""
        for attempt in (1, 2):
            conn = self._connect()
            try:
                return self._read(conn, end)
            except psycopg.Error as error:
                if conn.broken or conn.closed:  # the server dropped us: reopen once
                    self._conn = None
                    if attempt == 1:
                        continue
                raise self._error(f"{self._where()}: read failed", error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, conn: psycopg.Connection[Any], end: float) -> ReadResult:
        columns: Columns = {}
        with conn.transaction():
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true)", (str(self.settings.timeout_ms()),)
            )
            for signal, query in self.settings.signals.items():
                columns.update(self._query(conn, signal, query, end))
        return ReadResult(columns=columns, queries=len(self.settings.signals))

    def _query(self, conn: psycopg.Connection[Any], signal: str, query: str, end: float) -> Columns:
        where = f"{self._where()} signal {signal!r}"
        try:
            cursor = conn.execute(query.encode())  # the operator's own query from rollout.yaml
            names = [c.name for c in cursor.description or []]
            rows = cursor.fetchmany(2)
        except psycopg.errors.QueryCanceled as error:
            if conn.broken:
                raise
            raise self._error(f"{where}: timed out after {self.settings.statement_timeout}", error) from None
        except psycopg.Error as error:
            if conn.broken or conn.closed:
                raise
            raise self._error(f"{where}: query failed", error) from None
        if names == ["value"]:
            parts = [""]
        elif sorted(names) == ["den", "num"]:
            parts = ["num", "den"]
        else:
            raise SignalError(
                f"{where}: expected one column `value` or two columns `num`, `den`, got {names or 'none'}"
            )
        keys = [f"{signal}:{part}" if part else signal for part in parts]
        if len(rows) > 1:
            raise SignalError(f"{where}: expected one row, got several")
        values = [_number(where, rows[0][names.index(part or "value")]) for part in parts] if rows else []
        if not rows or any(v is None for v in values):  # NULL or no row: no sample, never a zero
            return {key: ([], []) for key in keys}
        return {key: ([end], [v]) for key, v in zip(keys, values, strict=True) if v is not None}

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        variable = self.settings.dsn_env
        dsn = self._env.get(variable, "")
        if not dsn.strip():
            raise SignalError(f"{self._where()}: environment variable {variable} is not set (the DSN)")
        try:
            conn = psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.Error as error:
            raise self._error(f"{self._where()}: cannot connect (DSN from {variable})", error) from None
        conn.read_only = True  # every transaction.begin is BEGIN READ ONLY
        self._conn = conn
        return conn

    def _where(self) -> str:
        return f"sql source {self._name!r}"

    def _error(self, text: str, error: Exception) -> SignalError:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return SignalError(redact(f"{text}: {detail}", self._env.get(self.settings.dsn_env, "")))


def _number(where: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise SignalError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise SignalError(f"{where}: expected a finite number, got {value!r}")
    return number


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


def build(name: str, settings: Mapping[str, object], context: SourceContext) -> SqlSource:
    try:
        model = SqlSettings.model_validate(settings)
    except ValidationError as error:
        problem = error.errors()[0]
        raise ConfigError(
            f"source {name!r}: {'.'.join(map(str, problem['loc'])) or 'settings'}: {problem['msg']}",
            path=tuple(problem["loc"]),
        ) from None
    return SqlSource(name, model, context.env)
