"""The store itself, written once for both databases: SQL text, row mapping, transactions.

A backend (sqlite.py, postgres.py) only supplies a `Database`: a connection that runs the
`?`-placeholder SQL below, begins/commits transactions and serializes audit appends. Every
write is one transaction; the ones that touch the journal or the audit log take the audit
lock FIRST (before any row lock, so two writers never wait on each other in a cycle), then
read the chain head, and call `journal_point` only after the commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from enum import Enum
from types import TracebackType
from typing import Any, Protocol

from controller.core.model import Op, Operation, RolloutId, RolloutStatus, State
from controller.store import service_sql, source_health
from controller.store.audit import ChainHead, canonical_json, seal, verify
from controller.store.base import (
    AuditDraft,
    AuditEntry,
    EvaluationRow,
    Fence,
    InboxEvent,
    Intent,
    JsonValue,
    Lease,
    ManualRequest,
    PlannedIntent,
    RolloutRecord,
    SourceHealth,
    SourceRead,
    StaleStatus,
    StoreError,
    TransitionRow,
    UnknownRollout,
    VerifyReport,
)
from controller.store.faults import journal_point
from controller.store.migrations import migrate
from policies.series import Event

Param = str | int | float | None
Row = tuple[Any, ...]

OUTCOMES = frozenset({"applied", "already_done", "refused", "failed"})


class Serial(Enum):
    """What a write must be serialized with, across processes sharing the database."""

    MIGRATIONS = 1
    AUDIT = 2  # appends to the hash chain: each row needs the previous row's hash
    QUEUES = 3  # new inbox / request ids: each is the previous maximum plus one


class Database(Protocol):
    """One connection of one backend. Its methods raise the driver's errors; the store maps them."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages (never with a password)."""
        ...

    @property
    def driver_error(self) -> type[Exception]: ...

    def begin(self, write: bool) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def run(self, statement: str, params: Sequence[Param] = ()) -> int:
        """Execute a statement; return the number of rows it changed."""
        ...

    def rows(self, statement: str, params: Sequence[Param] = ()) -> list[Row]: ...

    def serialize(self, what: Serial) -> None:
        """Within the current write transaction, wait until no other writer holds `what`."""
        ...

    def skip_locked(self, table: str) -> str:
        """The clause that locks the selected rows of `table`, skipping rows another
        transaction holds ('' where the whole database is locked by the write anyway)."""
        ...

    def close(self) -> None: ...


