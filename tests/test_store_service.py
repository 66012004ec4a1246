"""The service's store tables on both backends: leases and fencing, the inbox, requests."""

from __future__ import annotations

import pytest

from controller.core.model import RolloutId, RolloutStatus, State
from controller.store.base import Fence, FencedOut, Lease, StoreError, UnknownRollout
from controller.store.sql import SqlStore
from policies.series import Event
from tests.conftest import StoreDatabase, audit_draft, planned, rollout_record, transition_row

TTL = 10.0


def _rollouts(store: SqlStore, count: int) -> list[RolloutId]:
    ids = [RolloutId(f"r{i:02d}") for i in range(count)]
    for rollout_id in ids:
        store.create_rollout(rollout_record(rollout_id), audit_draft(rollout_id, kind="created"))
    return ids


def _advance(store: SqlStore, rollout_id: RolloutId, fence: Fence | None) -> None:
    before = RolloutStatus(State.PENDING, 0, 0, 1000.0)
    after = before.moved(State.PROGRESSING, traffic=10, step=0, since=1001.0, reason="start")
    store.commit_transition(
        rollout_id,
        0,
        after,
        transition_row(before, after, rollout_id),
        [planned(rollout_id, 1, "web", 10)],
        [audit_draft(rollout_id, at=1001.0, kind="transition")],
        fence=fence,
    )


def test_a_lone_replica_holds_every_active_rollout(store: SqlStore) -> None:
    ids = _rollouts(store, 5)
    leases = store.claim_leases("a", now=2000.0, ttl=TTL)
    assert [lease.rollout_id for lease in leases] == ids
    assert {lease.token for lease in leases} == {1}
    assert all(lease.expires_at == 2000.0 + TTL for lease in leases)


def test_renewal_keeps_the_token_and_extends_the_expiry(store: SqlStore) -> None:
    _rollouts(store, 2)
    store.claim_leases("a", now=2000.0, ttl=TTL)
    renewed = store.claim_leases("a", now=2005.0, ttl=TTL)
    assert {(lease.token, lease.expires_at) for lease in renewed} == {(1, 2015.0)}


def test_two_replicas_share_the_rollouts_fairly(store: SqlStore) -> None:
    _rollouts(store, 6)
    store.claim_leases("a", now=2000.0, ttl=TTL)  # a alone: takes all six
    store.claim_leases("b", now=2001.0, ttl=TTL)  # b joins: nothing has expired yet
    a = store.claim_leases("a", now=2009.0, ttl=TTL)  # a renews only its share of three
    assert len(a) == 3  # the other three are no longer a's to act on; they expire at 2010
    assert store.claim_leases("b", now=2009.5, ttl=TTL) == []  # … and nobody's before that
    b = store.claim_leases("b", now=2011.0, ttl=TTL)
    a = store.claim_leases("a", now=2011.5, ttl=TTL)
    assert len(a) == 3 and len(b) == 3
    assert {x.rollout_id for x in a}.isdisjoint({x.rollout_id for x in b})


def test_a_handed_back_lease_moves_at_the_next_claim_not_at_its_expiry(store: SqlStore) -> None:
    _rollouts(store, 6)
    store.claim_leases("a", now=2000.0, ttl=TTL)  # a alone: takes all six
    store.claim_leases("b", now=2001.0, ttl=TTL)  # b joins: nothing is free yet
    kept = store.claim_leases("a", now=2001.5, ttl=TTL)  # a renews its share of three
    surplus = [lease for lease in store.leases() if lease.holder == "a" and lease not in kept]
    assert len(surplus) == 3
    assert all(store.hand_back_lease(lease) for lease in surplus)
    handed = {x.rollout_id for x in surplus}
    assert {(x.holder, x.token, x.expires_at) for x in store.leases() if x.rollout_id in handed} == {
        ("", 1, 0.0)
    }
    b = store.claim_leases("b", now=2002.0, ttl=TTL)  # long before the surplus would expire
    assert {x.rollout_id for x in b} == handed
    assert {x.token for x in b} == {2}
    assert {x.rollout_id for x in store.claim_leases("a", now=2002.5, ttl=TTL)} == {
        x.rollout_id for x in kept
    }


