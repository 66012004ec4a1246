"""`webhook`: POST each message as JSON to any receiver, optionally signed.

The body (JSON, keys sorted, no spaces):

    {"id": "<rollout>/<message key>", "timestamp": "<event time, RFC 3339>", "signal": "tidegate",
     "kind": "start|mitigation|resolved|human|notice|progress", "rollout": "…",
     "text": "<the rendered template>", "fields": {<the template's fields>},
     "details": {<the event's structured details>}}

`id` is stable for the same message, so a receiver drops a repeat (a retry whose answer was
lost); it is also sent as the `Idempotency-Key` header. With `secret_env`, every attempt is
signed like tidegate's generic incoming webhooks — `X-Tidegate-Timestamp: <unix seconds>`,
`X-Tidegate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` — afresh on each
retry, so a receiver can verify with `adapters.sources.webhooks.verify_generic` (whose replay
guard would reject a resent signature). The body even parses as a generic delivery there:
one event with `id`, `timestamp` and `signal: tidegate`.

Answers: 2xx is delivered; the rest as adapters/http.py classifies it (5xx, 408, timeouts
and 429 retried; 401/403 and other 4xx given up at once).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from adapters.http import RetryPolicy
from adapters.sources.webhooks import sign_generic
from controller.notify.endpoint import endpoint_http
from controller.notify.messages import Message
from controller.notify.templates import Templates
from policies.timestamps import format_timestamp

SIGNAL = "tidegate"


def body(message: Message, text: str) -> bytes:
    payload = {
        "id": f"{message.rollout}/{message.key}",
        "timestamp": format_timestamp(message.at),
        "signal": SIGNAL,
        "kind": message.kind.value,
        "rollout": message.rollout,
        "text": text,
        "fields": dict(message.fields),
        "details": dict(message.details),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class Webhook:
    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None,
        client: httpx.Client,
        templates: Templates,
        *,
        retry: RetryPolicy,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._secret = secret
        self._templates = templates
        self._clock = clock
        self.secrets: tuple[str, ...] = (secret,) if secret else ()
        self._http, self._path = endpoint_http(
            client,
            f"webhook {name}",
            url,
            self.secrets,
            retry=retry,
            timeout=timeout,
            sleep=sleep,
            clock=clock,
        )

    @property
    def name(self) -> str:
        return self._name

    def render(self, message: Message) -> str:
        return self._templates.render(message)

    def deliver(self, message: Message, text: str) -> None:
        content = body(message, text)
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"{message.rollout}/{message.key}"}
        self._http.request(
            "POST", self._path, content=content, headers=headers, fresh_headers=self._sign(content)
        )

    def _sign(self, content: bytes) -> Callable[[], dict[str, str]] | None:
        secret = self._secret
        if secret is None:
            return None
        return lambda: sign_generic(secret, content, int(self._clock()))
