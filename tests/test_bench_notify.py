"""bench/notify_overhead.py keeps working: the Dispatcher's cost per event is measured over
the demo's real events (the figure itself is published in docs/notifications.md)."""

from __future__ import annotations

import httpx

from bench.notify_overhead import per_event_microseconds


def test_the_per_event_cost_is_measured_over_the_demo_events() -> None:
    with httpx.Client() as client:
        cost, events = per_event_microseconds(client, replays=3)
    assert events > 20  # the demo's decisions, transitions, actions and pages
    assert cost > 0
