"""Many `prometheus` sources, one HTTP request per distinct range query.

A thousand rollouts bound to one Prometheus usually ask the same thing: their rollout.yaml
files differ only in `select: {rollout: …}`, so their queries (`sum by (rollout) (…)`) are
the same text, and in one tick they ask for the same step-grid window. `PrometheusBatcher`
is held by a `SourceContext`; every source built from that context hands it its requests,
keyed by `RangeKey` — base URL, a digest of the auth headers (another credential may see
other data; the digest keeps the credential itself out of the key), query text and the
start, end and step actually sent. For one key:

- one request goes out; readers arriving while it is in flight wait for it (thread-safe),
  and readers arriving after it get the stored `Answer`, parsed once, with a per-label index
  so that each source finds its own series in O(1);
- a failure is an `Answer` too (`error`): the 999 other rollouts get the same "no value"
  at once instead of retrying the same dead server in turn;
- answers live `ttl` seconds at most (default 10 s: longer than one tick's reads of 1,000
  rollouts; a later tick asks for a later window, another key, so the TTL bounds memory and
  how stale a re-read of the same window may be, not what a tick sees), at most `max_bytes`
  of response bodies are kept, oldest dropped first, and `tick()` drops them all when the
  caller's tick is over. Nothing else is ever cached.

Coalescing changes which rollout's read pays for a request, never what any read returns:
every source still filters the shared answer to its own (start, end] and its own series.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TTL = 10.0  # seconds
DEFAULT_MAX_BYTES = 32 * 1024 * 1024  # response bytes held; parsed JSON takes a few times that


@dataclass(frozen=True)
class RangeKey:
    """What makes two range requests the same request."""

    url: str
    identity: str  # auth_identity(headers): never the credential itself
    query: str
    start: float
    end: float
    step: float


def auth_identity(headers: Mapping[str, str]) -> str:
    """A digest standing for the request headers (the credential), for keys and nothing else."""
    text = "\n".join(f"{name.lower()}: {value}" for name, value in sorted(headers.items()))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Answer:
    """One query_range answer: its series (Prometheus' `result` list), or why there is none."""

    series: list[Any] = field(default_factory=list)
    size: int = 0  # bytes of the HTTP body
    error: str | None = None  # the reason; each reader raises it under its own name
    _indexes: dict[tuple[str, ...], dict[tuple[str, ...], list[Any]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def matching(self, select: Mapping[str, str]) -> list[Any] | None:
        """The series whose labels include `select`; None when no series carries those labels."""
        names = tuple(sorted(select))
        index = self._indexes.get(names)
        if index is None:  # built once per answer and label set; a racing twin builds the same
            index = {}
            for series in self.series:
                metric = series.get("metric") if isinstance(series, dict) else None
                if isinstance(metric, dict) and all(name in metric for name in names):
                    index.setdefault(tuple(metric[name] for name in names), []).append(series)
            self._indexes[names] = index
        if not index and self.series:
            return None
        return index.get(tuple(select[name] for name in names), [])


def answer_from(body: Any, size: int) -> Answer:
    """Check a decoded query_range body once; a malformed one becomes an error Answer."""
    if not isinstance(body, dict) or body.get("status") != "success":
        said = body.get("error") if isinstance(body, dict) else None
        return Answer(size=size, error=f"status is not success: {said!r}" if said else "malformed answer")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        kind = data.get("resultType") if isinstance(data, dict) else None
        return Answer(size=size, error=f"expected a matrix result, got {kind!r}")
    result = data.get("result")
    if not isinstance(result, list):
        return Answer(size=size, error="malformed answer: result is not a list")
    return Answer(result, size)


class _InFlight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: Answer | None = None


class PrometheusBatcher:
    """Coalesces identical range requests of every source built from one SourceContext."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[RangeKey, tuple[float, Answer]] = OrderedDict()  # oldest first
        self._in_flight: dict[RangeKey, _InFlight] = {}
        self._bytes = 0
        self.requests = 0  # distinct requests made (for benchmarks and tests)
        self.shared = 0  # reads served by another reader's request

    def fetch(self, key: RangeKey, load: Callable[[], Answer]) -> tuple[Answer, bool]:
        """The answer for `key` and whether this call made the request (`load`) itself."""
        with self._lock:
            self._expire(self.clock())
            stored = self._answers.get(key)
            if stored is not None:
                self.shared += 1
                return stored[1], False
            waiting = self._in_flight.get(key)
            leader = waiting is None
            if waiting is None:
                waiting = self._in_flight[key] = _InFlight()
                self.requests += 1
            else:
                self.shared += 1
        if not leader:
            waiting.done.wait()
            if waiting.answer is None:  # the leader's load raised (a bug, an interrupt): try anew
                return self.fetch(key, load)
            return waiting.answer, False
        try:
            answer = waiting.answer = load()
        finally:
            with self._lock:
                del self._in_flight[key]
                if waiting.answer is not None:
                    self._keep(key, waiting.answer)
            waiting.done.set()
        return answer, True

    @contextmanager
    def tick(self) -> Iterator[None]:
        """Read every source of one tick inside this block; its answers are dropped at the end."""
        try:
            yield
        finally:
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self._bytes = 0

    def _keep(self, key: RangeKey, answer: Answer) -> None:
        if answer.size > self.max_bytes or self.ttl <= 0:
            return
        self._answers[key] = (self.clock(), answer)
        self._bytes += answer.size
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._answers.popitem(last=False)
            self._bytes -= dropped.size

    def _expire(self, now: float) -> None:
        while self._answers:
            key, (stored_at, answer) = next(iter(self._answers.items()))
            if now - stored_at < self.ttl:
                return
            del self._answers[key]
            self._bytes -= answer.size

    def __len__(self) -> int:
        return len(self._answers)
