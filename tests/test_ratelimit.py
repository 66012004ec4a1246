"""Client-side request budgets: at most `limit` requests in ANY window, on a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters import ratelimit
from adapters.ratelimit import RequestBudget, shared_budget
from tests.fakes.clock import FakeClock


def test_a_full_budget_admits_the_limit_at_once_then_waits_for_the_oldest_to_leave_the_window() -> None:
    clock = FakeClock(start=0.0)
    budget = RequestBudget(3, 60.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        budget.acquire()
    assert clock.sleeps == []
    clock.advance(10)
    budget.acquire()
    assert clock() == 60.0  # the first request (t=0) left the window at t=60
    assert budget.waited == 50.0


@given(st.lists(st.floats(min_value=0, max_value=90), min_size=1, max_size=200))
def test_no_window_ever_holds_more_than_the_limit(gaps: list[float]) -> None:
    clock = FakeClock(start=0.0)
    budget = RequestBudget(10, 60.0, clock=clock, sleep=clock.sleep)
    sent = []
    for gap in gaps:
        clock.advance(gap)
        budget.acquire()
        sent.append(clock())
    assert all(later - earlier >= 60.0 for earlier, later in zip(sent, sent[10:], strict=False))


def test_a_classic_refilling_bucket_would_allow_twice_the_limit_but_this_one_does_not() -> None:
    clock = FakeClock(start=0.0)
    budget = RequestBudget(60, 60.0, clock=clock, sleep=clock.sleep)
    sent = []
    while clock() < 60.0:  # as fast as allowed, for a minute
        budget.acquire()
        sent.append(clock())
        clock.advance(0.5)
    assert len([t for t in sent if t < 60.0]) == 60


def test_a_block_holds_every_request_for_that_long() -> None:
    clock = FakeClock(start=100.0)
    budget = RequestBudget(60, 60.0, clock=clock, sleep=clock.sleep)
    budget.block(60.0)
    budget.acquire()
    assert clock() == 160.0
    budget.block(5.0)
    budget.block(1.0)  # a shorter block never shortens a longer one
    budget.acquire()
    assert clock() == 165.0


def test_one_user_has_one_budget_per_process_keyed_without_the_token() -> None:
    first = shared_budget("https://api.supabase.com", "sbp_secret_one", 60)
    assert shared_budget("https://api.supabase.com/", "sbp_secret_one", 60) is first
    assert shared_budget("https://api.supabase.com", "sbp_secret_two", 60) is not first
    assert not any("sbp_secret_one" in key[0] for key in ratelimit._SHARED)
