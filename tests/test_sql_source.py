"""The `sql` source against the real PostgreSQL, in a fresh schema shaped like the runbooks'.

The bindings under test are the runbooks' own health queries (docs/sources.md ships them):
the work_queue backlog, the oldest pending minutes and the `v_order_state_issues` row count.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from adapters.errors import ConfigError, SignalError
from adapters.sources.registry import SOURCES, SourceContext, build_source
from adapters.sources.sql import SqlSource, build, redact
from tests.conftest import PostgresTestDatabase, require_postgres

DOCS = Path(__file__).resolve().parent.parent / "docs" / "sources.md"


def shipped_bindings() -> dict[str, str]:
    """The ready bindings docs/sources.md ships, on this test's schema instead of `public`."""
    text = DOCS.read_text(encoding="utf-8").split("### Ready bindings", 1)[1]
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    signals: dict[str, str] = yaml.safe_load(block)["signals"]
    return {name: query.replace("public.", "") for name, query in signals.items()}


RUNBOOK = shipped_bindings()
SCHEMA = """
create table work_queue (
    id bigserial primary key,
    status text not null,
    created_at timestamptz not null default now(),
    locked_at timestamptz,
    locked_by text
);
create table orders (
    id bigserial primary key,
    stage text not null,
    assignee_id bigint,
    packing_complete_at timestamptz
);
create view v_order_state_issues as
    select id, stage, 'complete without packing timestamp' as issue
    from orders where stage = 'Complete' and packing_complete_at is null
    union all
    select id, stage, 'packing finished but not complete'
    from orders where stage <> 'Complete' and packing_complete_at is not null;
"""
PASSWORD = "pw-Tide-9f3c1e"
END = 1_790_000_000.0


@pytest.fixture
def database() -> Iterator[PostgresTestDatabase]:
    require_postgres()
    db = PostgresTestDatabase(f"tidegate_sql_{uuid.uuid4().hex[:12]}")
    try:
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(SCHEMA.encode())
            conn.execute(
                "insert into work_queue (status, created_at, locked_at) values "
                "('pending', now() - interval '20 minutes', now() - interval '19 minutes'), "
                "('pending', now() - interval '3 minutes', now() - interval '2 minutes'), "
                "('pending', now(), null), ('done', now() - interval '2 hours', null), "
                "('failed', now(), null)"
            )
            conn.execute(
                "insert into orders (stage, packing_complete_at) values "
                "('Complete', null), ('Packing', now()), ('Complete', now()), ('Filling', null)"
            )
        yield db
    finally:
        db.drop()


def dsn_with_password(db: PostgresTestDatabase) -> str:
    """The test DSN with a password (trust auth ignores it) — to prove it never leaks."""
    return db.url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def source(db: PostgresTestDatabase, signals: dict[str, str] | None = None, timeout: str = "5s") -> SqlSource:
    settings = {"dsn_env": "HEALTH_DSN", "statement_timeout": timeout, "signals": signals or RUNBOOK}
    built = build_source(
        "sql", "db-health", settings, SourceContext(env={"HEALTH_DSN": dsn_with_password(db)})
    )
    assert isinstance(built, SqlSource)
    return built


def test_sql_is_a_registered_kind() -> None:
    assert SOURCES["sql"] is build


def test_runbook_queries_read_the_present(database: PostgresTestDatabase) -> None:
    src = source(database)
    try:
        result = src.read(END - 60, END)
    finally:
        src.close()
    assert src.columns() == [
        "queue_backlog",
        "oldest_pending_min",
        "order_state_issues",
        "stuck_locks",
        "queue_failure_rate",
    ]
    assert result.queries == 5
    assert result.columns["queue_backlog"] == ([END], [3.0])
    assert result.columns["order_state_issues"] == ([END], [2.0])
    assert result.columns["stuck_locks"] == ([END], [1.0])
    assert result.columns["queue_failure_rate:num"] == ([END], [1.0])
    assert result.columns["queue_failure_rate:den"] == ([END], [5.0])
    times, values = result.columns["oldest_pending_min"]
    assert times == [END]
    assert 19.9 < values[0] < 21.0  # the 20-minute-old pending row


def test_oldest_pending_is_zero_when_the_queue_is_empty(database: PostgresTestDatabase) -> None:
    database.execute("delete from work_queue where status = 'pending'")
    src = source(database)
    try:
        result = src.read(END - 60, END)
    finally:
        src.close()
    # the runbook's own coalesce(…, 0): an empty queue is honestly 0 minutes old
    assert result.columns["oldest_pending_min"] == ([END], [0.0])
    assert result.columns["queue_backlog"] == ([END], [0.0])


