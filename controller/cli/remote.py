"""The manual CLI against a running `tidegate serve`: `--server URL`, token from $TIDEGATE_TOKEN.

The server does the act (on whichever replica holds the rollout) and audits it under the
token's name; this only sends the request and prints the answer.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from policies.errors import TidegateError

if TYPE_CHECKING:
    import httpx  # imported when a command talks to a server: the others start faster

TOKEN_ENV = "TIDEGATE_TOKEN"
TIMEOUT = 30.0


class RemoteError(TidegateError):
    pass


def _client(server: str) -> httpx.Client:
    import httpx

    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RemoteError(f"--server needs an API token in ${TOKEN_ENV}")
    return httpx.Client(
        base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:200]}
    if response.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else body
        raise RemoteError(f"{response.request.url.path}: {response.status_code}: {detail}")
    return body


def resolve(client: httpx.Client, ref: str) -> str:
    """A rollout id, or the newest rollout of that name."""
    rows = _answer(client.get("/api/v1/rollouts"))
    if any(row["id"] == ref for row in rows):
        return ref
    named = [row for row in rows if row["name"] == ref]
    if not named:
        raise RemoteError(f"no rollout {ref!r} on the server")
    return str(max(named, key=lambda row: row["created_at"])["id"])


def act(server: str, trigger: str, ref: str, reason: str) -> str:
    import httpx

    try:
        with _client(server) as client:
            rollout_id = resolve(client, ref)
            body = _answer(client.post(f"/api/v1/rollouts/{rollout_id}/{trigger}", json={"reason": reason}))
    except httpx.HTTPError as exc:
        raise RemoteError(f"{server}: {exc}") from None
    if body["outcome"] == "pending":
        return f"{rollout_id}: {trigger} queued (request {body['id']}); follow it at {server}{body['url']}"
    return f"{rollout_id}: {body['detail']} (by {body['actor']})"


def status(server: str, ref: str | None) -> list[dict[str, Any]]:
    import httpx

    try:
        with _client(server) as client:
            if ref is None:
                return list(_answer(client.get("/api/v1/rollouts")))
            return [_answer(client.get(f"/api/v1/rollouts/{resolve(client, ref)}"))]
    except httpx.HTTPError as exc:
        raise RemoteError(f"{server}: {exc}") from None
