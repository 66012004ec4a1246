"""`open_store` picks the backend from its argument and the environment, and its errors
never carry a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.store import open_store
from controller.store.base import StoreError
from controller.store.postgres import PostgresStore, redact
from controller.store.sqlite import SqliteStore
from tests.conftest import StoreDatabase, audit_draft

BACKENDS = {"sqlite": SqliteStore, "postgres": PostgresStore}


def test_open_store_follows_the_environment(
    store_db: StoreDatabase, clean_store_env: pytest.MonkeyPatch
) -> None:
    for name, value in store_db.env().items():
        clean_store_env.setenv(name, value)

    opened = open_store()
    try:
        assert isinstance(opened, BACKENDS[store_db.backend])
        opened.append_audit(audit_draft(None, kind="manual"))
    finally:
        opened.close()
    with store_db.open() as same:
        assert len(same.audit_log()) == 1


def test_open_store_takes_an_explicit_location(
    store_db: StoreDatabase, clean_store_env: pytest.MonkeyPatch
) -> None:
    [location] = store_db.env().values()

    opened = open_store(location)
    try:
        assert isinstance(opened, BACKENDS[store_db.backend])
    finally:
        opened.close()


def test_open_store_defaults_to_sqlite_under_the_working_directory(
    tmp_path: Path, clean_store_env: pytest.MonkeyPatch
) -> None:
    clean_store_env.chdir(tmp_path)

    opened = open_store()
    opened.close()
    assert isinstance(opened, SqliteStore)
    assert (tmp_path / ".tidegate" / "state.db").is_file()


def test_the_database_url_wins_over_a_state_file(clean_store_env: pytest.MonkeyPatch) -> None:
    clean_store_env.setenv("TIDEGATE_DATABASE_URL", "postgresql://tidegate:s3cret-pw@127.0.0.1:1/test")

    with pytest.raises(StoreError, match="PostgreSQL"):
        open_store("state.db")


def test_an_unreachable_server_is_a_store_error_without_the_password(
    clean_store_env: pytest.MonkeyPatch,
) -> None:
    clean_store_env.setenv("TIDEGATE_DATABASE_URL", "postgresql://tidegate:s3cret-pw@127.0.0.1:1/test")

    with pytest.raises(StoreError) as caught:
        open_store()

    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "tidegate:***@127.0.0.1:1" in message
    assert caught.value.__cause__ is None  # the driver's exception is not chained onto ours


def test_a_key_value_dsn_is_redacted_too(clean_store_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore("host=127.0.0.1 port=1 user=tidegate password=s3cret-pw dbname=test")

    assert "s3cret-pw" not in str(caught.value)
    assert "password=***" in str(caught.value)


def test_a_malformed_dsn_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore("postgresql://tidegate:s3cret-pw@127.0.0.1:notaport/test")

    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgres://u:p@ss@h:5432/db", "postgres://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("host=h password='a b' user=u", "host=h password=*** user=u"),
        (
            "postgresql://h/db?user=u&password=pw&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
    ],
)
def test_redact_hides_every_password_form(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_hides_the_dsn_password_wherever_it_is_echoed() -> None:
    dsn = "postgresql://u:hunter22@h/db"
    assert redact('failed: "hunter22" rejected', dsn) == 'failed: "***" rejected'


def test_an_unwritable_state_path_is_a_store_error(
    tmp_path: Path, clean_store_env: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("not a directory")

    with pytest.raises(StoreError, match="cannot open SQLite state"):
        open_store(str(tmp_path / "a-file" / "state.db"))
