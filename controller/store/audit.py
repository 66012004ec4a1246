"""The audit log's hash chain: canonical JSON, sealing a row, verifying the chain.

Each row's `hash` is sha256(prev_hash + canonical JSON of the row's content: id, at, actor,
kind, rollout_id, payload_json); the first row's prev_hash is GENESIS_HASH. Ids run 1..n.
Besides the rows, the store keeps a one-row *chain head* (the last id and hash), written in
the same transaction as every append. `verify` then tells, for the first row that breaks:

- a row's content edited (payload, actor, time …)   → hash mismatch at that row;
- a row edited AND its hash recomputed              → prev_hash mismatch at the next row;
- a middle row deleted                              → id gap at the next row;
- rows reordered (ids or contents swapped)          → prev_hash mismatch at the first moved row;
- the newest row(s) deleted                         → the head names more rows than remain
  (a chain alone cannot see this: what is left is a valid, shorter chain);
- rows appended by hand                             → rows beyond the head.

What it cannot detect: someone with write access who rewrites the tail (or the whole chain)
and the head consistently — the hashes carry no secret. Anchoring the head hash outside the
database (a log line, a ticket, a signed export) is what closes that gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from controller.store.base import AuditDraft, AuditEntry, JsonValue, StoreError, VerifyReport

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class ChainHead:
    """The newest row as the store recorded it at append time."""

    last_id: int
    last_hash: str


GENESIS_HEAD = ChainHead(last_id=0, last_hash=GENESIS_HASH)


def canonical_json(value: JsonValue) -> str:
    """Sorted keys, no spaces, no NaN/Infinity: one byte string per value, so hashes recompute."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"value cannot be stored as canonical JSON: {exc}") from None


def row_hash(entry: AuditEntry) -> str:
    """The hash `entry` must carry, from its prev_hash and content (its own `hash` is ignored)."""
    content = canonical_json(
        {
            "id": entry.id,
            # float(): an int time and the float the database gives back must hash alike
            "at": float(entry.at),
            "actor": entry.actor,
            "kind": entry.kind,
            "rollout_id": entry.rollout_id,
            "payload_json": entry.payload_json,
        }
    )
    return hashlib.sha256((entry.prev_hash + content).encode("utf-8")).hexdigest()


def seal(draft: AuditDraft, head: ChainHead) -> AuditEntry:
    """The row that follows `head` in the chain."""
    unsealed = AuditEntry(
        id=head.last_id + 1,
        at=float(draft.at),
        actor=draft.actor,
        kind=draft.kind,
        rollout_id=draft.rollout_id,
        payload_json=canonical_json(draft.payload),
        prev_hash=head.last_hash,
        hash="",
    )
    return replace(unsealed, hash=row_hash(unsealed))


def verify(rows: Sequence[AuditEntry], head: ChainHead | None = None) -> VerifyReport:
    """Check `rows` (ordered by id) form an intact chain from genesis, and, when `head` is
    given, that the chain ends where the head says it does."""
    prev = GENESIS_HEAD
    for row in rows:
        broken = _link_error(prev, row)
        if broken:
            return VerifyReport(ok=False, rows=len(rows), first_bad=row.id, reason=broken)
        prev = ChainHead(row.id, row.hash)
    if head is not None and head != prev:
        first_bad, reason = _head_error(prev, head)
        return VerifyReport(ok=False, rows=len(rows), first_bad=first_bad, reason=reason)
    return VerifyReport(ok=True, rows=len(rows))


def _link_error(prev: ChainHead, row: AuditEntry) -> str:
    expected_id = prev.last_id + 1
    if row.id != expected_id:
        return (
            f"expected id {expected_id} but found {row.id}: "
            f"row(s) {expected_id}..{row.id - 1} are missing or ids were changed"
        )
    if row.prev_hash != prev.last_hash:
        before = f"row {prev.last_id}" if prev.last_id else "the genesis hash"
        return f"prev_hash does not match {before}: an earlier row was changed, replaced or reordered"
    if row_hash(row) != row.hash:
        return "hash does not match the row's content: the row was edited"
    return ""


def _head_error(chain_end: ChainHead, head: ChainHead) -> tuple[int, str]:
    if head.last_id > chain_end.last_id:
        return (
            chain_end.last_id + 1,
            f"the log ends at id {chain_end.last_id} but the chain head records {head.last_id} rows: "
            "the newest rows were deleted",
        )
    if head.last_id < chain_end.last_id:
        return (
            head.last_id + 1,
            f"rows after id {head.last_id} were not appended by tidegate: the chain head ends there",
        )
    return head.last_id, "the newest row's hash differs from the chain head: it was rewritten"
