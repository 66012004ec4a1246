"""The one way tidegate talks HTTP to a vendor.

Every HTTP adapter gets a `VendorHttp`: an injected `httpx.Client` (tests point it at a fake
on loopback), timeouts, capped retries with exponential backoff and jitter, Retry-After and
vendor rate-limit headers honoured, and every failure translated ONCE, here, into the error
tree of `adapters.errors` — so the runtime knows whether to retry (Transient, RateLimited),
to fix something first (Precondition), or to escalate at once (AuthFailed: a revoked token
is never retried forever; Permanent).

Secrets travel only in headers; error messages carry the method, the path, the status and
the vendor's own message, with every configured secret value redacted.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from adapters.errors import ActuatorError, AuthFailed, Permanent, Precondition, RateLimited, Transient

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Headers vendors use to say when to come back: seconds, or an epoch (s or ms) of the reset.
_RESET_HEADERS = ("x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial: float = 0.25
    maximum: float = 8.0
    longest_wait: float = 120.0  # a Retry-After beyond this is not waited out: escalate instead


Classifier = Callable[[httpx.Response, str], ActuatorError | None]


class VendorHttp:
    def __init__(
        self,
        client: httpx.Client,
        *,
        vendor: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        retry: RetryPolicy | None = None,
        classify: Classifier | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.secrets = [s for s in secrets if s]
        self.retry = retry or RetryPolicy()
        self.classify = classify
        self.sleep = sleep
        self.clock = clock
        self.calls = 0  # requests actually sent, retries included (tests and rate budgets)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Iterable[int] = (200, 201, 202, 204),
    ) -> httpx.Response:
        """Send with retries; return the response when its status is in `ok`, else raise."""
        expected = frozenset(ok)
        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._once(method, path, json_body, content, params, headers, expected)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _once(
        self,
        method: str,
        path: str,
        json_body: Any,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        expected: frozenset[int],
    ) -> httpx.Response:
        url = self.base_url + path
        self.calls += 1
        try:
            response = self.client.request(
                method,
                url,
                json=json_body,
                content=content,
                params=params,
                headers={**self.headers, **(headers or {})},
                timeout=DEFAULT_TIMEOUT,
            )
        except httpx.TimeoutException as exc:
            raise Transient(
                self._scrub(f"{self.vendor}: {method} {path} timed out ({type(exc).__name__})")
            ) from None
        except httpx.TransportError as exc:
            raise Transient(self._scrub(f"{self.vendor}: {method} {path} failed: {exc}")) from None
        if response.status_code in expected:
            return response
        raise self._error(response, f"{method} {path}")

    def _error(self, response: httpx.Response, what: str) -> ActuatorError:
        said = vendor_message(response)
        text = self._scrub(f"{self.vendor}: {what} → {response.status_code}" + (f": {said}" if said else ""))
        if self.classify is not None:
            special = self.classify(response, text)
            if special is not None:
                return special
        return classify_status(response, text, self.clock())

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self.retry.maximum * 4)
        backoff = min(self.retry.maximum, self.retry.initial * 2.0 ** (state.attempt_number - 1))
        return backoff * random.uniform(0.5, 1.0)  # jitter: a fleet of controllers must not retry in step

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def classify_status(response: httpx.Response, text: str, now: float) -> ActuatorError:
    status = response.status_code
    if status in (401, 403):
        return AuthFailed(text)
    if status == 429 or (status == 503 and retry_after(response, now) is not None):
        return RateLimited(text, retry_after(response, now))
    if status in (409, 412, 423):
        return Precondition(text)
    if status >= 500 or status == 408:
        return Transient(text)
    return Permanent(text)


def retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) or a vendor reset header."""
    value = response.headers.get("retry-after")
    if value is not None:
        value = value.strip()
        if value.replace(".", "", 1).isdigit():
            return float(value)
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is not None:
            return max(0.0, parsed.timestamp() - now)
    for name in _RESET_HEADERS:
        reset = response.headers.get(name)
        if reset is None:
            continue
        try:
            number = float(reset)
        except ValueError:
            continue
        if number > 1e12:  # epoch milliseconds
            return max(0.0, number / 1000 - now)
        if number > 1e9:  # epoch seconds
            return max(0.0, number - now)
        return number  # seconds from now
    return None


def vendor_message(response: httpx.Response) -> str:
    """The vendor's own words from its error body, shortened; never the request."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return response.text.strip()[:200]
    return _message_in(body)[:300]


def _message_in(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "error_description", "detail", "title"):
            if isinstance(body.get(key), str):
                return str(body[key])
        error = body.get("error") or body.get("errors")
        if isinstance(error, str):
            return error
        if error is not None:
            return _message_in(error)
    if isinstance(body, list) and body:
        return _message_in(body[0])
    return json.dumps(body)[:200] if body is not None else ""


__all__ = [
    "DEFAULT_TIMEOUT",
    "Permanent",
    "Precondition",
    "RateLimited",
    "RetryPolicy",
    "Transient",
    "VendorHttp",
    "classify_status",
    "retry_after",
    "vendor_message",
]