def test_a_handback_without_the_current_holder_and_token_changes_nothing(store: SqlStore) -> None:
    (rollout_id,) = _rollouts(store, 1)
    (old,) = store.claim_leases("a", now=2000.0, ttl=TTL)
    (new,) = store.claim_leases("b", now=2011.0, ttl=TTL)  # a stopped renewing; b took it over
    assert not store.hand_back_lease(old)  # a's token is stale: b's lease stays b's
    forged = Lease(rollout_id, "c", new.token, new.expires_at)
    assert not store.hand_back_lease(forged)  # the right token, but not c's
    assert store.leases(rollout_id) == [new]
    assert store.claim_leases("a", now=2012.0, ttl=TTL) == []  # nothing was freed for a
    _advance(store, rollout_id, new.fence)  # b still writes under its lease
    (again,) = store.claim_leases("a", now=2022.0, ttl=TTL)  # b stopped renewing; a took it back
    assert not store.hand_back_lease(old)  # a's own name, but the token of its earlier tenure
    assert store.leases(rollout_id) == [again] and again.token == 3


def test_a_handed_back_lease_fences_out_its_old_holder(store: SqlStore) -> None:
    (rollout_id,) = _rollouts(store, 1)
    (lease,) = store.claim_leases("a", now=2000.0, ttl=TTL)
    assert store.hand_back_lease(lease)
    assert not store.hand_back_lease(lease)  # once only
    with pytest.raises(FencedOut, match="held by nobody"):
        _advance(store, rollout_id, lease.fence)
    assert store.transitions(rollout_id) == []


def test_a_dead_replicas_leases_are_taken_over_with_a_new_token(store: SqlStore) -> None:
    ids = _rollouts(store, 4)
    store.claim_leases("a", now=2000.0, ttl=TTL)
    assert store.claim_leases("b", now=2005.0, ttl=TTL) == []  # a's leases are still live
    taken = store.claim_leases("b", now=2011.0, ttl=TTL)  # a stopped renewing at 2000
    assert [lease.rollout_id for lease in taken] == ids
    assert {lease.token for lease in taken} == {2}
    assert store.claim_leases("a", now=2012.0, ttl=TTL) == []  # back from the dead: nothing left


def test_a_stale_fence_refuses_every_journal_write(store: SqlStore) -> None:
    (rollout_id,) = _rollouts(store, 1)
    (old,) = store.claim_leases("a", now=2000.0, ttl=TTL)
    (new,) = store.claim_leases("b", now=2011.0, ttl=TTL)
    with pytest.raises(FencedOut, match="stale"):
        _advance(store, rollout_id, old.fence)
    with pytest.raises(FencedOut):
        store.append_audit(audit_draft(rollout_id, kind="page"), fence=old.fence)
    with pytest.raises(FencedOut):
        store.record_evaluation(rollout_id, 2012.0, "hold", {}, fence=old.fence)
    assert store.transitions(rollout_id) == []  # nothing of the refused write landed
    _advance(store, rollout_id, new.fence)
    key = store.unfinished_intents(rollout_id)[0].key
    with pytest.raises(FencedOut):
        store.finish_intent(key, "applied", "", 2013.0, audit_draft(rollout_id, kind="action"), old.fence)
    store.finish_intent(key, "applied", "", 2013.0, audit_draft(rollout_id, kind="action"), new.fence)
    assert store.verify_audit().ok


def test_an_expired_lease_nobody_took_still_writes(store: SqlStore) -> None:
    # Fencing is about who holds the token, not the clock: a slow holder that nobody
    # replaced may still finish its work.
    (rollout_id,) = _rollouts(store, 1)
    (lease,) = store.claim_leases("a", now=2000.0, ttl=TTL)
    _advance(store, rollout_id, lease.fence)
    assert store.get_rollout(rollout_id) is not None


