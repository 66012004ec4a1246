"""bench.chart_trace measures what it says: a fuller trace costs more, and recording is cheap."""

from __future__ import annotations

from bench.chart_trace import measure


def test_more_rules_and_more_ticks_cost_more_memory() -> None:
    small, more_rules, more_ticks = (
        measure(r, t, traces=50, records=2000) for r, t in ((1, 20), (10, 20), (1, 80))
    )
    assert 0 < small.kib_per_rollout < more_rules.kib_per_rollout
    assert small.kib_per_rollout < more_ticks.kib_per_rollout
    assert 0 < small.record_us < 1000
