"""The one way tidegate calls AWS: a boto3 client with tidegate's retries and error tree.

    appconfig = AwsClient("appconfig", env, region=None, profile=None, endpoint_url=None,
                          clock=time.time, sleep=time.sleep)
    appconfig.call("list_deployments", ApplicationId=…, EnvironmentId=…)

What adapters/http.py is for HTTP vendors, this is for boto3 (STYLE.md §4):
- credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the
  environment the adapter was given, else the named `profile`, else boto3's own chain (shared
  config, SSO, instance roles); region from the setting, else AWS_REGION / AWS_DEFAULT_REGION;
- the client is built on first use (it reads model files), not in a constructor;
- botocore's own retries are off (`total_max_attempts: 1`): tidegate's RetryPolicy is the only
  one — capped attempts, jittered exponential backoff, Retry-After honoured — with an
  injectable sleep, so tests run on a fake clock;
- every botocore exception is translated once, in `translate`:
    ClientError ConflictException, 409, 412                         → Precondition
    AccessDenied, UnrecognizedClient, signature / token errors, 401, 403 → AuthFailed
    Throttling, TooManyRequests, RequestLimitExceeded, 429          → RateLimited
    InternalServerException, ServiceUnavailable, 5xx                → Transient
    ResourceNotFound, BadRequest and every other ClientError        → Permanent
    EndpointConnectionError, connect / read timeouts, closed connections → Transient
    NoCredentialsError, PartialCredentialsError                     → AuthFailed
    anything else from botocore (no region, bad parameters, unknown profile) → Permanent
- secrets (the secret key, the session token) are scrubbed from our messages and from
  botocore's own log records, which at DEBUG include request headers and response bodies.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from adapters.errors import ActuatorError, AuthFailed, Permanent, Precondition, RateLimited, Transient
from adapters.http import RetryPolicy

_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)
_THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
_SERVER_CODES = frozenset({"InternalServerException", "ServiceUnavailable", "InternalFailure"})
_LIBRARIES = ("botocore", "boto3", "urllib3")


class AwsClient:
    def __init__(
        self,
        service: str,
        env: Mapping[str, str],
        *,
        region: str | None,
        profile: str | None,
        endpoint_url: str | None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.service = service
        self._env = env
        self._region = region
        self._profile = profile
        self._endpoint_url = endpoint_url
        self._clock = clock
        self._sleep = sleep
        self._retry = retry or RetryPolicy()
        self._client: Any = None

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """`client.<operation>(**params)` with retries; errors as adapters.errors."""
        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            stop=self._retry.stop(),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        answer: dict[str, Any] = getattr(self._boto(), operation)(**params)
                        return answer
                    except (ClientError, BotoCoreError) as error:
                        raise translate(error, f"{self.service}: {operation}", self.secrets()) from None
        except Transient as error:
            error.retried = True  # retried to our cap here; the runtime must not retry again
            raise
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def secrets(self) -> list[str]:
        return [v for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if (v := self._env.get(k, ""))]

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self._retry.longest_wait)
        backoff = min(self._retry.maximum, self._retry.initial * 2.0 ** (state.attempt_number - 1))
        return backoff * random.uniform(0.5, 1.0)  # jitter: a fleet of controllers must not retry in step

    def _boto(self) -> Any:
        if self._client is None:
            env = self._env
            try:
                session = boto3.session.Session(
                    aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                    aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                    aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
                    region_name=self._region
                    or env.get("AWS_REGION")
                    or env.get("AWS_DEFAULT_REGION")
                    or None,
                    profile_name=self._profile,
                )
                config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10)
                self._client = session.client(self.service, endpoint_url=self._endpoint_url, config=config)
            except BotoCoreError as error:  # an unknown profile, no region
                raise translate(error, f"{self.service}: client", self.secrets()) from None
            redact_library_logs(self.secrets())
        return self._client


def translate(error: Exception, what: str, secrets: Sequence[str] = ()) -> ActuatorError:
    """A botocore exception as our error tree; `what` names the call (`appconfig: list_deployments`)."""
    if isinstance(error, ClientError):
        text, kind = _client_error(error, what)
    elif isinstance(error, NoCredentialsError | PartialCredentialsError):
        text, kind = f"{what}: no AWS credentials ({error})", AuthFailed
    elif isinstance(error, BotoConnectionError | HTTPClientError):  # EndpointConnectionError, timeouts
        text, kind = f"{what} failed: {error}", Transient
    else:
        text, kind = f"{what}: {error}", Permanent
    for secret in secrets:
        text = text.replace(secret, "***")
    if kind is RateLimited:
        return RateLimited(text, _retry_after(error))
    return kind(text)


def _client_error(error: ClientError, what: str) -> tuple[str, type[ActuatorError]]:
    code = str(error.response.get("Error", {}).get("Code", ""))
    message = str(error.response.get("Error", {}).get("Message", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    text = f"{what} → {status} {code}: {message}"
    if code in _AUTH_CODES or status in (401, 403):
        return text, AuthFailed
    if code in _THROTTLE_CODES or status == 429:
        return text, RateLimited
    if code == "ConflictException" or status in (409, 412):
        return text, Precondition
    if status >= 500 or code in _SERVER_CODES:
        return text, Transient
    return text, Permanent  # ResourceNotFoundException (moto answers it with 400), BadRequestException, …


def _retry_after(error: Exception) -> float | None:
    headers = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
    value = str(headers.get("retry-after", "")).strip()
    return float(value) if value.replace(".", "", 1).isdigit() else None


class _Redact(logging.Filter):
    """Scrubs secrets from the AWS libraries' own records."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(secret in text for secret in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


_REDACT = _Redact()


def redact_library_logs(secrets: Sequence[str]) -> None:
    """From now on, these values are `***` in every botocore / boto3 / urllib3 log record."""
    _REDACT.secrets.update(s for s in secrets if s)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (
            isinstance(logger, logging.Logger)
            and name.split(".")[0] in _LIBRARIES
            and _REDACT not in logger.filters
        ):
            logger.addFilter(_REDACT)
