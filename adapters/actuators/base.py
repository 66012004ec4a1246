"""The actuator Protocol: observe a target, apply one operation idempotently.

`apply(operation, key)` must observe first and return `AlreadyDone` when the target already
is where the operation would put it — that is what makes a restart after a crash safe: an
intent whose result was never journaled is simply applied again, and the target answers
"already done" instead of doing it twice. `key` is the journal's idempotency key; vendors
that accept one (request ids, edit ids) get it.

What a target can do is data (`capabilities`), read by the planner, not probed with hasattr.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from policies.operations import Op, Operation


@dataclass(frozen=True)
class Observed:
    """A target's state as it reports it; None where the target has no such notion."""

    version: str | None = None
    traffic: int | None = None
    paused: bool | None = None
    enabled: bool | None = None
    detail: str = ""


@dataclass(frozen=True)
class Applied:
    detail: str = ""


@dataclass(frozen=True)
class AlreadyDone:
    detail: str = ""


@dataclass(frozen=True)
class Refused:
    """The target will not do it (not supported, or a precondition a human must fix)."""

    reason: str


Result = Applied | AlreadyDone | Refused


class Actuator(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> frozenset[Op]: ...

    def observe(self) -> Observed: ...

    def apply(self, operation: Operation, key: str) -> Result: ...


def satisfied(operation: Operation, observed: Observed) -> bool:
    """Whether `observed` already reflects `operation` (the observe-first check)."""
    op = operation.op
    if op is Op.SET_TRAFFIC:
        return observed.traffic == operation.traffic
    if op is Op.ROLLBACK:
        return observed.version == operation.version
    if op is Op.PAUSE:
        return observed.paused is True
    if op is Op.RESUME:
        return observed.paused is False
    if op is Op.DISABLE:
        return observed.enabled is False
    return observed.enabled is True
