"""Errors from the outside world, translated once at each adapter's boundary.

    TidegateError (policies.errors)
     ├── ConfigError            a target's or source's settings in rollout.yaml are wrong
     ├── SignalError            a source could not give a value (callers treat it as no data)
     └── ActuatorError          a target could not be told something
          ├── Transient         worth retrying: timeouts, 5xx, connection resets
          │    └── RateLimited  the vendor said slow down (retry_after seconds, when it said)
          ├── Precondition      the target is not in a state that allows it (Argo CD 412)
          ├── AuthFailed        credentials missing or refused: retrying will not help
          └── Permanent         anything else the vendor refused for good

Callers never see httpx, botocore or psycopg exceptions (STYLE.md §4).
"""

from __future__ import annotations

from policies.errors import TidegateError


class ConfigError(TidegateError):
    """Settings for an adapter are wrong: an unknown kind, an unknown or ill-typed field.

    `path` is where in the adapter's settings mapping the problem is (e.g. `("emulates",)`), so
    the rollout loader can point at the YAML line; empty when it is about the kind itself.
    """

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


class SignalError(TidegateError):
    pass


class ActuatorError(TidegateError):
    pass


class Transient(ActuatorError):
    """Worth retrying. `retried` is set when the adapter already retried it to its own cap,
    so the runtime does not multiply attempts (4 × 4 requests) on top."""

    retried = False


class RateLimited(Transient):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Precondition(ActuatorError):
    pass


class AuthFailed(ActuatorError):
    pass


class Permanent(ActuatorError):
    pass
