"""The report's re-evaluation: per-rule values, streak spans and firings, tick by tick.

Expected spans and values are worked out here from the data and the policies' semantics
(DESIGN.md), not read back from the evaluator.
"""

from __future__ import annotations

from pathlib import Path

from adapters.sources.replay import ReplayData, read_replay
from controller.backtest import run_backtest
from controller.bootstrap import Signals
from controller.report.build import backtest_report
from controller.report.model import Point, Span, SpanKind, Window
from controller.report.rebuild import MAX_POINTS, rebuild
from policies.loader import load_packs
from policies.schema import DriftPolicy, Policy, ThresholdPolicy
from policies.timestamps import parse_timestamp

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"
START = 1_800_000_000.0


def latency_rule(**extra: object) -> Policy:
    fields = {"id": "latency", "signal": "latency", "when": "> 20", "for": "1m", "action": "step_down"}
    return ThresholdPolicy.model_validate({**fields, **extra})


def signals(columns: dict[str, tuple[list[float], list[float]]]) -> Signals:
    return Signals(ReplayData(columns=columns), START, START, events_given=False)


def samples(values: dict[int, float]) -> tuple[list[float], list[float]]:
    """`{seconds after START: value}` as a column."""
    times = sorted(values)
    return [START + t for t in times], [values[t] for t in times]


def test_a_threshold_rule_is_pending_then_breaches_and_recovers_on_the_ticks_the_semantics_give() -> None:
    # 10 until 300 s, 25 from 300 s to 570 s, 10 again from 600 s: one sample per 30 s tick.
    data = samples({t: 25.0 if 300 <= t < 600 else 10.0 for t in range(0, 901, 30)})
    rebuilt = rebuild(
        [latency_rule()], signals({"latency": data}), start=START, until=START + 900, interval=30
    )

    (chart,) = rebuilt.rules
    assert chart.spans == (
        Span(START + 300, START + 360, SpanKind.PENDING),  # holds at 300: pending
        Span(START + 360, START + 600, SpanKind.BREACH),  # 360 − 300 ≥ for (1m): breach
    )
    (firing,) = chart.firings
    assert (firing.at, firing.value, firing.pending_since) == (START + 360, 25.0, START + 300)
    assert chart.threshold == 20 and chart.threshold_label == "> 20"
    assert chart.points[10] == Point(START + 300, 25.0) and len(chart.points) == 31
    assert [(d.at - START, d.verdict.decision.value) for d in rebuilt.decisions] == [
        (0, "advance"),
        (360, "step_down"),
        (600, "advance"),
    ]


def test_a_stretch_without_samples_is_a_gap_never_a_zero() -> None:
    data = samples({t: 5.0 for t in range(0, 901, 30) if not 300 <= t < 600})
    rebuilt = rebuild(
        [latency_rule(staleness="1m")],
        signals({"latency": data}),
        start=START,
        until=START + 900,
        interval=30,
    )
    values = {p.t - START: p.v for p in rebuilt.rules[0].points}
    assert values[300] == 5.0  # the 270 s sample is in (240, 300]: within the 1 m staleness
    assert all(values[t] is None for t in range(330, 600, 30))
    assert values[600] == 5.0


def test_an_open_streak_lasts_one_interval_past_the_last_tick() -> None:
    data = samples({t: 30.0 for t in range(0, 301, 30)})
    rebuilt = rebuild(
        [latency_rule()], signals({"latency": data}), start=START, until=START + 300, interval=30
    )
    assert rebuilt.rules[0].spans[-1] == Span(START + 60, START + 330, SpanKind.BREACH)


def test_a_drift_chart_shows_the_baseline_window_its_level_and_the_bound_as_threshold() -> None:
    drift = DriftPolicy.model_validate(
        {
            "id": "conversion",
            "signal": "conversion",
            "drift": "> 5%",
            "direction": "down",
            "baseline": {"window": "1h"},
            "window": "10m",
            "action": "rollback",
        }
    )
    ticks = range(-3600, 1801, 30)
    num = samples({t: 10.0 if t < 0 else 5.0 for t in ticks})  # 10% before the start, 5% after
    den = samples(dict.fromkeys(ticks, 100.0))
    rebuilt = rebuild(
        [drift],
        signals({"conversion:num": num, "conversion:den": den}),
        start=START,
        until=START + 1800,
        interval=30,
    )
    (chart,) = rebuilt.rules
    assert chart.percent and chart.baseline == Window(START - 3600, START)
    assert chart.baseline_value == 0.1
    assert chart.threshold is not None and abs(chart.threshold - 0.095) < 1e-12
    assert chart.threshold_label == "baseline 10% − 5%"
    before = [p for p in chart.points if p.t < START]
    assert len(before) == 120 and all(p.v == 0.1 for p in before[20:])  # full 10 m windows: exactly 10%
    assert chart.points[-1] == Point(START + 1800, 0.05)
    assert chart.worst == "breach"
    assert rebuilt.judged_at("conversion", START + 1800) == -0.5  # what the rule judged: a 50% drop


def test_a_long_rollout_is_thinned_for_drawing_keeping_its_spike() -> None:
    ticks = range(0, 2 * 86400 + 1, 30)
    data = samples({t: 100.0 if t == 86400 else 1.0 for t in ticks})
    rebuilt = rebuild(
        [latency_rule()], signals({"latency": data}), start=START, until=START + 2 * 86400, interval=30
    )
    chart = rebuilt.rules[0]
    assert chart.thinned and MAX_POINTS // 2 < len(chart.points) <= MAX_POINTS
    assert max(p.v or 0 for p in chart.points) == 100.0
    assert len(rebuilt.judged["latency"][0]) == 5761  # values for tables and reasons stay per tick


def test_a_rule_whose_signal_is_not_in_the_data_says_so() -> None:
    rebuilt = rebuild([latency_rule()], signals({}), start=START, until=START + 60, interval=30)
    assert rebuilt.rules[0].unavailable == "latency is not in the data (the rule was not bound)"
    assert rebuilt.rules[0].points == ()


def test_the_backtest_report_fires_and_decides_exactly_as_the_backtest() -> None:
    data = read_replay(str(DEMO / "data.csv"), str(DEMO / "events.jsonl"))
    policies = [p for pack in load_packs(["library:runbook"]) for p in pack.policies]
    start = parse_timestamp("2026-09-21T14:13:20Z")  # the demo scenario's rollout start
    result = run_backtest(policies, data, start=start, interval=30.0, events_given=True)

    report = backtest_report(result, Signals(data, start, result.end, True), policies, "runbook", 0.0)

    assert [(f.policy, f.at, f.value) for f in report.firings] == [
        (f.policy, f.at, f.value) for f in result.firings
    ]
    assert [(d.at, d.decision, d.policies) for d in report.decisions] == [
        (c.at, c.verdict.decision.value, c.verdict.policies) for c in result.decisions
    ]
    step_down = report.decisions[1]
    assert step_down.reasons == ("latency-p95: 26.69 (latency_p95 > 20 for 10m)",)
    assert len(report.rules) == len(policies) and all(not r.unavailable for r in report.rules)
