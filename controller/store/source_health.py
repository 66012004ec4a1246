"""Per-rollout, per-source read health (schema step 2): the SQL, shared by both databases.

One row per (rollout, source), upserted with every read: counters for answered and failed
reads, the run of consecutive failures (back to 0 when a read answers), and the last error's
text, kept short and on one line. `INSERT … ON CONFLICT … DO UPDATE` is the same statement in
SQLite (3.24+) and PostgreSQL; the existing row's columns are qualified with the table name,
since PostgreSQL calls a bare name that `excluded` also has ambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from controller.store.base import SourceHealth, SourceRead

if TYPE_CHECKING:
    from controller.store.sql import Database, Param, Row

ERROR_LIMIT = 300  # characters of an error kept: enough for the source, the query and the cause

COLUMNS = (
    "rollout_id, source, ok_reads, failed_reads, consecutive_failures, last_ok_at, last_error_at, last_error"
)
ANSWERED = (
    f"INSERT INTO source_health ({COLUMNS}) VALUES (?, ?, 1, 0, 0, ?, NULL, '')"
    " ON CONFLICT (rollout_id, source) DO UPDATE SET"
    " ok_reads = source_health.ok_reads + 1,"
    " consecutive_failures = 0,"
    " last_ok_at = excluded.last_ok_at"
)
FAILED = (
    f"INSERT INTO source_health ({COLUMNS}) VALUES (?, ?, 0, 1, 1, NULL, ?, ?)"
    " ON CONFLICT (rollout_id, source) DO UPDATE SET"
    " failed_reads = source_health.failed_reads + 1,"
    " consecutive_failures = source_health.consecutive_failures + 1,"
    " last_error_at = excluded.last_error_at,"
    " last_error = excluded.last_error"
)
SELECT = f"SELECT {COLUMNS} FROM source_health WHERE rollout_id = ? ORDER BY source"


def record(tx: Database, rollout_id: str, reads: Sequence[SourceRead]) -> None:
    for read in reads:
        params: tuple[Param, ...]
        if read.error is None:
            params = (rollout_id, read.source, read.at)
            tx.run(ANSWERED, params)
        else:
            params = (rollout_id, read.source, read.at, one_line(read.error))
            tx.run(FAILED, params)


def one_line(error: str) -> str:
    """The error on one line (drivers' messages span several) and at most ERROR_LIMIT long."""
    text = " ".join(error.split())
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def from_row(row: Row) -> SourceHealth:
    _, source, ok_reads, failed_reads, consecutive, last_ok_at, last_error_at, last_error = row
    return SourceHealth(
        source=source,
        ok_reads=int(ok_reads),
        failed_reads=int(failed_reads),
        consecutive_failures=int(consecutive),
        last_ok_at=None if last_ok_at is None else float(last_ok_at),
        last_error_at=None if last_error_at is None else float(last_error_at),
        last_error=last_error,
    )
