"""The `pushed` source: events that arrived by webhook, as one rollout's event stream.

rollout.yaml:

    sources:
      incidents:
        kind: pushed
        endpoint: pagerduty      # a webhook endpoint of controller.yaml (`webhooks:`)
        signal: incidents        # the stream name count rules match (default: incidents)

Webhook deliveries are verified by `tidegate serve` (adapters/sources/webhooks.py) and kept in
the store's inbox, once per (endpoint, event id), so every replica sees them and whichever
holds the rollout reads them. This source only reads that inbox: the first read takes what
arrived after the start of the history window, each later one what arrived since (a cursor
on the inbox's arrival order, not on clocks, so a delivery stamped by a replica whose clock
is behind is never skipped; only deliveries from before the history window are ignored).
Outside `tidegate serve` there is no inbox: reading is an error (no data), never an empty
stream that would look healthy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.errors import ConfigError, SignalError
from adapters.sources.base import ReadResult
from adapters.sources.incidents import DEFAULT_SIGNAL
from policies.series import Event

if TYPE_CHECKING:
    from adapters.sources.registry import SourceContext


class Pushed(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def event(self) -> Event: ...


class Inbox(Protocol):
    """What the store offers (controller.store.base.Store.inbox / inbox_head)."""

    def inbox_head(self) -> int: ...

    def inbox(
        self, endpoint: str, after_id: int = 0, since: float | None = None, until_id: int | None = None
    ) -> Sequence[Pushed]: ...


class PushedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(min_length=1)
    signal: str = Field(default=DEFAULT_SIGNAL, min_length=1)


class PushedSource:
    def __init__(self, name: str, settings: PushedSettings, inbox: Inbox | None) -> None:
        self._name = name
        self.settings = settings
        self._inbox = inbox
        self._cursor = 0  # the last inbox id read
        self._since: float | None = None

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> list[str]:
        return [self.settings.signal]

    def read(self, start: float, end: float) -> ReadResult:
        if self._inbox is None:
            raise SignalError(
                f"source {self._name!r} (pushed): webhook events reach a rollout only under "
                "`tidegate serve`; there is no inbox here"
            )
        if self._since is None:
            self._since = start  # the history window's start: older deliveries never matter
        # Ids are given in commit order, so everything up to the head read first is there to
        # read; when nothing arrived anywhere since the last read, no query is needed (the
        # service answers inbox_head from memory).
        head = self._inbox.inbox_head()
        if head <= self._cursor:
            return ReadResult({}, [], 0, 0)
        endpoint = self.settings.endpoint
        items = self._inbox.inbox(endpoint, after_id=self._cursor, since=self._since, until_id=head)
        self._cursor = head
        signal = self.settings.signal
        events = [item.event._replace(signal=signal) for item in items]
        return ReadResult({}, events, 1, 0)


def build(name: str, settings: Mapping[str, object], context: SourceContext) -> PushedSource:
    try:
        parsed = PushedSettings.model_validate(settings)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "settings"
        raise ConfigError(
            f"source {name!r} (pushed): {field}: {problem['msg']}", path=tuple(problem["loc"])
        ) from None
    return PushedSource(name, parsed, context.inbox)
