"""What the incident sources share: settings, severity mapping, vendor calls, timestamps.

Three pull kinds read incident trackers as event streams — `pagerduty`, `sentry`, `opsgenie`
(one module each, registered in adapters/sources/registry.py) — and adapters/sources/webhooks.py
turns the same vendors' pushed payloads into the same events. Every incident becomes one
`Event`: time = when it was created, id = the vendor's id (so an incident seen twice — by a
later read, a webhook retry or both — is counted once by the evaluator's EventStream), and
fields = {"severity", "service", "status", …}: what a count rule's `match` compares.

Severity is the vendor's urgency / priority / level looked up in a configurable mapping; a
value the mapping does not name passes through lower-cased (a rule can still match it).

Every failure is a `SignalError` naming the source and what was asked ("no value" for that
tick, never a zero); the vendor's own error class (AuthFailed, RateLimited, Transient,
Permanent) is kept as its `__cause__`. Secrets travel only in headers and are redacted from
every message by `adapters.http.VendorHttp`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.errors import ActuatorError, ConfigError, SignalError
from adapters.http import RetryPolicy, VendorHttp
from adapters.sources.base import SOURCE_RETRY
from policies.timestamps import parse_timestamp

DEFAULT_SIGNAL = "incidents"
PAGE_LIMIT = 100  # the most each vendor returns per page
MAX_PAGES = 200  # a paging loop that never ends is a vendor bug: stop and say so

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class IncidentSettings(BaseModel):
    """Fields every incident source has; each kind adds its own (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str = Field(min_length=1)  # the environment variable holding the API key
    base_url: str = ""  # empty: the vendor's public API
    signal: str = Field(default=DEFAULT_SIGNAL, min_length=1)
    severity: dict[str, str] = Field(default_factory=dict)  # vendor value → severity (kind defaults)


def validate(model: type[SettingsT], settings: Mapping[str, object], where: str) -> SettingsT:
    """`settings` as `model`, or a ConfigError naming where and which field."""
    try:
        return model.model_validate(dict(settings))
    except ValidationError as error:
        problems = error.errors()
        message = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'settings'}: {problem['msg']}"
            for problem in problems
        )
        raise ConfigError(f"{where}: {message}", path=tuple(problems[0]["loc"])) from None


def severity_of(value: object, mapping: Mapping[str, str]) -> str | None:
    """The mapped severity of a vendor value; unmapped → the value lower-cased; None → None."""
    if value is None or value == "":
        return None
    text = str(value)
    for key in (text, text.lower(), text.upper()):
        if key in mapping:
            return mapping[key]
    return text.lower()


def timestamp(value: object, what: str) -> float:
    """An ISO 8601 string or epoch milliseconds (Opsgenie webhooks) as epoch seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a timestamp")
    if isinstance(value, int | float):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str) and value:
        return parse_timestamp(value)
    raise ValueError(f"{what} {value!r} is not a timestamp")


def in_window(moment: float, start: float, end: float) -> bool:
    return start < moment <= end  # the Source contract: (start, end]


class Caller:
    """One source's HTTP: credentials from the environment, every failure a SignalError."""

    def __init__(
        self,
        *,
        source: str,
        kind: str,
        client: httpx.Client,
        base_url: str,
        env: Mapping[str, str],
        token_env: str,
        authorization: Callable[[str], str],
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.where = f"source {source!r} ({kind})"
        self.kind = kind
        self.token_env = token_env
        token = env.get(token_env, "")
        self.token = token if token.strip() else None
        self.http = VendorHttp(
            client,
            vendor=kind,
            base_url=base_url,
            headers={**(headers or {}), **({"Authorization": authorization(token)} if self.token else {})},
            secrets=[token] if self.token else [],
            retry=retry or SOURCE_RETRY,
            sleep=sleep,
            clock=clock,
        )

    def get(self, path: str, params: Mapping[str, str] | list[tuple[str, str]]) -> httpx.Response:
        if self.token is None:
            raise SignalError(
                f"{self.where}: environment variable {self.token_env} is not set (a credential)"
            )
        try:
            # httpx accepts a list of pairs for repeated keys (statuses[]=…); VendorHttp types a Mapping.
            return self.http.request("GET", path, params=params)  # type: ignore[arg-type]
        except ActuatorError as error:
            raise SignalError(f"{self.where}: {error}") from error

    def json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SignalError(f"{self.where}: {what}: the answer is not JSON") from None

    @contextmanager
    def reading(self, what: str) -> Iterator[None]:
        """Turn a malformed answer (missing or ill-typed fields) into a SignalError."""
        try:
            yield
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            said = self.http._scrub(f"{type(error).__name__}: {error}")
            raise SignalError(f"{self.where}: {what}: malformed answer ({said})") from None

    def too_many_pages(self, what: str) -> SignalError:
        return SignalError(f"{self.where}: {what}: more than {MAX_PAGES} pages; narrow the query")


class IncidentSource:
    """What the pull sources share: a name, one event stream, and a Caller that carries the
    vendor's auth header. Subclasses set `kind` and `default_base_url` and implement read()."""

    kind = ""
    default_base_url = ""

    def __init__(
        self,
        name: str,
        settings: IncidentSettings,
        client: httpx.Client,
        env: Mapping[str, str],
        *,
        authorization: Callable[[str], str],
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._signal = settings.signal
        self.caller = Caller(
            source=name,
            kind=self.kind,
            client=client,
            base_url=settings.base_url or self.default_base_url,
            env=env,
            token_env=settings.token_env,
            authorization=authorization,
            headers=headers,
            sleep=sleep,
            clock=clock,
        )

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> list[str]:
        return [self._signal]
