"""The service's tables in SQL: leases with fencing tokens, replicas, the inbox, requests.

Functions here run inside a transaction the caller (SqlStore) opened; they never commit.

Leases. Each active rollout has one row: holder, token, expires_at. A replica's claim, in
one write transaction: heartbeat itself, create rows for new rollouts, renew what it holds
(up to its fair share), then take over expired rows — selected `FOR UPDATE SKIP LOCKED` on
PostgreSQL so two replicas never wait on each other for the same row — with a
compare-and-set on the token, which grows by one at every change of hands. The fair share
is the number of active rollouts over the replicas seen within one lease period, rounded up.

Handing back. A lease the claim left out of the share is not renewed; once the replica's
worker for it has stopped, `hand_back` releases that one row with a compare-and-set on
holder and token (a row another replica took meanwhile is left alone), clearing the holder
and the expiry, so the next claim of any replica takes it instead of waiting for the expiry.

Fencing. A write made under a lease first runs `UPDATE leases SET token = token WHERE
rollout_id = ? AND holder = ? AND token = ?`: no row means another replica took over (or the
lease was handed back) and the write is refused. The UPDATE also locks the row until COMMIT,
so neither a takeover nor a handback can slip between the check and the write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from controller.core.model import RolloutId, State
from controller.store.base import Fence, FencedOut, InboxEvent, Lease, ManualRequest
from policies.series import Event

if TYPE_CHECKING:
    from controller.store.sql import Database, Row

TERMINAL = tuple(state.value for state in State if state.terminal)
_ACTIVE = f"state NOT IN ({', '.join('?' for _ in TERMINAL)})"

HEARTBEAT = (
    "INSERT INTO replicas (name, seen_at) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at"
)
CREATE_MISSING_LEASES = (
    "INSERT INTO leases (rollout_id, holder, token, expires_at)"
    f" SELECT id, '', 0, 0 FROM rollouts r WHERE {_ACTIVE}"
    " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.rollout_id = r.id)"
    " ON CONFLICT (rollout_id) DO NOTHING"
)
COUNT_ACTIVE = f"SELECT COUNT(*) FROM rollouts WHERE {_ACTIVE}"
COUNT_LIVE_REPLICAS = "SELECT COUNT(*) FROM replicas WHERE seen_at >= ?"
MINE = (
    "SELECT l.rollout_id, l.holder, l.token, l.expires_at FROM leases l"
    " JOIN rollouts r ON r.id = l.rollout_id"
    f" WHERE l.holder = ? AND r.{_ACTIVE} ORDER BY l.rollout_id"
)
RENEW_SHARE = (
    "UPDATE leases SET expires_at = ? WHERE holder = ? AND rollout_id IN ("
    " SELECT l.rollout_id FROM leases l JOIN rollouts r ON r.id = l.rollout_id"
    f" WHERE l.holder = ? AND r.{_ACTIVE} ORDER BY l.rollout_id LIMIT ?)"
)
EXPIRED = (
    "SELECT l.rollout_id, l.token FROM leases l JOIN rollouts r ON r.id = l.rollout_id"
    f" WHERE l.expires_at < ? AND r.{_ACTIVE} ORDER BY l.expires_at, l.rollout_id LIMIT ?"
)
TAKE = (
    "UPDATE leases SET holder = ?, token = token + 1, expires_at = ?"
    " WHERE rollout_id = ? AND token = ? AND expires_at < ?"
)
RELEASE = "UPDATE leases SET expires_at = 0 WHERE holder = ?"
# expires_at = 0, not the releaser's now: claimable at once whatever the claimer's clock says
HAND_BACK = "UPDATE leases SET holder = '', expires_at = 0 WHERE rollout_id = ? AND holder = ? AND token = ?"
LEAVE = "DELETE FROM replicas WHERE name = ?"
ALL_LEASES = "SELECT rollout_id, holder, token, expires_at FROM leases ORDER BY rollout_id"
ONE_LEASE = "SELECT rollout_id, holder, token, expires_at FROM leases WHERE rollout_id = ?"
FENCE = "UPDATE leases SET token = token WHERE rollout_id = ? AND holder = ? AND token = ?"
LEASE_OF = "SELECT holder, token FROM leases WHERE rollout_id = ?"

INSERT_INBOX = (
    "INSERT INTO inbox (id, endpoint, event_id, received_at, at, signal, fields_json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint, event_id) DO NOTHING"
)
SELECT_INBOX = "SELECT id, endpoint, received_at, at, signal, event_id, fields_json FROM inbox"
MAX_INBOX_ID = "SELECT COALESCE(MAX(id), 0) FROM inbox"

REQUEST_COLUMNS = "id, rollout_id, trigger_name, actor, reason, requested_at, outcome, detail, finished_at"
INSERT_REQUEST = f"INSERT INTO requests ({REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, '', NULL)"
SELECT_REQUESTS = f"SELECT {REQUEST_COLUMNS} FROM requests"
MAX_REQUEST_ID = "SELECT COALESCE(MAX(id), 0) FROM requests"
FINISH_REQUEST = (
    "UPDATE requests SET outcome = ?, detail = ?, finished_at = ? WHERE id = ? AND outcome IS NULL"
)
ROLLOUTS_WITH_REQUESTS = "SELECT DISTINCT rollout_id FROM requests WHERE outcome IS NULL ORDER BY rollout_id"
REQUEST_OUTCOMES = frozenset({"done", "refused"})


def check_fence(tx: Database, fence: Fence | None) -> None:
    """Refuse the surrounding write unless `fence` is the rollout's current lease."""
    if fence is None:
        return
    if tx.run(FENCE, (fence.rollout_id, fence.holder, fence.token)):
        return
    found = tx.rows(LEASE_OF, (fence.rollout_id,))
    now_held = f"held by {found[0][0] or 'nobody'} with token {found[0][1]}" if found else "not leased"
    raise FencedOut(
        f"rollout {fence.rollout_id}: lease token {fence.token} of {fence.holder} is stale ({now_held})"
    )


