"""Slack incoming webhooks on loopback, answering as Slack documents.

    with FakeSlack() as slack:
        url = slack.hook()                    # http://127.0.0.1:PORT/services/T…/B…/<token>
        ... POST {"text": "..."} to url ...
        slack.texts(url)                      # what reached the channel, in order

Answers (api.slack.com changelog 2016-05-17 "Improving error conditions for Incoming
Webhooks"; Slack's rate-limit page for 429), as text bodies, not JSON:
  - 200 `ok` — posted;
  - 400 `invalid_payload` — the body is not a JSON object; 400 `no_text` — neither text nor blocks;
  - 403 `invalid_token` — a known webhook with the wrong token (rotated);
  - 404 `no_service` — no such webhook, or one that was revoked (`revoke`);
  - 410 `channel_is_archived` — the channel was archived (`archive`);
  - 429 `rate_limited` with Retry-After, 500 `rollup_error` — through `inject`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from tests.fakes.server import FakeVendor, Reply, Request

TEXT = {"Content-Type": "text/html"}  # Slack answers its webhooks in plain words


def slack_reply(status: int, words: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, words.encode(), {**TEXT, **(headers or {})})


@dataclass
class _Hook:
    token: str
    archived: bool = False
    texts: list[str] = field(default_factory=list)


class FakeSlack(FakeVendor):
    def __init__(self) -> None:
        super().__init__()
        self._hooks: dict[tuple[str, str], _Hook] = {}
        self.route("POST", r"/services/(?P<team>[^/]+)/(?P<service>[^/]+)/(?P<token>[^/]+)", self.post)

    def hook(self) -> str:
        """A new incoming webhook; its URL, token included, is the credential."""
        team, service = f"T{secrets.token_hex(4).upper()}", f"B{secrets.token_hex(4).upper()}"
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._hooks[(team, service)] = _Hook(token)
        return f"{self.url}/services/{team}/{service}/{token}"

    def revoke(self, url: str) -> None:
        with self._lock:
            del self._hooks[self._ids(url)]

    def archive(self, url: str) -> None:
        with self._lock:
            self._hooks[self._ids(url)].archived = True

    def texts(self, url: str) -> list[str]:
        with self._lock:
            hook = self._hooks.get(self._ids(url))
            return list(hook.texts) if hook is not None else []

    def post(self, request: Request) -> Reply:
        hook = self._hooks.get((request.params["team"], request.params["service"]))
        if hook is None:
            return slack_reply(404, "no_service")
        if request.params["token"] != hook.token:
            return slack_reply(403, "invalid_token")
        if hook.archived:
            return slack_reply(410, "channel_is_archived")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return slack_reply(400, "invalid_payload")
        if not isinstance(payload, dict) or not request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return slack_reply(400, "invalid_payload")
        text = payload.get("text")
        if not (isinstance(text, str) and text.strip()) and not payload.get("blocks"):
            return slack_reply(400, "no_text")
        hook.texts.append(str(text))
        return slack_reply(200, "ok")

    def _ids(self, url: str) -> tuple[str, str]:
        parts = url.rstrip("/").split("/")
        return parts[-3], parts[-2]
