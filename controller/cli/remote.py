"""The CLI against a running `tidegate serve`: `--server URL`, token from $TIDEGATE_TOKEN.

For a manual act the server does the act (on whichever replica holds the rollout) and
audits it under the token's name; for `status` it answers what its store holds. This only
sends the requests and hands back the answers; every failure — no token, a refused one, an
unknown rollout, a server that does not answer — is a RemoteError of one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from policies.errors import TidegateError
from policies.timestamps import parse_timestamp

if TYPE_CHECKING:
    import httpx  # imported when a command talks to a server: the others start faster

TOKEN_ENV = "TIDEGATE_TOKEN"
TIMEOUT = 30.0
ROW_KEYS = frozenset({"id", "name", "created_at"})  # what resolve reads of each listed rollout


class RemoteError(TidegateError):
    pass


@contextmanager
def _session(server: str) -> Iterator[httpx.Client]:
    """A client for `server` with the token; the HTTP errors it raises become RemoteErrors."""
    import httpx

    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RemoteError(f"--server needs an API token in ${TOKEN_ENV}")
    try:
        with httpx.Client(
            base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        ) as client:
            yield client
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
        raise RemoteError(f"{server}: {exc}") from None


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": " ".join(response.text.split())[:200]}  # one line of an HTML error page
    if response.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else body
        hint = f" (is ${TOKEN_ENV} a token this server knows?)" if response.status_code == 401 else ""
        raise RemoteError(f"{response.request.url}: {response.status_code}: {detail}{hint}")
    return body


def _rollouts(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/api/v1/rollouts")
    rows = _answer(response)
    if not isinstance(rows, list) or not all(isinstance(r, dict) and r.keys() >= ROW_KEYS for r in rows):
        raise RemoteError(f"{response.request.url}: not a list of rollouts (is it tidegate serve?)")
    return rows


def resolve(client: httpx.Client, ref: str, rows: list[dict[str, Any]] | None = None) -> str:
    """A rollout id, or the newest rollout of that name."""
    rows = _rollouts(client) if rows is None else rows
    if any(row["id"] == ref for row in rows):
        return ref
    named = [row for row in rows if row["name"] == ref]
    if not named:
        raise RemoteError(f"no rollout {ref!r} on the server")
    # times, not their text: "…:00Z" sorts after "…:00.5Z"
    return str(max(named, key=lambda row: parse_timestamp(row["created_at"]))["id"])


def act(server: str, trigger: str, ref: str, reason: str) -> str:
    with _session(server) as client:
        rollout_id = resolve(client, ref)
        body = _answer(client.post(f"/api/v1/rollouts/{rollout_id}/{trigger}", json={"reason": reason}))
    if body["outcome"] == "pending":
        return f"{rollout_id}: {trigger} queued (request {body['id']}); follow it at {server}{body['url']}"
    return f"{rollout_id}: {body['detail']} (by {body['actor']})"


def status(server: str, ref: str | None) -> list[dict[str, Any]]:
    """The detail (`GET /api/v1/rollouts/{id}`) of the rollout `ref` names, or of every rollout."""
    with _session(server) as client:
        rows = _rollouts(client)
        ids = [str(row["id"]) for row in rows] if ref is None else [resolve(client, ref, rows)]
        return [_answer(client.get(f"/api/v1/rollouts/{rollout_id}")) for rollout_id in ids]
