"""The audit log is hash-chained: each kind of tampering is reported at the right first row.

The tampering is done with plain SQL on a connection of its own, as someone with access to
the database (not to tidegate) would. Then property tests of `audit.verify` on its own.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.model import RolloutId
from controller.store.audit import GENESIS_HASH, ChainHead, canonical_json, row_hash, seal, verify
from controller.store.base import AuditDraft, AuditEntry, JsonValue
from controller.store.sql import SqlStore
from tests.conftest import StoreDatabase, audit_draft

ROWS = 5
R1 = RolloutId("r1")


@pytest.fixture
def chained(store: SqlStore) -> SqlStore:
    for n in range(1, ROWS + 1):
        store.append_audit(audit_draft("r1", at=1000.0 + n, kind="manual", n=n, why=f"reason {n}"))
    assert store.verify_audit().ok
    return store


def test_an_edited_payload_is_a_hash_mismatch_at_that_row(chained: SqlStore, store_db: StoreDatabase) -> None:
    store_db.execute("UPDATE audit SET payload_json = ? WHERE id = 3", ('{"n":3,"why":"nothing to see"}',))

    report = chained.verify_audit()
    assert (report.ok, report.first_bad) == (False, 3)
    assert "edited" in report.reason


def test_an_edited_actor_is_a_hash_mismatch_at_that_row(chained: SqlStore, store_db: StoreDatabase) -> None:
    store_db.execute("UPDATE audit SET actor = 'someone-else' WHERE id = 2")

    assert chained.verify_audit().first_bad == 2


def test_an_edited_row_with_a_recomputed_hash_breaks_the_next_link(
    chained: SqlStore, store_db: StoreDatabase
) -> None:
    forged = replace(chained.audit_log()[2], payload_json='{"n":3}')
    store_db.execute(
        "UPDATE audit SET payload_json = ?, hash = ? WHERE id = 3", (forged.payload_json, row_hash(forged))
    )

    report = chained.verify_audit()
    assert (report.ok, report.first_bad) == (False, 4)
    assert "prev_hash does not match row 3" in report.reason


def test_a_deleted_middle_row_is_a_gap_at_the_next_id(chained: SqlStore, store_db: StoreDatabase) -> None:
    store_db.execute("DELETE FROM audit WHERE id = 3")

    report = chained.verify_audit()
    assert (report.ok, report.rows, report.first_bad) == (False, ROWS - 1, 4)
    assert "expected id 3 but found 4" in report.reason


def test_a_deleted_first_row_is_a_gap_at_id_two(chained: SqlStore, store_db: StoreDatabase) -> None:
    store_db.execute("DELETE FROM audit WHERE id = 1")

    assert chained.verify_audit().first_bad == 2


def test_a_deleted_last_row_is_caught_by_the_chain_head(chained: SqlStore, store_db: StoreDatabase) -> None:
    store_db.execute("DELETE FROM audit WHERE id = ?", (ROWS,))

    report = chained.verify_audit()
    assert (report.ok, report.first_bad) == (False, ROWS)
    assert "newest rows were deleted" in report.reason


def test_an_emptied_log_is_caught_by_the_chain_head(chained: SqlStore, store_db: StoreDatabase) -> None:
    store_db.execute("DELETE FROM audit")

    report = chained.verify_audit()
    assert (report.ok, report.rows, report.first_bad) == (False, 0, 1)


def test_swapped_rows_break_the_chain_at_the_first_moved_row(
    chained: SqlStore, store_db: StoreDatabase
) -> None:
    for statement in (
        "UPDATE audit SET id = -1 WHERE id = 2",
        "UPDATE audit SET id = 2 WHERE id = 3",
        "UPDATE audit SET id = 3 WHERE id = -1",
    ):
        store_db.execute(statement)

    report = chained.verify_audit()
    assert (report.ok, report.first_bad) == (False, 2)
    assert "prev_hash does not match row 1" in report.reason


def test_a_row_appended_by_hand_is_beyond_the_chain_head(chained: SqlStore, store_db: StoreDatabase) -> None:
    last = chained.audit_log()[-1]
    forged = seal(audit_draft("r1", kind="manual", why="backdated"), ChainHead(last.id, last.hash))
    store_db.execute(
        "INSERT INTO audit (id, at, actor, kind, rollout_id, payload_json, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            forged.id,
            forged.at,
            forged.actor,
            forged.kind,
            forged.rollout_id,
            forged.payload_json,
            forged.prev_hash,
            forged.hash,
        ),
    )

    report = chained.verify_audit()
    assert (report.ok, report.first_bad) == (False, ROWS + 1)


def test_a_deleted_chain_head_is_reported(chained: SqlStore, store_db: StoreDatabase) -> None:
    store_db.execute("DELETE FROM audit_head")

    report = chained.verify_audit()
    assert not report.ok
    assert "head" in report.reason


def test_appends_continue_the_chain_after_a_reopen(chained: SqlStore, store_db: StoreDatabase) -> None:
    with store_db.open() as reopened:
        entry = reopened.append_audit(audit_draft("r1", kind="manual"))
        assert entry.id == ROWS + 1
        assert reopened.verify_audit().ok


def test_rewriting_the_tail_and_the_head_together_is_not_detected(
    chained: SqlStore, store_db: StoreDatabase
) -> None:
    """The documented limit: the hashes hold no secret, so someone with write access who
    also rewinds the head leaves a valid shorter chain. Anchoring the head hash outside the
    database is what would catch this."""
    kept = chained.audit_log()[-2]
    store_db.execute("DELETE FROM audit WHERE id = ?", (ROWS,))
    store_db.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", (kept.id, kept.hash))

    assert chained.verify_audit().ok


# --- audit.verify and canonical JSON on their own --------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
payloads = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def chain(payload_list: list[dict[str, JsonValue]]) -> list[AuditEntry]:
    head, entries = ChainHead(0, GENESIS_HASH), []
    for n, payload in enumerate(payload_list):
        entry = seal(AuditDraft(float(n), "tidegate", "manual", R1, payload), head)
        entries.append(entry)
        head = ChainHead(entry.id, entry.hash)
    return entries


@given(st.lists(payloads, min_size=1, max_size=8))
def test_any_sealed_chain_verifies(payload_list: list[dict[str, JsonValue]]) -> None:
    entries = chain(payload_list)
    report = verify(entries, ChainHead(entries[-1].id, entries[-1].hash))

    assert (report.ok, report.rows) == (True, len(entries))


@given(st.lists(payloads, min_size=1, max_size=8), st.data())
def test_any_edited_row_is_the_first_bad_one(
    payload_list: list[dict[str, JsonValue]], data: st.DataObject
) -> None:
    entries = chain(payload_list)
    victim = data.draw(st.integers(0, len(entries) - 1))
    entries[victim] = replace(entries[victim], payload_json=entries[victim].payload_json + " ")

    assert verify(entries).first_bad == victim + 1


@given(st.lists(payloads, min_size=2, max_size=8), st.data())
def test_any_deleted_row_is_found_at_the_next_id_or_by_the_head(
    payload_list: list[dict[str, JsonValue]], data: st.DataObject
) -> None:
    entries = chain(payload_list)
    head = ChainHead(entries[-1].id, entries[-1].hash)
    victim = data.draw(st.integers(0, len(entries) - 1))
    del entries[victim]

    report = verify(entries, head)
    assert not report.ok
    assert report.first_bad == (victim + 2 if victim < len(entries) else victim + 1)


@given(json_values)
def test_canonical_json_is_stable_under_key_order(value: JsonValue) -> None:
    assert canonical_json(json.loads(canonical_json(value))) == canonical_json(value)


def test_canonical_json_is_sorted_and_compact() -> None:
    assert (
        canonical_json({"b": [1, 2.5], "a": {"z": None, "y": "é"}}) == '{"a":{"y":"é","z":null},"b":[1,2.5]}'
    )
