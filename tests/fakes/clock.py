"""A fake clock shared by a vendor fake and the adapter under test (STYLE.md §8: never sleep).

`clock()` is the time (epoch seconds); `sleep(s)` records the wait and moves the time on at
once, so an adapter that waits out a rate-limit block or polls an asynchronous job finishes
instantly while the fake sees exactly the time the adapter believes has passed.
"""

from __future__ import annotations

import threading


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []  # every wait asked for, in order
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    @property
    def slept(self) -> float:
        return sum(self.sleeps)
