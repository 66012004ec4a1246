"""`count` events matching `match` in (t − within, t], each id counted once."""

from __future__ import annotations

from bisect import bisect_right, insort

from policies.rules.base import Reading, Rule
from policies.schema import CountPolicy
from policies.series import Event


class EventCount(Rule):
    __slots__ = ("match", "times", "within")

    def __init__(self, policy: CountPolicy) -> None:
        super().__init__(policy, policy.count)
        self.match = tuple(policy.match.items())
        self.within = policy.within
        self.times: list[float] = []  # matching events, sorted

    def offer(self, event: Event) -> None:
        """Called for each new (already deduplicated) event of this rule's stream."""
        fields = event.fields
        for name, wanted in self.match:
            if fields.get(name) != wanted:
                return
        if self.times and event.time < self.times[-1]:
            insort(self.times, event.time)
        else:
            self.times.append(event.time)

    def matching(self, time: float) -> int:
        times = self.times
        end = len(times) if not times or times[-1] <= time else bisect_right(times, time)
        return end - bisect_right(times, time - self.within, 0, end)

    def read(self, time: float) -> Reading:
        count = self.matching(time)
        return True, self.holds(count), float(count)

    def describe(self, time: float) -> str:
        wanted = ", ".join(f"{k}={v}" for k, v in self.match) or "any"
        return f"{self.matching(time)} events ({wanted}) in the last {self.within:g}s"

    def retention(self) -> float:
        return self.within

    def forget_through(self, time: float) -> None:
        count = bisect_right(self.times, time)
        if count >= 64 and count * 2 >= len(self.times):
            del self.times[:count]


class EventStream:
    """One named stream of events; drops repeated ids (webhooks deliver twice)."""

    __slots__ = ("rules", "seen")

    def __init__(self) -> None:
        self.rules: list[EventCount] = []
        self.seen: dict[str, float] = {}  # id → time, in arrival order

    def add(self, event: Event) -> bool:
        """Feed one event; False when its id was already counted."""
        if event.id is not None:
            if event.id in self.seen:
                return False
            self.seen[event.id] = event.time
        for rule in self.rules:
            rule.offer(event)
        return True

    def forget_through(self, time: float) -> None:
        # Ids are never forgotten: a redelivery hours later may carry a new timestamp, and
        # forgetting its id would count it a second time (first delivery wins, DESIGN.md).
        for rule in self.rules:
            rule.forget_through(time)
