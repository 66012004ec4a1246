"""policies.trace: the recent rule states the dashboard charts, bounded and read while written."""

from __future__ import annotations

import itertools
import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.evaluator import Evaluator, SignalKind
from policies.loader import parse_pack
from policies.rules.base import RuleState, Status
from policies.schema import Policy
from policies.trace import Span, Trace, baseline_window, bound, bound_label, judged_value

PACK = """
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: t}
policies:
  - id: latency
    signal: latency_p95
    when: "> 20"
    for: 2m
    action: step_down
  - id: incidents
    signal: incidents
    count: ">= 3"
    within: 1h
    action: rollback
  - id: drop
    signal: conversion
    drift: "> 5%"
    direction: down
    baseline: {window: 1h}
    action: rollback
  - id: rise
    signal: queue
    drift: ">= 10%"
    direction: up
    baseline: {window: 30m}
    action: notify
  - id: swing
    signal: queue
    drift: "> 20%"
    baseline: {window: 30m}
    action: notify
"""
POLICIES = {policy.id: policy for policy in parse_pack(PACK, "t.yaml").policies}
LATENCY = POLICIES["latency"]


def states(policy: Policy, *readings: tuple[Status, float | None]) -> list[list[RuleState]]:
    def since(status: Status) -> float | None:
        return None if status in (Status.OK, Status.NO_DATA) else 0.0

    return [[RuleState.of(policy, status, value, since(status))] for status, value in readings]


def test_history_gives_each_tick_value_and_the_pending_and_breach_spans() -> None:
    trace = Trace([LATENCY])
    readings = [
        (Status.OK, 12.0),
        (Status.PENDING, 21.0),
        (Status.PENDING, 22.0),
        (Status.BREACH, 25.0),
        (Status.NO_DATA, None),
        (Status.BREACH, 30.0),
    ]
    for k, tick in enumerate(states(LATENCY, *readings)):
        trace.record(30.0 * k, tick)

    history = trace.history("latency")

    assert history.points == (
        (0.0, 12.0),
        (30.0, 21.0),
        (60.0, 22.0),
        (90.0, 25.0),
        (120.0, None),
        (150.0, 30.0),
    )
    assert history.spans == (
        Span(30.0, 90.0, Status.PENDING),  # until the tick that ended it
        Span(90.0, 120.0, Status.BREACH),
        Span(150.0, 150.0, Status.BREACH),  # still breaching at the last tick
    )


def _reference_spans(times: list[float], statuses: list[Status]) -> list[Span]:
    """Literal: a pending/breach run from its first tick to the next tick, else the last."""
    spans = []
    for i, status in enumerate(statuses):
        if status not in (Status.PENDING, Status.BREACH) or (i > 0 and statuses[i - 1] is status):
            continue
        j = i
        while j + 1 < len(statuses) and statuses[j + 1] is status:
            j += 1
        spans.append(Span(times[i], times[j + 1] if j + 1 < len(times) else times[j], status))
    return spans


@given(st.lists(st.sampled_from(list(Status)), min_size=1, max_size=60), st.integers(1, 40))
def test_spans_match_a_literal_reference_whatever_is_kept(statuses: list[Status], keep: int) -> None:
    trace = Trace([LATENCY], keep=keep)
    for k, status in enumerate(statuses):
        trace.record(float(k), [RuleState(LATENCY, status, 1.0, 0.0)])
    history = trace.history("latency")
    times = [t for t, _ in history.points]
    assert len(times) <= keep + max(16, keep // 4)
    assert times == [float(k) for k in range(len(statuses))][-len(times) :]  # the newest ticks
    kept = statuses[-len(times) :]
    assert list(history.spans) == _reference_spans(times, kept)


def test_the_trace_keeps_the_newest_ticks_within_its_bound() -> None:
    trace = Trace([LATENCY], keep=100)
    for k in range(10_000):
        trace.record(float(k), [RuleState(LATENCY, Status.OK, float(k), 0.0)])
    points = trace.history("latency").points
    assert 100 <= len(points) < 125
    assert points[-1] == (9999.0, 9999.0) and points[0][0] == 10_000 - len(points)


def test_a_reader_sees_a_consistent_prefix_while_a_step_thread_records() -> None:
    trace = Trace([LATENCY, POLICIES["incidents"]], keep=50)
    done = threading.Event()

    def write() -> None:
        for k in range(20_000):
            value = float(k)
            trace.record(value, [RuleState(p, Status.OK, value, 0.0) for p in trace.policies])
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not done.is_set() or reads == 0:
        for policy_id in ("latency", "incidents"):
            points = trace.history(policy_id).points
            assert all(t == v for t, v in points)  # every value belongs to its own tick
            assert all(b[0] - a[0] == 1.0 for a, b in itertools.pairwise(points))
        reads += 1
    writer.join()
    assert reads > 1


def test_drift_values_are_signed_as_the_rule_reads_them() -> None:
    assert judged_value(POLICIES["drop"], -0.12) == pytest.approx(0.12)  # a 12% drop
    assert judged_value(POLICIES["rise"], 0.3) == pytest.approx(0.3)
    assert judged_value(POLICIES["swing"], -0.25) == pytest.approx(0.25)
    assert judged_value(LATENCY, 21.5) == 21.5 and judged_value(LATENCY, None) is None


def test_bounds_labels_and_baselines_per_rule_kind() -> None:
    assert (bound(LATENCY), bound_label(LATENCY)) == (20.0, "> 20")
    assert (bound(POLICIES["incidents"]), bound_label(POLICIES["incidents"])) == (3.0, ">= 3 within 1h")
    assert (bound(POLICIES["drop"]), bound_label(POLICIES["drop"])) == (0.05, "drop > 5% vs baseline")
    assert bound_label(POLICIES["swing"]) == "change > 20% vs baseline"
    assert baseline_window(POLICIES["drop"], 7200.0) == (3600.0, 7200.0)
    assert baseline_window(LATENCY, 7200.0) is None


def test_recording_what_the_evaluator_judged() -> None:
    policies = [LATENCY, POLICIES["drop"]]
    kinds = {"latency_p95": SignalKind.PLAIN, "conversion": SignalKind.PLAIN}
    evaluator = Evaluator(policies, start=3600.0, kinds=kinds)
    for t in range(0, 3600, 60):
        evaluator.observe("conversion", float(t), 100.0 + (t % 120) / 60)
    trace = Trace(evaluator.policies)
    for k in range(12):
        t = 3600.0 + 30 * k
        evaluator.observe("latency_p95", t, 25.0 if k >= 4 else 10.0)
        evaluator.observe("conversion", t, 80.0)
        trace.record(t, evaluator.tick(t))

    latency = trace.history("latency")
    assert [v for _, v in latency.points] == [10.0] * 4 + [25.0] * 8
    assert latency.spans == (Span(3720.0, 3840.0, Status.PENDING), Span(3840.0, 3930.0, Status.BREACH))
    drop = trace.history("drop")
    assert all(v is not None and math.isclose(v, 0.2, rel_tol=0.02) for _, v in drop.points)


def test_a_tick_must_hold_every_rule() -> None:
    trace = Trace([LATENCY, POLICIES["incidents"]])
    with pytest.raises(ValueError, match="expected 2 rule states"):
        trace.record(0.0, [RuleState(LATENCY, Status.OK, 1.0, 0.0)])
    with pytest.raises(KeyError):
        trace.history("nope")