def test_null_and_no_row_are_no_sample(database: PostgresTestDatabase) -> None:
    database.execute("delete from work_queue where status = 'pending'")
    signals = {
        "oldest_raw": "select extract(epoch from (now() - min(created_at))) / 60 as value "
        "from work_queue where status = 'pending'",
        "no_row": "select 1 as value where false",
        "ratio_null": "select null::int as num, 10 as den",
    }
    src = source(database, signals)
    try:
        result = src.read(END - 60, END)
    finally:
        src.close()
    assert result.columns == {
        "oldest_raw": ([], []),
        "no_row": ([], []),
        "ratio_null:num": ([], []),
        "ratio_null:den": ([], []),
    }


def test_ratio_signal_gives_num_and_den(database: PostgresTestDatabase) -> None:
    signals = {
        "failure_rate": "select count(*) filter (where status = 'failed') as num, count(*) as den "
        "from work_queue"
    }
    src = source(database, signals)
    try:
        result = src.read(END - 60, END)
    finally:
        src.close()
    assert result.columns == {"failure_rate:num": ([END], [1.0]), "failure_rate:den": ([END], [5.0])}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("select 1 as value union all select 2", "expected one row"),
        ("select 1 as n", "expected one column `value`"),
        ("select 'x' as value", "expected a number"),
        ("select count(*) as value from no_such_table", "query failed"),
    ],
)
def test_malformed_answers_are_signal_errors(
    database: PostgresTestDatabase, query: str, message: str
) -> None:
    src = source(database, {"broken": query})
    try:
        with pytest.raises(SignalError, match=message) as caught:
            src.read(END - 60, END)
    finally:
        src.close()
    assert "'broken'" in str(caught.value)


def test_statement_timeout_is_a_signal_error(database: PostgresTestDatabase) -> None:
    src = source(database, {"slow": "select 1 as value from pg_sleep(3)"}, timeout="200ms")
    began = time.monotonic()
    try:
        with pytest.raises(SignalError, match=r"signal 'slow': timed out after 200ms"):
            src.read(END - 60, END)
        assert time.monotonic() - began < 2.5
        # the connection survives a timeout and the next read works
        src.settings = src.settings.model_copy(update={"signals": {"fast": "select 7 as value"}})
        assert src.read(END - 60, END).columns == {"fast": ([END], [7.0])}
    finally:
        src.close()


def test_bindings_cannot_write(database: PostgresTestDatabase) -> None:
    src = source(database, {"sneaky": "update work_queue set locked_at = null returning 1 as value"})
    try:
        with pytest.raises(SignalError, match="read-only transaction"):
            src.read(END - 60, END)
    finally:
        src.close()
    assert database.execute("select count(*) from work_queue where status = 'pending'") == [(3,)]


def test_connection_is_reused_and_reopened_once_when_dropped(database: PostgresTestDatabase) -> None:
    src = source(database, {"pid": "select pg_backend_pid() as value"})
    try:
        first = src.read(END - 60, END).columns["pid"][1][0]
        assert src.read(END, END + 60).columns["pid"][1][0] == first  # reused
        database.execute("select pg_terminate_backend(?)", (int(first),))
        second = src.read(END + 60, END + 120).columns["pid"][1][0]
        assert second != first  # reopened, and the read succeeded
    finally:
        src.close()


def test_errors_never_show_the_password(database: PostgresTestDatabase) -> None:
    bad_db = dsn_with_password(database).replace("/test?", "/no_such_db_tidegate?")
    src = build(
        "db-health", {"dsn_env": "HEALTH_DSN", "signals": RUNBOOK}, SourceContext(env={"HEALTH_DSN": bad_db})
    )
    with pytest.raises(SignalError, match="cannot connect") as caught:
        src.read(END - 60, END)
    assert PASSWORD not in str(caught.value)
    assert "HEALTH_DSN" in str(caught.value)
    src = source(database, {"leaky": f"select '{PASSWORD}'::int as value"})
    try:
        with pytest.raises(SignalError) as caught:
            src.read(END - 60, END)
    finally:
        src.close()
    assert PASSWORD not in str(caught.value)


def test_missing_dsn_variable_is_named() -> None:
    src = build("db-health", {"dsn_env": "HEALTH_DSN", "signals": RUNBOOK}, SourceContext(env={}))
    with pytest.raises(SignalError, match="environment variable HEALTH_DSN is not set"):
        src.read(END - 60, END)


@pytest.mark.parametrize(
    "settings",
    [
        {"signals": RUNBOOK},
        {"dsn_env": "X", "signals": {}},
        {"dsn_env": "X", "signals": RUNBOOK, "statement_timeout": "soon"},
        {"dsn_env": "X", "signals": RUNBOOK, "dsn": "postgresql://…"},
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build("db-health", settings, SourceContext(env={}))


def test_redact() -> None:
    dsn = f"postgresql://u:{PASSWORD}@h/db"
    assert PASSWORD not in redact(f"failed for {dsn} password={PASSWORD}", dsn)
