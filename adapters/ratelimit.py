"""Client-side request budgets, for vendors that punish going over their limit.

Supabase's Management API allows 60 requests a minute per user and then blocks *every* call
of that user for a minute (reference/apis.md §4, §11). Waiting for the 429 is therefore the
expensive way to learn the limit: the adapter keeps under it by itself.

`RequestBudget(limit, window)` admits at most `limit` requests in ANY `window` seconds: it
remembers when each of the last `limit` requests was sent and, when they are all younger
than `window`, sleeps until the oldest one leaves it. It is a token bucket whose tokens come
back one by one, exactly `window` after each was spent — not a classic bucket refilling at
limit/window per second, which would let a full bucket plus a minute of refill send ~2×limit
within one minute, and a limiter counting fixed windows would (Supabase's blocks). `block(s)`
holds every request for `s` seconds: a 429 that still happens (another process with the
same token) stops the whole budget, not just the request that saw it.

`BudgetedHttp` is `adapters.http.VendorHttp` with a budget drawn on by every request it
actually sends — retries included — and fed every RateLimited it sees. `shared_budget()`
gives every adapter in this process that uses the same token and base URL the same budget,
because the vendor counts per user, not per target; the key is a hash, never the token.
Separate processes (replicas) each keep their own: that is what the 429 handling is for.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from adapters.errors import RateLimited
from adapters.http import VendorHttp

# Supabase does not say how long its block lasts in each 429; "blocked for a minute" is documented.
DEFAULT_BLOCK = 60.0


class RequestBudget:
    """At most `limit` requests in any `window` seconds; thread-safe; the clock is injected."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"a request budget needs limit ≥ 1 and window > 0, got {limit}/{window}s")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting for the budget, for tests and logs

    def acquire(self) -> None:
        """Return when one more request may be sent now, and count it as sent."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait(now)
                if wait <= 0:
                    self._sent.append(now)
                    return
            self.waited += wait
            self._sleep(wait)

    def block(self, seconds: float) -> None:
        """The vendor said stop: nothing is sent for `seconds` from now."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def _wait(self, now: float) -> float:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        wait = self._blocked_until - now
        if len(self._sent) >= self.limit:
            wait = max(wait, self._sent[0] + self.window - now)
        return wait


class BudgetedHttp(VendorHttp):
    """VendorHttp whose every sent request (retries too) first draws on a `RequestBudget`."""

    def __init__(self, *args: Any, budget: RequestBudget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget

    def _once(self, *args: Any, **kwargs: Any) -> httpx.Response:
        self.budget.acquire()
        try:
            return super()._once(*args, **kwargs)
        except RateLimited as error:
            self.budget.block(DEFAULT_BLOCK if error.retry_after is None else error.retry_after)
            raise


_SHARED: dict[tuple[str, int, float], RequestBudget] = {}
_SHARED_LOCK = threading.Lock()


def shared_budget(base_url: str, token: str, limit: int, window: float = 60.0) -> RequestBudget:
    """The one budget of this process for (vendor URL, token, limit): the vendor counts per user."""
    who = hashlib.sha256(f"{base_url.rstrip('/')}\0{token}".encode()).hexdigest()
    with _SHARED_LOCK:
        return _SHARED.setdefault((who, limit, window), RequestBudget(limit, window))
