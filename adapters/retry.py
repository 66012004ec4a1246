"""How often and how long a vendor call is retried (`adapters.http.VendorHttp` applies it).

Its own module, without httpx or tenacity at import time: signal sources declare their
retry policy at import, and the backtest, which imports the sources' registry but sends no
request, then starts without loading the HTTP stack (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenacity.stop import stop_base


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial: float = 0.25
    maximum: float = 8.0
    longest_wait: float = 120.0  # a Retry-After beyond this is not waited out: escalate instead
    # No new attempt once this many seconds passed since the first: quick failures (refused,
    # 5xx) are retried, a request that already timed out is not tried again. None: no budget.
    budget: float | None = None

    def stop(self) -> stop_base:
        """tenacity's stop rule: the attempts cap, and the time budget when there is one."""
        from tenacity import stop_after_attempt, stop_after_delay

        attempts = stop_after_attempt(self.attempts)
        return attempts if self.budget is None else attempts | stop_after_delay(self.budget)
