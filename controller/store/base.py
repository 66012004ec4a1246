"""The store's records and the one interface both backends implement.

Crash safety lives in `commit_transition` and `finish_intent`: the first writes the new
status, the transition and every intended operation (with its idempotency key) in ONE
transaction before anything is actuated; the second records each operation's result. On a
restart, intents without a result are reconciled by observing their targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.core.model import Operation, RolloutId, RolloutStatus
from policies.errors import TidegateError
from policies.series import Event

JsonValue = str | int | float | bool | None | Sequence["JsonValue"] | Mapping[str, "JsonValue"]


class StoreError(TidegateError):
    """The store cannot be opened or used (bad URL, unreachable database, newer schema)."""


class StaleStatus(StoreError):
    """Someone else moved the rollout since we read it (optimistic concurrency)."""


class UnknownRollout(StoreError):
    pass


class FencedOut(StoreError):
    """A write carried a lease token that is no longer current: another replica took the
    rollout over. The write is refused so a paused-then-resumed old holder cannot act."""


class LeaseLost(FencedOut):
    """This replica's lease ran out on its own clock (it was paused, or could not renew):
    it must stop acting on the rollout before anyone else starts."""


@dataclass(frozen=True)
class Fence:
    """Proof of the lease a write is made under (the fencing token of DDIA ch. 8)."""

    rollout_id: RolloutId
    holder: str
    token: int


@dataclass(frozen=True)
class Lease:
    rollout_id: RolloutId
    holder: str
    token: int  # grows by one each time the rollout changes hands
    expires_at: float

    @property
    def fence(self) -> Fence:
        return Fence(self.rollout_id, self.holder, self.token)


@dataclass(frozen=True)
class InboxEvent:
    """A pushed event (incident webhook) as stored for whichever replica holds the rollout."""

    id: int  # grows in arrival order across replicas: readers keep a cursor on it
    endpoint: str
    received_at: float
    event: Event


@dataclass(frozen=True)
class ManualRequest:
    """A person's act asked through the API, done by the replica holding the rollout."""

    id: int
    rollout_id: RolloutId
    trigger: str  # rollback | pause | resume | promote
    actor: str
    reason: str
    requested_at: float
    outcome: str | None = None  # None while pending: done | refused
    detail: str = ""
    finished_at: float | None = None


@dataclass(frozen=True)
class EvaluationRow:
    rollout_id: RolloutId
    at: float
    decision: str
    payload_json: str


@dataclass(frozen=True)
class RolloutRecord:
    id: RolloutId
    name: str
    spec_json: str  # the validated rollout spec, so a restart needs no file
    status: RolloutStatus
    created_at: float


@dataclass(frozen=True)
class PlannedIntent:
    key: str  # idempotency key: rollout id, transition seq, target, operation
    operation: Operation


@dataclass(frozen=True)
class Intent:
    key: str
    rollout_id: RolloutId
    seq: int
    operation: Operation
    created_at: float
    outcome: str | None = None  # None while unfinished: applied | already_done | refused | failed
    detail: str = ""
    finished_at: float | None = None


@dataclass(frozen=True)
class TransitionRow:
    rollout_id: RolloutId
    seq: int
    at: float
    trigger: str
    before: str
    after: str
    traffic: int
    reason: str
    actor: str


@dataclass(frozen=True)
class AuditDraft:
    at: float
    actor: str  # "tidegate" for automatic acts, the person (or token name) for manual ones
    kind: str  # created | decision | transition | action | manual | page
    rollout_id: RolloutId | None
    payload: Mapping[str, JsonValue]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    kind: str
    rollout_id: RolloutId | None
    payload_json: str  # canonical JSON (sorted keys, no spaces)
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class SourceRead:
    """How one tick's read of one source went: answered (`error` None) or not."""

    source: str
    at: float
    error: str | None = None  # the SignalError's text: secret-free by the sources' contract


@dataclass(frozen=True)
class SourceHealth:
    """One rollout's reads of one source so far (`tidegate status`)."""

    source: str
    ok_reads: int
    failed_reads: int
    consecutive_failures: int  # 0 once a read answers again
    last_ok_at: float | None
    last_error_at: float | None
    last_error: str  # "" until a read fails; kept after recovery, with last_error_at


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    rows: int
    first_bad: int | None = None  # id (or position) of the first row that breaks the chain
    reason: str = ""


