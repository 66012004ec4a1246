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

import datetime
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception

from adapters.errors import ActuatorError, AuthFailed, Permanent, Precondition, RateLimited, Transient
from adapters.retry import RetryPolicy

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Headers vendors use to say when to come back: seconds, or an epoch (s or ms) of the reset.
_RESET_HEADERS = ("x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset")
_SECONDS = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", re.ASCII)  # not str.isdigit: it accepts "²"
_MESSAGE_LIMIT = 300  # characters of the vendor's own message kept in an error
# The HTTP libraries' own loggers: at DEBUG, httpcore logs response headers as received, and a
# vendor that echoes the credential back (in a header or a body) would put it in the log.
_HTTP_LIBRARIES = ("httpx", "httpcore")
_HTTP_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


Classifier = Callable[[httpx.Response, str], ActuatorError | None]


class _Redact(logging.Filter):
    """Scrubs every secret a `VendorHttp` was given from httpx / httpcore log records."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []  # longest first

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(secret in text for secret in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


_REDACT = _Redact()


def redact_http_logs(secrets: Iterable[str]) -> None:
    """From now on, these values are `***` in every httpx / httpcore log record.

    A logger's filters see only records logged on that very logger, not its children's, so the
    filter goes on each library logger by name (created here if the library has not yet).
    """
    known = set(_REDACT.secrets)
    fresh = {s for s in secrets if s and s.strip()} - known
    if fresh:
        _REDACT.secrets = sorted(known | fresh, key=len, reverse=True)
    names = set(_HTTP_LOGGERS) | {
        name for name in logging.Logger.manager.loggerDict if name.split(".")[0] in _HTTP_LIBRARIES
    }
    for name in names:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


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
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.client = client
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        # Longest first: a secret that contains another must not be half-redacted by it.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        redact_http_logs(self.secrets)
        self.retry = retry or RetryPolicy()
        self.classify = classify
        self.sleep = sleep
        self.clock = clock
        self.timeout = timeout
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
        fresh_headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> httpx.Response:
        """Send with retries; return the response when its status is in `ok`, else raise.

        `fresh_headers` are computed again for every attempt: a signature over a timestamp must
        be new on a retry, or a receiver that remembers signatures rejects it as a replay.
        """
        expected = frozenset(ok)
        retrying = Retrying(
            retry=retry_if_exception(self._worth_retrying),
            stop=self.retry.stop(),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    sent = {**(headers or {}), **(fresh_headers() if fresh_headers else {})}
                    return self._once(method, path, json_body, content, params, sent, expected)
        except Transient as error:
            error.retried = True  # retried to our cap here; the runtime must not retry again
            raise
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
                timeout=self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise Transient(
                self._scrub(f"{self.vendor}: {method} {path} timed out ({type(exc).__name__})")
            ) from None
        except httpx.UnsupportedProtocol as exc:  # a TransportError, but no retry will fix the URL
            raise Permanent(self._scrub(f"{self.vendor}: {method} {path}: bad URL: {exc}")) from None
        except httpx.TransportError as exc:  # connection refused or reset, protocol errors
            raise Transient(self._scrub(f"{self.vendor}: {method} {path} failed: {exc}")) from None
        except (httpx.RequestError, httpx.InvalidURL) as exc:  # redirect loops, undecodable bodies
            raise Permanent(self._scrub(f"{self.vendor}: {method} {path} failed: {exc}")) from None
        if response.status_code in expected:
            return response
        raise self._error(response, f"{method} {path}")

    def _error(self, response: httpx.Response, what: str) -> ActuatorError:
        said = vendor_message(response, self.secrets)
        text = self._scrub(f"{self.vendor}: {what} → {response.status_code}" + (f": {said}" if said else ""))
        if self.classify is not None:
            special = self.classify(response, text)
            if special is not None:
                return special
        return classify_status(response, text, self.clock())

    def _worth_retrying(self, error: BaseException) -> bool:
        # A vendor asking for a longer pause than `longest_wait` is not waited out in this
        # call: the error goes up at once (still a RateLimited, with its retry_after).
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after <= self.retry.longest_wait
        return isinstance(error, Transient)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after  # the vendor said when: waiting less only earns another 429
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
    """Seconds to wait from Retry-After (seconds or HTTP date) or a vendor reset header.

    Never raises: a header that is neither (garbage, negative, NaN) is ignored, and the
    answer is None or a finite number of seconds ≥ 0.
    """
    value = response.headers.get("retry-after", "").strip()
    wait = _seconds(value) if _SECONDS.fullmatch(value) else _until_http_date(value, now)
    if wait is not None:
        return wait
    for name in _RESET_HEADERS:
        reset = response.headers.get(name, "").strip()
        number = _seconds(reset) if _SECONDS.fullmatch(reset) else None
        if number is None:
            continue
        if number > 1e12:  # epoch milliseconds (LaunchDarkly)
            return max(0.0, number / 1000 - now)
        if number > 1e9:  # epoch seconds (Vercel, GitHub)
            return max(0.0, number - now)
        return number  # seconds from now (Supabase)
    return None


def _seconds(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None  # "9" * 400 is inf


def _until_http_date(text: str, now: float) -> float | None:
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": RFC 5322 for "UTC, source unknown"; not local time
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return max(0.0, parsed.timestamp() - now)
    except (OverflowError, ValueError, OSError):
        return None


def vendor_message(response: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """The vendor's own words from its error body, shortened; never the request.

    `secrets` are redacted BEFORE shortening: cut first, a secret straddling the cut would
    survive as a prefix that no longer matches it.
    """
    try:
        said = _message_in(response.json())
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        said = response.text.strip()
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        said = said.replace(secret, "***")
    return said[:_MESSAGE_LIMIT]


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
    return json.dumps(body) if body is not None else ""


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
