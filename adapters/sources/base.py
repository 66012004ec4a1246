"""The signal-source Protocol: read the samples (or events) of named signals for a time range.

A source is bound to signal names in rollout.yaml; the runtime asks it for what arrived in
(start, end] each tick (incrementally) and feeds the evaluator. A failure, a timeout or an
empty answer is "no value" for that read — never a fabricated zero: the source raises
`SignalError` (or returns no samples) and the rule's `on_no_data` decides.

Columns use the backtest's spelling: `latency_p95` for a plain signal, `error_rate:num` and
`error_rate:den` for the two counters of a ratio signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from adapters.retry import RetryPolicy
from policies.series import Event

Columns = dict[str, tuple[list[float], list[float]]]  # column → (times, values), time-ordered

# Retries of a source's HTTP requests, within one read. A read is worth less than an actuator
# call: when it fails, the runtime reads the same interval again at the next tick, so a read
# retries quick failures (refused, 5xx: 3 attempts, 0.25 s then 0.5 s, jittered), waits out a
# Retry-After of at most 5 s, and starts no attempt 5 s after its first — a request that
# timed out (10 s) is not tried again. docs/sources.md "How a failing source is handled".
SOURCE_RETRY = RetryPolicy(attempts=3, initial=0.25, maximum=1.0, longest_wait=5.0, budget=5.0)


@dataclass(frozen=True)
class ReadResult:
    columns: Columns = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    queries: int = 0  # requests issued for this read (for `signals check` and benchmarks)
    bytes_read: int = 0


class Source(Protocol):
    @property
    def name(self) -> str: ...

    def columns(self) -> list[str]:
        """The columns (and event streams) this source provides, by signal name."""
        ...

    def read(self, start: float, end: float) -> ReadResult:
        """Everything with a timestamp in (start, end]. Raises adapters.errors.SignalError."""
        ...