def test_release_lets_another_replica_take_over_at_once(store: SqlStore) -> None:
    _rollouts(store, 3)
    store.claim_leases("a", now=2000.0, ttl=TTL)
    store.release_leases("a")
    taken = store.claim_leases("b", now=2000.5, ttl=TTL)
    assert len(taken) == 3 and {lease.token for lease in taken} == {2}


def test_finished_rollouts_are_not_leased(store: SqlStore) -> None:
    ids = _rollouts(store, 2)
    before = RolloutStatus(State.PENDING, 0, 0, 1000.0)
    done = before.moved(State.PROMOTED, traffic=100, step=2, since=1001.0, reason="promoted")
    store.commit_transition(ids[0], 0, done, transition_row(before, done, ids[0]), [], [])
    assert [lease.rollout_id for lease in store.claim_leases("a", 2000.0, TTL)] == [ids[1]]


def test_the_inbox_keeps_each_event_once_in_arrival_order(store: SqlStore) -> None:
    first = Event(1990.0, "incidents", "P1", {"severity": "high"})
    again = Event(1991.0, "incidents", "P1", {"severity": "high", "status": "acknowledged"})
    other = Event(1992.0, "incidents", "P2", {"severity": "low"})
    assert store.push_events("pagerduty", [first], received_at=2000.0) == 1
    assert store.push_events("pagerduty", [again, other], received_at=2001.0) == 1
    assert store.push_events("sentry", [first], received_at=2002.0) == 1  # endpoints are separate
    got = store.inbox("pagerduty")
    assert [item.event for item in got] == [first, other]
    assert store.inbox("pagerduty", after_id=got[0].id) == got[1:]
    assert [item.event.id for item in store.inbox("pagerduty", since=2000.5)] == ["P2"]


def test_events_without_an_id_are_all_kept(store: SqlStore) -> None:
    anonymous = Event(1990.0, "alerts", None, {"severity": "high"})
    assert store.push_events("generic", [anonymous, anonymous], received_at=2000.0) == 2
    assert [item.event for item in store.inbox("generic")] == [anonymous, anonymous]


def test_requests_queue_for_the_holder_and_finish_once(store: SqlStore) -> None:
    (rollout_id,) = _rollouts(store, 1)
    (lease,) = store.claim_leases("a", now=2000.0, ttl=TTL)
    first = store.request_act(rollout_id, "rollback", "alice", "checkout broken", 2001.0)
    second = store.request_act(rollout_id, "pause", "bob", "looking", 2002.0)
    assert second == first + 1
    assert [r.trigger for r in store.pending_requests(rollout_id)] == ["rollback", "pause"]
    store.finish_request(first, "done", "rolled back", 2003.0, lease.fence)
    with pytest.raises(StoreError, match="already finished"):
        store.finish_request(first, "done", "again", 2004.0, lease.fence)
    request = store.get_request(first)
    assert request is not None and (request.outcome, request.actor) == ("done", "alice")
    assert [r.id for r in store.pending_requests(rollout_id)] == [second]
    with pytest.raises(UnknownRollout):
        store.request_act(RolloutId("nope"), "rollback", "alice", "x", 2005.0)


def test_two_connections_never_hold_the_same_rollout(store_db: StoreDatabase) -> None:
    """Two replicas claiming at the same moment on separate connections split the work."""
    one, two = store_db.open(), store_db.open()
    try:
        _rollouts(one, 10)
        a = one.claim_leases("a", now=2000.0, ttl=TTL)
        two.claim_leases("b", now=2000.0, ttl=TTL)
        one.claim_leases("a", now=2008.0, ttl=TTL)  # renews its share of five only
        # a took everything first; once its surplus expires, b gets exactly the rest
        b = two.claim_leases("b", now=2010.5, ttl=TTL)
        a = one.claim_leases("a", now=2010.6, ttl=TTL)
        assert len(a) + len(b) == 10
        assert {x.rollout_id for x in a}.isdisjoint({x.rollout_id for x in b})
    finally:
        one.close()
        two.close()