def claim(tx: Database, holder: str, now: float, ttl: float) -> list[Lease]:
    tx.run(HEARTBEAT, (holder, now))
    tx.run(CREATE_MISSING_LEASES, TERMINAL)
    active = int(tx.rows(COUNT_ACTIVE, TERMINAL)[0][0])
    replicas = max(1, int(tx.rows(COUNT_LIVE_REPLICAS, (now - ttl,))[0][0]))
    share = math.ceil(active / replicas)
    # One statement, whatever the number of leases. Beyond the fair share (the ones last in
    # id order) a lease is not renewed; the service hands it back once its worker has stopped
    # (`hand_back`), so a replica that joins gets work at its next claim.
    kept = tx.run(RENEW_SHARE, (now + ttl, holder, holder, *TERMINAL, share))
    wanted = share - kept
    if wanted > 0:
        query = EXPIRED + tx.skip_locked("l")
        for rollout_id, token in tx.rows(query, (now, *TERMINAL, wanted)):
            tx.run(TAKE, (holder, now + ttl, rollout_id, token, now))
    # Only what this claim renewed or took: a lease left out of the share is no longer this
    # replica's to act on (it stops, then hands the lease back; if it dies first, it expires).
    mine = [lease_from_row(row) for row in tx.rows(MINE, (holder, *TERMINAL))]
    return [lease for lease in mine if lease.expires_at >= now + ttl]


def release(tx: Database, holder: str) -> None:
    tx.run(RELEASE, (holder,))
    tx.run(LEAVE, (holder,))


def hand_back(tx: Database, lease: Lease) -> bool:
    """Release `lease` if its holder and token are still the row's; False when it moved."""
    return tx.run(HAND_BACK, (lease.rollout_id, lease.holder, lease.token)) > 0


def all_leases(tx: Database, rollout_id: RolloutId | None) -> list[Lease]:
    if rollout_id is None:
        return [lease_from_row(row) for row in tx.rows(ALL_LEASES)]
    return [lease_from_row(row) for row in tx.rows(ONE_LEASE, (rollout_id,))]


def lease_from_row(row: Row) -> Lease:
    rollout_id, holder, token, expires_at = row
    return Lease(RolloutId(rollout_id), holder, int(token), float(expires_at))


def push(tx: Database, endpoint: str, events: Sequence[Event], received_at: float) -> int:
    next_id = int(tx.rows(MAX_INBOX_ID)[0][0]) + 1
    added = 0
    for event in events:
        event_id = event.id if event.id is not None else f"#{next_id}"  # no id: never a duplicate
        fields = json.dumps(event.fields, sort_keys=True, default=str)
        row = (next_id, endpoint, event_id, received_at, event.time, event.signal, fields)
        if tx.run(INSERT_INBOX, row):
            added += 1
            next_id += 1
    return added


def inbox(
    tx: Database, endpoint: str, after_id: int, since: float | None, until_id: int | None
) -> list[InboxEvent]:
    query = f"{SELECT_INBOX} WHERE endpoint = ? AND id > ?"
    params: list[str | int | float | None] = [endpoint, after_id]
    if until_id is not None:
        query += " AND id <= ?"
        params.append(until_id)
    if since is not None:
        query += " AND received_at > ?"
        params.append(since)
    return [inbox_from_row(row) for row in tx.rows(query + " ORDER BY id", params)]


def inbox_from_row(row: Row) -> InboxEvent:
    inbox_id, endpoint, received_at, at, signal, event_id, fields_json = row
    event_key = None if str(event_id).startswith("#") else str(event_id)
    event = Event(float(at), signal, event_key, json.loads(fields_json))
    return InboxEvent(int(inbox_id), endpoint, float(received_at), event)


def add_request(tx: Database, rollout_id: RolloutId, trigger: str, actor: str, reason: str, at: float) -> int:
    request_id = int(tx.rows(MAX_REQUEST_ID)[0][0]) + 1
    tx.run(INSERT_REQUEST, (request_id, rollout_id, trigger, actor, reason, at))
    return request_id


def request_from_row(row: Row) -> ManualRequest:
    request_id, rollout_id, trigger, actor, reason, requested_at, outcome, detail, finished_at = row
    return ManualRequest(
        id=int(request_id),
        rollout_id=RolloutId(rollout_id),
        trigger=trigger,
        actor=actor,
        reason=reason,
        requested_at=float(requested_at),
        outcome=outcome,
        detail=detail,
        finished_at=None if finished_at is None else float(finished_at),
    )