ROLLOUT_COLUMNS = "id, name, spec_json, state, traffic, step, since, seq, reason, created_at"
INSERT_ROLLOUT = (
    f"INSERT INTO rollouts ({ROLLOUT_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_ROLLOUTS = f"SELECT {ROLLOUT_COLUMNS} FROM rollouts"
SELECT_ROLLOUT_SEQ = "SELECT seq FROM rollouts WHERE id = ?"
UPDATE_STATUS = (
    "UPDATE rollouts SET state = ?, traffic = ?, step = ?, since = ?, seq = ?, reason = ?, updated_at = ?"
    " WHERE id = ? AND seq = ?"
)
TRANSITION_COLUMNS = "rollout_id, seq, at, trigger_name, from_state, to_state, traffic, reason, actor"
INSERT_TRANSITION = f"INSERT INTO transitions ({TRANSITION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
SELECT_TRANSITIONS = f"SELECT {TRANSITION_COLUMNS} FROM transitions WHERE rollout_id = ? ORDER BY seq"
INTENT_COLUMNS = (
    "key, rollout_id, seq, target, op, traffic, version, created_at, outcome, detail, finished_at"
)
INSERT_INTENT = (
    f"INSERT INTO intents ({INTENT_COLUMNS}, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_INTENTS = f"SELECT {INTENT_COLUMNS} FROM intents WHERE rollout_id = ?"
INTENT_ORDER = " ORDER BY seq, position"
FINISH_INTENT = (
    "UPDATE intents SET outcome = ?, detail = ?, finished_at = ? WHERE key = ? AND outcome IS NULL"
)
SELECT_INTENT_OUTCOME = "SELECT outcome FROM intents WHERE key = ?"
SELECT_EVALUATIONS = (
    "SELECT rollout_id, at, decision, payload_json FROM evaluations"
    " WHERE rollout_id = ? ORDER BY at DESC LIMIT ?"
)
SELECT_LATEST_EVALUATIONS = (
    "SELECT e.rollout_id, e.at, e.decision, e.payload_json FROM evaluations e"
    " JOIN (SELECT rollout_id, MAX(at) AS at FROM evaluations GROUP BY rollout_id) newest"
    " ON e.rollout_id = newest.rollout_id AND e.at = newest.at"
)
INSERT_EVALUATION = "INSERT INTO evaluations (rollout_id, at, decision, payload_json) VALUES (?, ?, ?, ?)"
AUDIT_COLUMNS = "id, at, actor, kind, rollout_id, payload_json, prev_hash, hash"
INSERT_AUDIT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
SELECT_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM audit"
SELECT_HEAD = "SELECT last_id, last_hash FROM audit_head WHERE id = 1"
UPDATE_HEAD = "UPDATE audit_head SET last_id = ?, last_hash = ? WHERE id = 1"


class SqlStore:
    """`controller.store.base.Store` over any `Database`; safe to share between threads."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.RLock()
        try:
            with self._transaction(write=True) as tx:
                tx.serialize(Serial.MIGRATIONS)
                migrate(tx, time.time())
        except BaseException:
            db.close()
            raise

    @property
    def location(self) -> str:
        return self._db.location

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def create_rollout(self, record: RolloutRecord, audit: AuditDraft) -> None:
        with self._transaction(write=True, audited=True) as tx:
            if tx.rows(SELECT_ROLLOUT_SEQ, (record.id,)):
                raise StoreError(f"rollout {record.id} already exists")
            tx.run(INSERT_ROLLOUT, rollout_params(record))
            _append(tx, audit)
        journal_point("create_rollout")

    def get_rollout(self, rollout_id: RolloutId) -> RolloutRecord | None:
        with self._transaction() as tx:
            found = tx.rows(f"{SELECT_ROLLOUTS} WHERE id = ?", (rollout_id,))
        return rollout_from_row(found[0]) if found else None

    def list_rollouts(self) -> list[RolloutRecord]:
        with self._transaction() as tx:
            found = tx.rows(f"{SELECT_ROLLOUTS} ORDER BY created_at, id")
        return [rollout_from_row(row) for row in found]

    def commit_transition(
        self,
        rollout_id: RolloutId,
        expected_seq: int,
        status: RolloutStatus,
        transition: TransitionRow,
        intents: Sequence[PlannedIntent],
        audit: Sequence[AuditDraft],
        fence: Fence | None = None,
    ) -> None:
        if status.seq <= expected_seq or transition.rollout_id != rollout_id:
            raise StoreError(
                f"rollout {rollout_id}: a transition must advance seq past {expected_seq} (got {status.seq}) "
                f"and belong to the rollout (got {transition.rollout_id})"
            )
        with self._transaction(write=True, audited=True) as tx:
            service_sql.check_fence(tx, fence)
            if not tx.run(UPDATE_STATUS, status_params(rollout_id, expected_seq, status, transition.at)):
                _refuse_stale(tx, rollout_id, expected_seq)
            tx.run(INSERT_TRANSITION, transition_params(transition))
            for position, planned in enumerate(intents):
                tx.run(INSERT_INTENT, intent_params(transition, position, planned))
            for draft in audit:
                _append(tx, draft)
        journal_point("commit_transition")

    def finish_intent(
        self, key: str, outcome: str, detail: str, at: float, audit: AuditDraft, fence: Fence | None = None
    ) -> None:
        if outcome not in OUTCOMES:
            raise StoreError(f"intent {key!r}: outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        with self._transaction(write=True, audited=True) as tx:
            service_sql.check_fence(tx, fence)
            if not tx.run(FINISH_INTENT, (outcome, detail, at, key)):
                found = tx.rows(SELECT_INTENT_OUTCOME, (key,))
                if not found:
                    raise StoreError(f"unknown intent {key!r}")
                raise StoreError(f"intent {key!r} is already finished ({found[0][0]})")
            _append(tx, audit)
        journal_point("finish_intent")

    def unfinished_intents(self, rollout_id: RolloutId) -> list[Intent]:
        return self._intents(f"{SELECT_INTENTS} AND outcome IS NULL{INTENT_ORDER}", rollout_id)

    def intents(self, rollout_id: RolloutId) -> list[Intent]:
        return self._intents(f"{SELECT_INTENTS}{INTENT_ORDER}", rollout_id)

    def transitions(self, rollout_id: RolloutId) -> list[TransitionRow]:
        with self._transaction() as tx:
            found = tx.rows(SELECT_TRANSITIONS, (rollout_id,))
        return [transition_from_row(row) for row in found]

    def record_evaluation(
        self,
        rollout_id: RolloutId,
        at: float,
        decision: str,
        payload: Mapping[str, JsonValue],
        fence: Fence | None = None,
    ) -> None:
        with self._transaction(write=True) as tx:
            service_sql.check_fence(tx, fence)
            tx.run(INSERT_EVALUATION, (rollout_id, at, decision, canonical_json(payload)))

    def evaluations(self, rollout_id: RolloutId, limit: int = 500) -> list[EvaluationRow]:
        with self._transaction() as tx:
            found = tx.rows(SELECT_EVALUATIONS, (rollout_id, limit))
        return [EvaluationRow(RolloutId(r[0]), float(r[1]), r[2], r[3]) for r in reversed(found)]

    def latest_evaluations(self) -> dict[RolloutId, EvaluationRow]:
        with self._transaction() as tx:
            found = tx.rows(SELECT_LATEST_EVALUATIONS)
        return {RolloutId(r[0]): EvaluationRow(RolloutId(r[0]), float(r[1]), r[2], r[3]) for r in found}

    def record_source_reads(self, rollout_id: RolloutId, reads: Sequence[SourceRead]) -> None:
        if reads:
            with self._transaction(write=True) as tx:
                source_health.record(tx, rollout_id, reads)

    def record_source_reads_batch(self, batch: Sequence[tuple[RolloutId, Sequence[SourceRead]]]) -> None:
        if batch:
            with self._transaction(write=True) as tx:
                for rollout_id, reads in batch:
                    source_health.record(tx, rollout_id, reads)

    def source_health(self, rollout_id: RolloutId) -> list[SourceHealth]:
        with self._transaction() as tx:
            found = tx.rows(source_health.SELECT, (rollout_id,))
        return [source_health.from_row(row) for row in found]

    def append_audit(self, draft: AuditDraft, fence: Fence | None = None) -> AuditEntry:
        with self._transaction(write=True, audited=True) as tx:
            service_sql.check_fence(tx, fence)
            entry = _append(tx, draft)
        journal_point("append_audit")
        return entry

    def audit_log(self, rollout_id: RolloutId | None = None) -> list[AuditEntry]:
        with self._transaction() as tx:
            if rollout_id is None:
                found = tx.rows(f"{SELECT_AUDIT} ORDER BY id")
            else:
                found = tx.rows(f"{SELECT_AUDIT} WHERE rollout_id = ? ORDER BY id", (rollout_id,))
        return [audit_from_row(row) for row in found]

    def verify_audit(self) -> VerifyReport:
        with self._transaction() as tx:  # one snapshot: the rows and the head agree in time
            entries = [audit_from_row(row) for row in tx.rows(f"{SELECT_AUDIT} ORDER BY id")]
            head = tx.rows(SELECT_HEAD)
        if not head:
            return VerifyReport(
                ok=False, rows=len(entries), first_bad=None, reason="the audit chain head row was deleted"
            )
        return verify(entries, ChainHead(int(head[0][0]), str(head[0][1])))

    # --- the service: leases, pushed events, manual requests --------------------------

    def claim_leases(self, holder: str, now: float, ttl: float) -> list[Lease]:
        with self._transaction(write=True) as tx:
            return service_sql.claim(tx, holder, now, ttl)

    def release_leases(self, holder: str) -> None:
        with self._transaction(write=True) as tx:
            service_sql.release(tx, holder)

    def hand_back_lease(self, lease: Lease) -> bool:
        with self._transaction(write=True) as tx:
            return service_sql.hand_back(tx, lease)

    def leases(self, rollout_id: RolloutId | None = None) -> list[Lease]:
        with self._transaction() as tx:
            return service_sql.all_leases(tx, rollout_id)

    def push_events(self, endpoint: str, events: Sequence[Event], received_at: float) -> int:
        with self._transaction(write=True) as tx:
            tx.serialize(Serial.QUEUES)
            return service_sql.push(tx, endpoint, events, received_at)

    def inbox(
        self, endpoint: str, after_id: int = 0, since: float | None = None, until_id: int | None = None
    ) -> list[InboxEvent]:
        with self._transaction() as tx:
            return service_sql.inbox(tx, endpoint, after_id, since, until_id)

    def inbox_head(self) -> int:
        with self._transaction() as tx:
            return int(tx.rows(service_sql.MAX_INBOX_ID)[0][0])

    def rollouts_with_requests(self) -> list[RolloutId]:
        with self._transaction() as tx:
            found = tx.rows(service_sql.ROLLOUTS_WITH_REQUESTS)
        return [RolloutId(row[0]) for row in found]

    def request_act(self, rollout_id: RolloutId, trigger: str, actor: str, reason: str, at: float) -> int:
        with self._transaction(write=True) as tx:
            if not tx.rows(SELECT_ROLLOUT_SEQ, (rollout_id,)):
                raise UnknownRollout(f"unknown rollout {rollout_id}")
            tx.serialize(Serial.QUEUES)
            return service_sql.add_request(tx, rollout_id, trigger, actor, reason, at)

    def pending_requests(self, rollout_id: RolloutId) -> list[ManualRequest]:
        query = f"{service_sql.SELECT_REQUESTS} WHERE rollout_id = ? AND outcome IS NULL ORDER BY id"
        with self._transaction() as tx:
            return [service_sql.request_from_row(row) for row in tx.rows(query, (rollout_id,))]

    def get_request(self, request_id: int) -> ManualRequest | None:
        with self._transaction() as tx:
            found = tx.rows(f"{service_sql.SELECT_REQUESTS} WHERE id = ?", (request_id,))
        return service_sql.request_from_row(found[0]) if found else None

    def finish_request(
        self, request_id: int, outcome: str, detail: str, at: float, fence: Fence | None = None
    ) -> None:
        if outcome not in service_sql.REQUEST_OUTCOMES:
            raise StoreError(f"request {request_id}: outcome must be done or refused, not {outcome!r}")
        with self._transaction(write=True) as tx:
            service_sql.check_fence(tx, fence)
            if not tx.run(service_sql.FINISH_REQUEST, (outcome, detail, at, request_id)):
                raise StoreError(f"request {request_id} is unknown or already finished")

    def _intents(self, sql: str, rollout_id: RolloutId) -> list[Intent]:
        with self._transaction() as tx:
            found = tx.rows(sql, (rollout_id,))
        return [intent_from_row(row) for row in found]

    @contextmanager
    def _transaction(self, *, write: bool = False, audited: bool = False) -> Iterator[Database]:
        db = self._db
        with self._lock:
            try:
                db.begin(write)
            except db.driver_error as exc:
                raise StoreError(f"{db.location}: cannot start a transaction: {exc}") from exc
            try:
                if audited:
                    db.serialize(Serial.AUDIT)
                yield db
                db.commit()
            except db.driver_error as exc:
                self._rollback_quietly()
                raise StoreError(f"{db.location}: {exc}") from exc
            except BaseException:
                self._rollback_quietly()
                raise

    def _rollback_quietly(self) -> None:
        # the transaction may already be gone with the connection; the original error is what matters
        with suppress(self._db.driver_error):
            self._db.rollback()


def _append(tx: Database, draft: AuditDraft) -> AuditEntry:
    head = tx.rows(SELECT_HEAD)
    if not head:
        raise StoreError(f"{tx.location}: the audit chain head row is missing; the log was tampered with")
    entry = seal(draft, ChainHead(int(head[0][0]), str(head[0][1])))
    tx.run(INSERT_AUDIT, audit_params(entry))
    tx.run(UPDATE_HEAD, (entry.id, entry.hash))
    return entry


def _refuse_stale(tx: Database, rollout_id: RolloutId, expected_seq: int) -> None:
    found = tx.rows(SELECT_ROLLOUT_SEQ, (rollout_id,))
    if not found:
        raise UnknownRollout(f"unknown rollout {rollout_id}")
    raise StaleStatus(
        f"rollout {rollout_id} moved on: expected seq {expected_seq}, stored seq {int(found[0][0])}"
    )


def rollout_params(record: RolloutRecord) -> tuple[Param, ...]:
    s = record.status
    return (
        record.id,
        record.name,
        record.spec_json,
        s.state.value,
        s.traffic,
        s.step,
        s.since,
        s.seq,
        s.reason,
        record.created_at,
        record.created_at,
    )


def status_params(rollout_id: RolloutId, expected_seq: int, s: RolloutStatus, at: float) -> tuple[Param, ...]:
    return (s.state.value, s.traffic, s.step, s.since, s.seq, s.reason, at, rollout_id, expected_seq)


def rollout_from_row(row: Row) -> RolloutRecord:
    rollout_id, name, spec_json, state, traffic, step, since, seq, reason, created_at = row
    status = RolloutStatus(
        state=State(state),
        traffic=int(traffic),
        step=int(step),
        since=float(since),
        seq=int(seq),
        reason=reason,
    )
    return RolloutRecord(
        id=RolloutId(rollout_id), name=name, spec_json=spec_json, status=status, created_at=float(created_at)
    )


def transition_params(t: TransitionRow) -> tuple[Param, ...]:
    return (t.rollout_id, t.seq, t.at, t.trigger, t.before, t.after, t.traffic, t.reason, t.actor)


def transition_from_row(row: Row) -> TransitionRow:
    rollout_id, seq, at, trigger, before, after, traffic, reason, actor = row
    return TransitionRow(
        rollout_id=RolloutId(rollout_id),
        seq=int(seq),
        at=float(at),
        trigger=trigger,
        before=before,
        after=after,
        traffic=int(traffic),
        reason=reason,
        actor=actor,
    )


def intent_params(transition: TransitionRow, position: int, planned: PlannedIntent) -> tuple[Param, ...]:
    o = planned.operation
    return (
        planned.key,
        transition.rollout_id,
        transition.seq,
        o.target,
        o.op.value,
        o.traffic,
        o.version,
        transition.at,
        None,
        "",
        None,
        position,
    )


def intent_from_row(row: Row) -> Intent:
    key, rollout_id, seq, target, op, traffic, version, created_at, outcome, detail, finished_at = row
    operation = Operation(
        target=target, op=Op(op), traffic=None if traffic is None else int(traffic), version=version
    )
    return Intent(
        key=key,
        rollout_id=RolloutId(rollout_id),
        seq=int(seq),
        operation=operation,
        created_at=float(created_at),
        outcome=outcome,
        detail=detail,
        finished_at=None if finished_at is None else float(finished_at),
    )


def audit_params(e: AuditEntry) -> tuple[Param, ...]:
    return (e.id, e.at, e.actor, e.kind, e.rollout_id, e.payload_json, e.prev_hash, e.hash)


def audit_from_row(row: Row) -> AuditEntry:
    entry_id, at, actor, kind, rollout_id, payload_json, prev_hash, entry_hash = row
    return AuditEntry(
        id=int(entry_id),
        at=float(at),
        actor=actor,
        kind=kind,
        rollout_id=None if rollout_id is None else RolloutId(rollout_id),
        payload_json=payload_json,
        prev_hash=prev_hash,
        hash=entry_hash,
    )
