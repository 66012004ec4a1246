"""`slack`: post each message to a Slack incoming webhook.

`POST <webhook URL>` with `{"text": …}`. Slack answers 200 `ok`; its documented failures
(api.slack.com changelog 2016-05-17, "Improving error conditions for Incoming Webhooks", and
its rate-limit page) map through adapters/http.py like any vendor's:
  - 400 `invalid_payload` / `user_not_found` → Permanent: resending the same body cannot help;
  - 403 `action_prohibited` / `invalid_token`, 404 `no_service` / `channel_not_found` (a revoked,
    rotated or unknown webhook), 410 `channel_is_archived` → AuthFailed / Permanent at once;
  - 429 with Retry-After (about one message a second per webhook, short bursts allowed)
    → waited out, then retried; 500 `rollup_error` and timeouts → retried with backoff.

The webhook URL is the credential: whoever has it can post to the channel. It is read from
the environment, and it, its path and its token are redacted from every error and from
httpx's own log records; counters and logs name the notifier, never the URL.

Message text is Slack mrkdwn, where `&`, `<` and `>` are control characters (links,
mentions): they are escaped in the values put into a template, not in the template itself,
so a template may still hold a link such as `<https://grafana.internal/d/checkout|dashboard>`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from adapters.http import RetryPolicy
from controller.notify.endpoint import endpoint_http
from controller.notify.messages import Message
from controller.notify.templates import Templates

SLACK_OK = (200,)


def mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Slack:
    def __init__(
        self,
        name: str,
        url: str,
        client: httpx.Client,
        templates: Templates,
        *,
        retry: RetryPolicy,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._templates = templates
        path = httpx.URL(url).raw_path.decode("ascii")
        token = path.rstrip("/").rsplit("/", 1)[-1]
        self.secrets: tuple[str, ...] = tuple(s for s in (url, path, token) if len(s) >= 8)
        self._http, self._path = endpoint_http(
            client, f"slack {name}", url, self.secrets, retry=retry, timeout=timeout, sleep=sleep, clock=clock
        )

    @property
    def name(self) -> str:
        return self._name

    def render(self, message: Message) -> str:
        return self._templates.render(message, mrkdwn_escape)

    def deliver(self, message: Message, text: str) -> None:
        self._http.request("POST", self._path, json_body={"text": text}, ok=SLACK_OK)
