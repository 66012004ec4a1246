"""The Dispatcher: an `Observer` that tells people what the runtime does, and never holds it up.

    Reconciler ──event──▶ Dispatcher.__call__           (in the rollout's own thread; O(1))
                            compose → dedupe → render → append to each notifier's queue
                          Channel worker thread, one per notifier
                            deliver with retries (adapters/http.py) → count sent / failed

The rollout's thread only composes, renders and appends to a bounded in-memory queue; all
network I/O happens on the notifier's own worker thread, so a notifier that hangs, fails or
rate-limits delays nothing but its own later messages, and one notifier never delays
another. A full queue drops its oldest message (counted, with a warning): the newest says
more about where the rollout is. Nothing the notifiers do can raise into the Reconciler.

Guarantees (docs/notifications.md): each message is attempted until a receiver accepts it
or its attempts are spent (at least once while the process lives: a lost answer means a
resend, which receivers recognise by the message id). The same message — same rollout, same
key — is sent once within the dedupe window, so a decision told again (a rollout reloaded)
is not announced twice. `close(timeout)` flushes the queues on shutdown, then gives up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from adapters.errors import ActuatorError
from controller.core.model import RolloutId
from controller.notify.messages import Composer, Message, MessageKind
from controller.runtime import Event

log = logging.getLogger("tidegate.notify")
DEDUPE_WINDOW = 3600.0  # seconds of event time a message key is remembered
SEEN_CAPACITY = 100_000  # keys remembered at most; the oldest go first


class Notifier(Protocol):
    """What a Channel needs of a notifier: a name, the secret values to keep out of logs,
    the message in its own words, and a delivery that raises ActuatorError on failure."""

    secrets: tuple[str, ...]

    @property
    def name(self) -> str: ...

    def render(self, message: Message) -> str: ...

    def deliver(self, message: Message, text: str) -> None: ...


class Abandoned(Exception):
    """Raised into a retry's wait once the dispatcher closed and its flush time ran out."""


class Shutdown:
    """The waits between retries: they end early, raising Abandoned, once `abandon()` is called."""

    def __init__(self) -> None:
        self._abandoned = threading.Event()

    def sleep(self, seconds: float) -> None:
        if self._abandoned.wait(seconds):
            raise Abandoned("notifications closed")

    def abandon(self) -> None:
        self._abandoned.set()


@dataclass(frozen=True)
class Counters:
    sent: int = 0
    failed: int = 0  # given up: a permanent answer, or every attempt spent
    dropped: int = 0  # never attempted to the end: the queue was full, or shutdown came first
    pending: int = 0  # waiting in the queue now


@dataclass(frozen=True)
class _Delivery:
    message: Message
    text: str


