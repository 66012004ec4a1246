"""What the service keeps between the store and its steps: batched source-read counts, and
the inbox head in memory."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from controller.core.model import RolloutId
from controller.store.base import InboxEvent, SourceRead, Store, StoreError


class ReadsBuffer:
    """Source-read counts of every rollout, written to the store in one transaction per poll
    period instead of one per rollout step (a step must not wait for an fsync to count)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pending: list[tuple[RolloutId, Sequence[SourceRead]]] = []

    def add(self, rollout_id: RolloutId, reads: Sequence[SourceRead]) -> None:
        with self._lock:
            self._pending.append((rollout_id, reads))

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        try:
            self.store.record_source_reads_batch(batch)
        except StoreError:
            with self._lock:  # kept for the next flush: counts are late, never lost
                self._pending[:0] = batch
            raise


class CachedInbox:
    """The store's inbox for `pushed` sources, with its head kept in memory: updated by the
    poll loop and by this replica's own webhooks, so a step that has nothing new to read
    asks the store nothing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.head = store.inbox_head()

    def inbox_head(self) -> int:
        return self.head

    def inbox(
        self, endpoint: str, after_id: int = 0, since: float | None = None, until_id: int | None = None
    ) -> list[InboxEvent]:
        return self.store.inbox(endpoint, after_id, since, until_id)
