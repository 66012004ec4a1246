"""Threshold + for: the Prometheus alerting semantics of DESIGN.md, one transition per test."""

from __future__ import annotations

from policies.evaluator import Evaluator, SignalKind
from policies.loader import parse_pack
from policies.rules.base import Status

PACK = """
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: t}
policies:
  - id: error-rate
    signal: error_rate
    when: "> 0.05"
    for: 5m
    min_samples: 50
    action: rollback
  - id: latency
    signal: latency_p95
    when: "> 20"
    for: 0
    action: step_down
"""


def _evaluator() -> Evaluator:
    pack = parse_pack(PACK, "t.yaml")
    kinds = {"error_rate": SignalKind.RATIO, "latency_p95": SignalKind.PLAIN}
    return Evaluator(pack.policies, start=0.0, kinds=kinds)


def _status(evaluator: Evaluator, time: float, policy: str) -> Status:
    return next(s.status for s in evaluator.tick(time) if s.policy.id == policy)


def test_error_rate_breach_after_five_minutes_rolls_back() -> None:
    evaluator = _evaluator()
    seen = []
    for minute in range(12):
        evaluator.observe_ratio("error_rate", minute * 60.0, 10, 100)
        seen.append(_status(evaluator, minute * 60.0, "error-rate"))
    assert seen[:5] == [Status.PENDING] * 5
    assert seen[5] is Status.BREACH  # t − t0 = 5m at the sixth tick
    assert all(s is Status.BREACH for s in seen[5:])


def test_too_few_requests_is_no_data_and_resets_the_streak() -> None:
    evaluator = _evaluator()
    statuses = []
    for minute, requests in enumerate([100, 100, 100, 10, 100, 100]):
        evaluator.observe_ratio("error_rate", minute * 60.0, requests // 10, requests)
        statuses.append(_status(evaluator, minute * 60.0, "error-rate"))
    assert statuses[3] is Status.NO_DATA
    assert statuses[4] is Status.PENDING
    assert [s.since for s in evaluator.tick(300.0) if s.policy.id == "error-rate"] == [240.0]


def test_for_zero_breaches_at_once_and_stale_samples_are_no_value() -> None:
    evaluator = _evaluator()
    evaluator.observe("latency_p95", 0.0, 25.0)
    assert _status(evaluator, 0.0, "latency") is Status.BREACH
    assert _status(evaluator, 299.0, "latency") is Status.BREACH
    assert _status(evaluator, 300.0, "latency") is Status.NO_DATA  # (t − 5m, t] is left-open