class Channel:
    """One notifier: its bounded queue, the worker thread draining it, and its counters."""

    def __init__(self, notifier: Notifier, wants: frozenset[MessageKind], capacity: int) -> None:
        self.notifier = notifier
        self.wants = wants
        self.capacity = capacity
        self._queue: deque[_Delivery] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._worker: threading.Thread | None = None
        self._sent = self._failed = self._dropped = 0

    def offer(self, message: Message) -> None:
        if message.kind not in self.wants:
            return
        delivery = _Delivery(message, self.notifier.render(message))
        with self._ready:
            self._queue.append(delivery)
            if len(self._queue) > self.capacity:
                oldest = self._queue.popleft()
                self._dropped += 1
                log.warning(
                    "notifier %s: queue full (%d), dropped the oldest message (%s for %s); %d dropped so far",
                    self.notifier.name, self.capacity, oldest.message.kind.value,
                    oldest.message.rollout, self._dropped,
                )  # fmt: skip
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name=f"tidegate-notify-{self.notifier.name}", daemon=True
                )
                self._worker.start()
            self._ready.notify()

    def counters(self) -> Counters:
        with self._ready:
            return Counters(self._sent, self._failed, self._dropped, len(self._queue))

    def finish(self) -> None:
        """Deliver what is queued, then let the worker end."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()

    def join(self, deadline: float) -> bool:
        """Wait for the worker until `deadline` (time.monotonic); True when it ended."""
        worker = self._worker
        if worker is not None:
            worker.join(max(0.0, deadline - time.monotonic()))
        return worker is None or not worker.is_alive()

    def drop_queued(self) -> None:
        with self._ready:
            left = len(self._queue)
            self._queue.clear()
            self._dropped += left
        if left:
            log.warning(
                "notifier %s: shutting down, dropped %d undelivered message(s)", self.notifier.name, left
            )

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closing:
                    self._ready.wait()
                if not self._queue:
                    return
                delivery = self._queue.popleft()
            self._deliver(delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        message = delivery.message
        outcome, problem = "sent", ""
        try:
            self.notifier.deliver(message, delivery.text)
        except Abandoned:
            outcome, problem = "dropped", "shutdown came before it was delivered"
        except ActuatorError as error:
            outcome, problem = "failed", str(error)
        except Exception as error:  # a notifier must never take its worker down
            outcome, problem = "failed", f"{type(error).__name__}: {error}"
        with self._ready:
            if outcome == "sent":
                self._sent += 1
            elif outcome == "failed":
                self._failed += 1
            else:
                self._dropped += 1
        if problem:
            log.warning(
                "notifier %s: %s message for %s %s: %s",
                self.notifier.name, message.kind.value, message.rollout, outcome, self._scrub(problem),
                extra={"rollout": message.rollout},
            )  # fmt: skip

    def _scrub(self, text: str) -> str:
        # Adapters already redact their errors; this is the last line for anything else.
        for secret in sorted(self.notifier.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


class _Seen:
    """Message keys told recently, forgotten after `window` seconds of event time."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._at: OrderedDict[tuple[str, str], float] = OrderedDict()

    def first(self, message: Message) -> bool:
        while self._at and (
            next(iter(self._at.values())) < message.at - self.window or len(self._at) >= SEEN_CAPACITY
        ):
            self._at.popitem(last=False)
        key = (message.rollout, message.key)
        if key in self._at:
            return False
        self._at[key] = message.at
        return True


class Dispatcher:
    """The runtime's Observer for notifications. Build it with `build_dispatcher`."""

    def __init__(
        self, channels: Sequence[Channel], shutdown: Shutdown, *, dedupe_window: float = DEDUPE_WINDOW
    ) -> None:
        self.channels = tuple(channels)
        self._shutdown = shutdown
        self._composer = Composer()
        self._seen = _Seen(dedupe_window)
        self._lock = threading.Lock()
        self._closed = False
        self.deduplicated = 0  # messages not sent again because their key was seen in the window

    def __call__(self, event: Event) -> None:
        try:
            with self._lock:  # one event at a time: messages keep the order of the events
                if self._closed:
                    return
                for message in self._composer.compose(event):
                    if not self._seen.first(message):
                        self.deduplicated += 1
                        continue
                    for channel in self.channels:
                        channel.offer(message)
        except Exception:  # telling people must never break the rollout being told about
            log.exception("notifications: could not handle a %s event for %s", event.kind, event.rollout)

    def forget(self, rollout: RolloutId) -> None:
        """This process stops watching `rollout` (its lease moved): drop its incident notes."""
        with self._lock:
            self._composer.forget(rollout)

    def counters(self) -> dict[str, Counters]:
        """Per notifier name: sent, failed, dropped, pending (for /metrics)."""
        return {channel.notifier.name: channel.counters() for channel in self.channels}

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking events, deliver what is queued for up to `timeout` seconds, then give up
        on the rest (counted as dropped) without waiting for a hanging receiver."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
        for channel in self.channels:
            channel.finish()
        if all([channel.join(deadline) for channel in self.channels]):
            return
        self._shutdown.abandon()  # waits between retries end now
        for channel in self.channels:
            channel.drop_queued()