class Store(Protocol):
    def close(self) -> None: ...

    def create_rollout(self, record: RolloutRecord, audit: AuditDraft) -> None: ...

    def get_rollout(self, rollout_id: RolloutId) -> RolloutRecord | None: ...

    def list_rollouts(self) -> list[RolloutRecord]: ...

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
        """Atomically: check the stored status still has `expected_seq` (else StaleStatus),
        save `status`, the transition, the intents (unfinished) and the audit rows. With a
        `fence`, the write is refused (FencedOut) unless that lease is still the current one."""
        ...

    def finish_intent(
        self, key: str, outcome: str, detail: str, at: float, audit: AuditDraft, fence: Fence | None = None
    ) -> None:
        """Atomically record an intent's result and its audit row; unknown key → StoreError."""
        ...

    def unfinished_intents(self, rollout_id: RolloutId) -> list[Intent]: ...

    def intents(self, rollout_id: RolloutId) -> list[Intent]: ...

    def transitions(self, rollout_id: RolloutId) -> list[TransitionRow]: ...

    def record_evaluation(
        self,
        rollout_id: RolloutId,
        at: float,
        decision: str,
        payload: Mapping[str, JsonValue],
        fence: Fence | None = None,
    ) -> None: ...

    def evaluations(self, rollout_id: RolloutId, limit: int = 500) -> list[EvaluationRow]:
        """The newest `limit` recorded decision changes, oldest first."""
        ...

    def latest_evaluations(self) -> dict[RolloutId, EvaluationRow]:
        """Each rollout's newest recorded decision change, in one query (the rollouts list)."""
        ...

    def record_source_reads(self, rollout_id: RolloutId, reads: Sequence[SourceRead]) -> None:
        """Count a tick's reads into the rollout's per-source health, in one transaction."""
        ...

    def source_health(self, rollout_id: RolloutId) -> list[SourceHealth]:
        """Per source, by name; sources never read are absent."""
        ...

    def record_source_reads_batch(self, batch: Sequence[tuple[RolloutId, Sequence[SourceRead]]]) -> None:
        """Many rollouts' reads in one transaction (the service flushes them so)."""
        ...

    def append_audit(self, draft: AuditDraft, fence: Fence | None = None) -> AuditEntry: ...

    def audit_log(self, rollout_id: RolloutId | None = None) -> list[AuditEntry]: ...

    def verify_audit(self) -> VerifyReport: ...

    # --- the service: leases, pushed events, manual requests (controller/service) ----------

    def claim_leases(self, holder: str, now: float, ttl: float) -> list[Lease]:
        """Heartbeat `holder`, renew its leases and take over expired or unheld ones up to a
        fair share of the active rollouts among live replicas; return what it holds. Its
        leases beyond the share are not renewed: the caller stops working them, then hands
        each back (`hand_back_lease`)."""
        ...

    def release_leases(self, holder: str) -> None:
        """Give up every lease (expire them now, tokens kept) and leave the replica set."""
        ...

    def hand_back_lease(self, lease: Lease) -> bool:
        """Give up this one lease (holder cleared, expired now, token kept) so any replica's
        next claim takes it — only while `lease`'s holder and token are still the row's:
        False, and nothing changed, when it had already moved."""
        ...

    def leases(self, rollout_id: RolloutId | None = None) -> list[Lease]:
        """Every lease row, or the one of `rollout_id`."""
        ...

    def push_events(self, endpoint: str, events: Sequence[Event], received_at: float) -> int:
        """Store pushed events, once per (endpoint, event id); return how many were new."""
        ...

    def inbox(
        self, endpoint: str, after_id: int = 0, since: float | None = None, until_id: int | None = None
    ) -> list[InboxEvent]:
        """Events of `endpoint` with after_id < id <= until_id (and received after `since`),
        in id order."""
        ...

    def inbox_head(self) -> int:
        """The newest inbox id (0 when empty): a cheap "did anything arrive?" for pollers."""
        ...

    def rollouts_with_requests(self) -> list[RolloutId]:
        """Rollouts with manual requests still pending."""
        ...

    def request_act(self, rollout_id: RolloutId, trigger: str, actor: str, reason: str, at: float) -> int:
        """Queue a person's act for the rollout's holder; UnknownRollout if there is none."""
        ...

    def pending_requests(self, rollout_id: RolloutId) -> list[ManualRequest]: ...

    def get_request(self, request_id: int) -> ManualRequest | None: ...

    def finish_request(
        self, request_id: int, outcome: str, detail: str, at: float, fence: Fence | None = None
    ) -> None: ...
