"""Which rollout a command means: an id, or the newest rollout of that name."""

from __future__ import annotations

from controller.core.model import RolloutId
from controller.store.base import RolloutRecord, Store
from policies.errors import TidegateError


def find_rollout(store: Store, ref: str) -> RolloutRecord:
    record = store.get_rollout(RolloutId(ref))
    if record is not None:
        return record
    named = [r for r in store.list_rollouts() if r.name == ref]
    if not named:
        raise TidegateError(f"no rollout {ref!r} in the store (see tidegate status)")
    return latest(store, named)


def latest(store: Store, records: list[RolloutRecord]) -> RolloutRecord:
    """The most recently created of `records`. Rollouts replayed from the same data share
    `created_at` (the data's start), so ties go to creation order: the id of the rollout's
    first audit row, written in the same transaction as the rollout."""

    def created(record: RolloutRecord) -> tuple[float, int]:
        first = store.audit_log(record.id)[:1]
        return record.created_at, first[0].id if first else 0

    return max(records, key=created)
