"""The live benchmark's naive evaluator decides exactly what the real one does.

bench/live_tick.py shows the naive re-scanning evaluator beside `Evaluator`; the comparison
is only honest if both compute the same thing. Here both read a release with a regression
in every signal and must agree on every rule's status at every tick.
"""

from __future__ import annotations

import math

import pytest

from bench.naive import NaiveEvaluator
from bench.workload import KINDS, PLAINS, RATIOS, SignalModel, pack_text
from policies.evaluator import Evaluator
from policies.loader import parse_pack
from policies.series import Event

STEP = 30.0
START = 7200.0


def regressed(name: str, value: float, t: float) -> float:
    """From 40 minutes after the start every signal turns bad in the direction its rule watches."""
    if t < START + 2400:
        return value
    worse = {"error_rate:num": 20.0, "checkout_conversion:num": 0.6, "worker_backlog": 6.0}
    return value * worse.get(name, 1.7)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_naive_evaluator_agrees_with_the_evaluator_at_every_tick(seed: int) -> None:
    policies = parse_pack(pack_text(with_count=True), "bench.yaml").policies
    kinds = {**KINDS, "incidents": KINDS["error_rate"].EVENTS}
    real = Evaluator(policies, start=START, kinds=kinds)
    naive = NaiveEvaluator(policies, start=START, kinds=kinds)
    model, fired = SignalModel(seed), set()
    for k in range(round(3 * 3600 / STEP)):
        t = START - 3600 + k * STEP
        scrape = {name: regressed(name, value, t) for name, value in model.sample(t)}
        for evaluator in (real, naive):
            for name in RATIOS:
                evaluator.observe_ratio(name, t, scrape[f"{name}:num"], scrape[f"{name}:den"])
            for name in PLAINS:
                evaluator.observe(name, t, scrape[name])
            if k % 10 in (0, 1):  # every 5 minutes, each delivered twice
                severity = "high" if k // 10 % 4 == 0 else "low"
                evaluator.observe_event(Event(t, "incidents", f"i{k // 10}", {"severity": severity}))
        if t < START:
            continue
        for got, want in zip(real.tick(t), naive.tick(t), strict=True):
            assert (got.policy.id, got.status, got.since) == (want.policy.id, want.status, want.since)
            assert (got.value is None) == (want.value is None)
            assert got.value is None or want.value is None or math.isclose(got.value, want.value)
            fired.add((got.policy.id, got.status.value))
    assert {policy for policy, status in fired if status == "breach"} >= {
        "error-rate",
        "kpi-drift",
        "latency-drift",
        "high-severity-incidents",
    }
