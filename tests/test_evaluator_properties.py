"""The incremental evaluator agrees with the literal reference (tests/reference.py) at every tick.

Random series (gaps, duplicate timestamps, values exactly at the threshold, long idle
periods, late samples), random packs and random tick grids; the evaluator is fed both ways
the product feeds it — sample by sample as the live controller does (`observe`,
`observe_ratio`, `observe_event`, with late arrivals) and in bulk as the backtest does
(`load`, in chunks) — and must report the reference's status and value at every tick.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.evaluator import Evaluator, SignalKind
from policies.rules.base import RuleState
from policies.schema import CountPolicy, DriftPolicy, Policy, ThresholdPolicy
from policies.series import Event
from tests.reference import EVENTS, PLAIN, RATIO, Reference, RefEvent

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
LONG = settings(PROPERTY, max_examples=6)

MODES = ["observe", "load"]
KIND = {PLAIN: SignalKind.PLAIN, RATIO: SignalKind.RATIO, EVENTS: SignalKind.EVENTS}
GRID = [0.0, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0, 10.0, 20.0, 20.25]  # exact in binary: sums stay exact
RATES = [0.0, 0.01, 0.05, 0.1, 0.2, 1 / 3, 0.5, 1.0]
STARTS = [0.0, 1000.0, 1_700_000_000.0]
OPS = [">", ">=", "<", "<="]


def seconds(n: float) -> str:
    return f"{int(n)}s"


# --- scenarios ---------------------------------------------------------------------------


@dataclass
class Scenario:
    start: float
    kinds: dict[str, str]
    policies: list[Policy]
    ticks: list[float]
    samples: list[tuple[str, float, float, float]] = field(default_factory=list)  # signal, t, v, delay
    # signal, t, num, den, delay, which counters the bulk load keeps ("both", "num", "den")
    pairs: list[tuple[str, float, float, float, float, str]] = field(default_factory=list)
    events: list[tuple[str, RefEvent, float]] = field(default_factory=list)  # signal, event, delay
    chunks: int = 1


def build(kind: type[Any], index: int, fields: dict[str, Any]) -> Policy:
    policy: Policy = kind.model_validate({"id": f"p{index}", "action": "rollback", **fields})
    return policy


@st.composite
def times_from(draw: st.DrawFn, first: float, max_size: int = 40) -> list[float]:
    """Increasing-or-equal times: zero gaps are duplicates, 900 s gaps are idle periods."""
    gaps = draw(
        st.lists(
            st.sampled_from([0, 0, 1, 2, 5, 10, 10, 20, 30, 30, 59, 60, 61, 120, 299, 300, 900]),
            max_size=max_size,
        )
    )
    out, now = [], first
    for gap in gaps:
        now += gap
        out.append(float(now))
    return out


@st.composite
def tick_grid(draw: st.DrawFn, start: float, times: Sequence[float] = ()) -> list[float]:
    """Ticks from the start over the data (and a little past it, where data goes stale)."""
    span = max([t - start for t in times if t >= start], default=600.0) + draw(st.sampled_from([0, 60, 600]))
    if draw(st.booleans()):
        interval = draw(st.sampled_from([1, 5, 10, 30, 60, 90]))
        count = draw(st.integers(1, 80))
        return [start + k * interval for k in range(count) if k * interval <= span]
    offsets = draw(st.lists(st.integers(0, int(span)), min_size=1, max_size=60))
    return [start + k for k in sorted({0, *offsets} if draw(st.booleans()) else offsets)]


delays = st.sampled_from([0, 0, 0, 0, 1, 7, 45, 200])


@st.composite
def plain_thresholds(draw: st.DrawFn) -> Scenario:
    start = draw(st.sampled_from(STARTS))
    times = draw(times_from(start - draw(st.sampled_from([0, 60, 400]))))
    samples = [("sig", t, draw(st.sampled_from(GRID)), float(draw(delays))) for t in times]
    policies = [
        build(
            ThresholdPolicy,
            i,
            {
                "signal": "sig",
                "when": f"{draw(st.sampled_from(OPS))} {draw(st.sampled_from(GRID))}",
                "for": seconds(draw(st.sampled_from([0, 0, 1, 10, 30, 60, 120]))),
                "staleness": seconds(draw(st.sampled_from([1, 10, 30, 60, 120, 300, 300]))),
            },
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    return Scenario(start, {"sig": PLAIN}, policies, draw(tick_grid(start, times)), samples=samples)


@st.composite
def ratio_pairs(draw: st.DrawFn, first: float, dens: Sequence[int], max_size: int = 40) -> list[Any]:
    pairs = []
    for t in draw(times_from(first, max_size)):
        den = draw(st.sampled_from(dens))
        rate = draw(st.sampled_from(RATES))
        num = min(den, round(den * rate)) if draw(st.booleans()) else draw(st.integers(0, den))
        which = draw(st.sampled_from(["both", "both", "both", "num", "den"]))
        pairs.append(("sig", t, float(num), float(den), float(draw(delays)), which))
    return pairs


@st.composite
def ratio_thresholds(draw: st.DrawFn) -> Scenario:
    start = draw(st.sampled_from(STARTS))
    pairs = draw(ratio_pairs(start - draw(st.sampled_from([0, 60, 400])), [0, 1, 3, 6, 10, 20, 50, 100, 100]))
    policies = []
    for i in range(draw(st.integers(1, 3))):
        fields: dict[str, Any] = {
            "signal": "sig",
            "when": f"{draw(st.sampled_from(OPS))} {draw(st.sampled_from(RATES))!r}",
            "for": seconds(draw(st.sampled_from([0, 0, 10, 60, 120]))),
            "window": seconds(draw(st.sampled_from([1, 10, 60, 120, 300, 300, 600]))),
            "min_samples": draw(st.sampled_from([0, 0, 0, 1, 10, 50, 100])),
        }
        confidence = draw(st.sampled_from([None, None, 0.9, 0.95, 0.99]))
        if confidence is not None:
            fields["confidence"] = confidence
        policies.append(build(ThresholdPolicy, i, fields))
    ticks = draw(tick_grid(start, [p[1] for p in pairs]))
    return Scenario(start, {"sig": RATIO}, policies, ticks, pairs=pairs)


@st.composite
def event_list(draw: st.DrawFn, first: float, max_size: int = 40) -> list[tuple[str, RefEvent, float]]:
    events = []
    for t in draw(times_from(first, max_size)):
        fields: dict[str, object] = {}
        severity = draw(st.sampled_from(["high", "high", "low", None]))
        if severity is not None:
            fields["severity"] = severity
        fields["team"] = draw(st.sampled_from(["x", "y"]))
        ident = draw(st.sampled_from([None, None, "a", "b", "c", "d", "e"]))
        events.append(("incidents", RefEvent(t, ident, fields), float(draw(delays))))
    return events


@st.composite
def counts(draw: st.DrawFn) -> Scenario:
    start = draw(st.sampled_from(STARTS))
    events = draw(event_list(start - draw(st.sampled_from([0, 60, 400]))))
    matches: list[dict[str, object]] = [
        {},
        {"severity": "high"},
        {"severity": "high", "team": "x"},
        {"team": "y"},
    ]
    policies = [
        build(
            CountPolicy,
            i,
            {
                "signal": "incidents",
                "count": f"{draw(st.sampled_from(OPS))} {draw(st.integers(0, 4))}",
                "within": seconds(draw(st.sampled_from([1, 30, 60, 300, 3600]))),
                "match": draw(st.sampled_from(matches)),
                "for": seconds(draw(st.sampled_from([0, 0, 30, 120]))),
            },
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    ticks = draw(tick_grid(start, [e.time for _, e, _ in events]))
    return Scenario(start, {}, policies, ticks, events=events)


def drift_fields(draw: st.DrawFn, ratio: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "signal": "sig",
        "drift": f"{draw(st.sampled_from(['>', '>=']))} {draw(st.sampled_from([0, 5, 10, 50]))}%",
        "direction": draw(st.sampled_from(["down", "up", "both"])),
        "baseline": {"window": seconds(draw(st.sampled_from([60, 600, 3600])))},
        "window": seconds(draw(st.sampled_from([60, 300, 900]))),
        "confidence": draw(st.sampled_from([0.6, 0.9, 0.95, 0.99])),
        "for": seconds(draw(st.sampled_from([0, 0, 60]))),
    }
    if ratio:
        fields["min_samples"] = draw(st.sampled_from([0, 0, 100, 1000]))
    return fields


@st.composite
def drifts(draw: st.DrawFn) -> Scenario:
    start = draw(st.sampled_from(STARTS))
    ratio = draw(st.booleans())
    policies = [build(DriftPolicy, i, drift_fields(draw, ratio)) for i in range(draw(st.integers(1, 3)))]
    before = draw(st.sampled_from([60, 600, 3700]))
    if ratio:
        dens = [0, 10, 100, 1000, 5000]
        baseline = draw(ratio_pairs(start - before, dens, 20))
        pairs = [p for p in baseline if p[1] < start] + draw(ratio_pairs(start, dens, 30))
        ticks = draw(tick_grid(start, [p[1] for p in pairs]))
        return Scenario(start, {"sig": RATIO}, policies, ticks, pairs=pairs)
    values = st.sampled_from([*GRID[1:], 4.0, 4.25, 6.0])
    baseline_times = [t for t in draw(times_from(start - before, 25)) if t < start]
    samples = [("sig", t, draw(values), float(draw(delays))) for t in baseline_times]
    samples += [("sig", t, draw(values), float(draw(delays))) for t in draw(times_from(start, 30))]
    ticks = draw(tick_grid(start, [s[1] for s in samples]))
    return Scenario(start, {"sig": PLAIN}, policies, ticks, samples=samples)


# --- running both ------------------------------------------------------------------------


def run_both(scenario: Scenario, mode: str) -> Evaluator:
    kinds = {name: KIND[kind] for name, kind in scenario.kinds.items()}
    evaluator = Evaluator(scenario.policies, start=scenario.start, kinds=kinds)
    assert not evaluator.unbound
    reference = Reference(scenario.policies, start=scenario.start, kinds=scenario.kinds)
    if mode == "load":
        _load_everything(scenario, evaluator, reference)
        pending: list[tuple[float, int, Callable[[], None]]] = []
    else:
        pending = _arrivals(scenario, evaluator, reference)
    delivered = 0
    for t in scenario.ticks:
        while delivered < len(pending) and pending[delivered][0] <= t:
            pending[delivered][2]()
            delivered += 1
        assert_same(evaluator.tick(t), reference.tick(t), t, scenario.kinds)
    return evaluator


def _arrivals(
    scenario: Scenario, evaluator: Evaluator, reference: Reference
) -> list[tuple[float, int, Callable[[], None]]]:
    """Sample-by-sample feeding; history from before the rollout start is there at the start."""
    start = scenario.start
    out: list[tuple[float, int, Callable[[], None]]] = []

    def arrival(time: float, delay: float) -> float:
        return min(time + delay, start) if time < start else time + delay

    def plain(signal: str, time: float, value: float) -> Callable[[], None]:
        def deliver() -> None:
            evaluator.observe(signal, time, value)
            reference.observe(signal, time, value)

        return deliver

    def pair(signal: str, time: float, num: float, den: float) -> Callable[[], None]:
        def deliver() -> None:
            evaluator.observe_ratio(signal, time, num, den)
            reference.observe_ratio(signal, time, num, den)

        return deliver

    def event(signal: str, e: RefEvent) -> Callable[[], None]:
        def deliver() -> None:
            evaluator.observe_event(Event(e.time, signal, e.id, dict(e.fields)))
            reference.observe_event(signal, e)

        return deliver

    for signal, time, value, delay in scenario.samples:
        out.append((arrival(time, delay), len(out), plain(signal, time, value)))
    for signal, time, num, den, delay, _ in scenario.pairs:
        out.append((arrival(time, delay), len(out), pair(signal, time, num, den)))
    for signal, e, delay in scenario.events:
        out.append((arrival(e.time, delay), len(out), event(signal, e)))
    out.sort(key=lambda item: (item[0], item[1]))
    return out


def _load_everything(scenario: Scenario, evaluator: Evaluator, reference: Reference) -> None:
    """The backtest's way: whole sorted columns (in chunks), then every event in time order."""
    columns: dict[str, list[tuple[float, float]]] = {}
    for signal, time, value, _ in scenario.samples:
        columns.setdefault(signal, []).append((time, value))
    for signal, time, num, den, _, which in scenario.pairs:
        if which in ("both", "num"):
            columns.setdefault(f"{signal}:num", []).append((time, num))
        if which in ("both", "den"):
            columns.setdefault(f"{signal}:den", []).append((time, den))
    for column, rows in columns.items():
        rows.sort(key=lambda row: row[0])  # stable: ties keep their order, the last one is newest
        size = max(1, -(-len(rows) // scenario.chunks))
        for begin in range(0, len(rows), size):
            chunk = rows[begin : begin + size]
            evaluator.load(column, [t for t, _ in chunk], [v for _, v in chunk])
        name, _, part = column.partition(":")
        for time, value in rows:
            if part:
                reference.observe_counter(name, part, time, value)
            else:
                reference.observe(name, time, value)
    for signal, e, _ in sorted(scenario.events, key=lambda item: item[1].time):
        evaluator.observe_event(Event(e.time, signal, e.id, dict(e.fields)))
        reference.observe_event(signal, e)


def assert_same(
    states: list[RuleState], expected: list[tuple[str, float | None]], t: float, kinds: dict[str, str]
) -> None:
    assert len(states) == len(expected)
    for state, (status, value) in zip(states, expected, strict=True):
        policy = state.policy
        where = f"{policy.id} at t={t}: {policy!r}"
        assert state.status.value == status, where
        exact = isinstance(policy, CountPolicy) or (
            isinstance(policy, ThresholdPolicy) and kinds[policy.signal] == PLAIN
        )
        if value is None or state.value is None or exact:
            assert state.value == value, where  # a sample or a count: no arithmetic involved
        else:
            assert state.value == pytest.approx(value, rel=1e-12, abs=1e-15), where  # sums


# --- the properties -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@PROPERTY
@given(scenario=plain_thresholds(), chunks=st.integers(1, 3))
def test_plain_threshold_matches_reference(mode: str, scenario: Scenario, chunks: int) -> None:
    scenario.chunks = chunks
    run_both(scenario, mode)


@pytest.mark.parametrize("mode", MODES)
@PROPERTY
@given(scenario=ratio_thresholds(), chunks=st.integers(1, 3))
def test_ratio_threshold_matches_reference(mode: str, scenario: Scenario, chunks: int) -> None:
    scenario.chunks = chunks
    run_both(scenario, mode)


@pytest.mark.parametrize("mode", MODES)
@PROPERTY
@given(scenario=counts())
def test_count_matches_reference(mode: str, scenario: Scenario) -> None:
    run_both(scenario, mode)


@pytest.mark.parametrize("mode", MODES)
@PROPERTY
@given(scenario=drifts(), chunks=st.integers(1, 3))
def test_drift_matches_reference(mode: str, scenario: Scenario, chunks: int) -> None:
    scenario.chunks = chunks
    run_both(scenario, mode)


@st.composite
def long_runs(draw: st.DrawFn) -> Scenario:
    """Dense data and hundreds of ticks: the evaluator forgets old samples every 32 ticks."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))  # bulk data: a seed, not 5000 draws
    start = draw(st.sampled_from(STARTS))
    interval = draw(st.sampled_from([3, 5, 10]))
    end = start + interval * draw(st.integers(200, 300))
    policies: list[Policy] = [
        build(
            ThresholdPolicy,
            0,
            {"signal": "lat", "when": f"> {rng.choice(GRID)}", "for": "30s", "staleness": "1m"},
        ),
        build(ThresholdPolicy, 1, {"signal": "lat", "when": f"<= {rng.choice(GRID)}"}),
        build(
            DriftPolicy, 2, {"signal": "lat", "drift": "> 10%", "baseline": {"window": "2m"}, "window": "1m"}
        ),
        build(
            ThresholdPolicy,
            3,
            {"signal": "err", "when": "> 0.05", "for": "1m", "min_samples": 50, "confidence": 0.9},
        ),
        build(
            DriftPolicy,
            4,
            {
                "signal": "conv",
                "drift": "> 5%",
                "direction": "down",
                "baseline": {"window": "5m"},
                "window": "2m",
            },
        ),
        build(
            CountPolicy,
            5,
            {"signal": "incidents", "count": ">= 3", "within": "2m", "match": {"severity": "high"}},
        ),
    ]
    late = [0, 0, 0, 0, 0, 0, 3, 20]
    samples, pairs, events = [], [], []
    time = start - 400.0
    while time <= end:
        samples.append(("lat", time, rng.choice(GRID), float(rng.choice(late))))
        errors_rate = rng.choice([0.01, 0.05, 0.2])
        requests = rng.choice([0, 10, 40])
        pairs.append(("err", time, float(round(requests * errors_rate)), float(requests), 0.0, "both"))
        sessions = rng.choice([50, 100, 200])
        rate = rng.choice([0.1, 0.1, 0.08, 0.05])
        pairs.append(
            ("conv", time, float(round(sessions * rate)), float(sessions), float(rng.choice(late)), "both")
        )
        if rng.random() < 0.1:
            severity = rng.choice(["high", "low"])
            ident = rng.choice([None, f"i{rng.randrange(40)}"])
            events.append(
                ("incidents", RefEvent(time, ident, {"severity": severity}), float(rng.choice(late)))
            )
        time += rng.choice([1, 2, 2, 3, 5])
    ticks = [start + k * interval for k in range(int((end - start) / interval) + 1)]
    kinds = {"lat": PLAIN, "err": RATIO, "conv": RATIO}
    return Scenario(start, kinds, policies, ticks, samples, pairs, events, chunks=rng.choice([1, 3]))


@pytest.mark.parametrize("mode", MODES)
@LONG
@given(scenario=long_runs())
def test_long_runs_forget_old_samples_without_changing_any_tick(mode: str, scenario: Scenario) -> None:
    assert len(scenario.ticks) > 3 * 32
    evaluator = run_both(scenario, mode)
    counters = [series for pair in evaluator.ratio.values() for series in pair]
    assert all(series.dropped > 0 for series in [*evaluator.plain.values(), *counters])


def test_a_redelivered_id_counts_once_even_after_its_first_delivery_is_forgotten() -> None:
    policy = build(CountPolicy, 0, {"signal": "incidents", "count": ">= 1", "within": "1m"})
    evaluator = Evaluator([policy], start=0.0, kinds={})
    reference = Reference([policy], start=0.0, kinds={})
    for i in range(2000):  # enough ids for the stream to start forgetting
        event = RefEvent(float(i), f"incident-{i}", {})
        evaluator.observe_event(Event(event.time, "incidents", event.id, {}))
        reference.observe_event("incidents", event)
    for t in range(0, 3000, 10):
        assert_same(evaluator.tick(float(t)), reference.tick(float(t)), float(t), {})
    redelivered = RefEvent(3000.0, "incident-5", {})  # a webhook retried with a fresh timestamp
    assert not evaluator.observe_event(Event(3000.0, "incidents", "incident-5", {}))
    reference.observe_event("incidents", redelivered)
    assert_same(evaluator.tick(3000.0), reference.tick(3000.0), 3000.0, {})
    assert reference.tick(3000.0) == [("ok", 0.0)]


def test_a_late_sample_on_a_plain_drift_is_ranked_exactly_once() -> None:
    policy = build(
        DriftPolicy,
        0,
        {
            "signal": "q",
            "drift": "> 5%",
            "direction": "up",
            "baseline": {"window": "10m"},
            "window": "10m",
            "confidence": 0.9,
        },
    )
    evaluator = Evaluator([policy], start=1000.0, kinds={"q": SignalKind.PLAIN})
    reference = Reference([policy], start=1000.0, kinds={"q": PLAIN})
    feed = [(float(t), 1.0) for t in range(400, 1000, 60)] + [(1000.0, 1.0), (1010.0, 5.0), (1020.0, 5.0)]
    for time, value in feed:
        evaluator.observe("q", time, value)
        reference.observe("q", time, value)
    assert_same(evaluator.tick(1020.0), reference.tick(1020.0), 1020.0, {"q": PLAIN})
    for time, value in [(1015.0, 0.5), (1030.0, 5.0)]:  # 1015 arrives after the 1020 tick
        evaluator.observe("q", time, value)
        reference.observe("q", time, value)
    states = evaluator.tick(1030.0)
    assert_same(states, reference.tick(1030.0), 1030.0, {"q": PLAIN})
    assert states[0].status.value == "ok"  # +130% but 5 samples, one below the baseline: no evidence


@pytest.mark.parametrize(
    ("when", "num", "den", "expected"),
    [
        ("> 0", 0, 3, "ok"),  # 0 errors: the lower bound is exactly 0, never above it
        ("> 0", 0, 6, "ok"),
        ("> 0", 3, 3, "breach"),
        ("< 1", 3, 3, "ok"),  # all successes: the upper bound is exactly 1
        ("< 1", 6, 6, "ok"),
        ("> 0.05", 1, 6, "ok"),  # DESIGN.md: 1 error in 6 requests is not "above 5%" at 95%
        ("> 0.05", 4, 6, "breach"),  # … but 4 in 6 is
    ],
)
def test_confidence_bounds_at_the_edges(when: str, num: int, den: int, expected: str) -> None:
    policy = build(ThresholdPolicy, 0, {"signal": "err", "when": when, "confidence": 0.95})
    evaluator = Evaluator([policy], start=0.0, kinds={"err": SignalKind.RATIO})
    reference = Reference([policy], start=0.0, kinds={"err": RATIO})
    evaluator.observe_ratio("err", 0.0, num, den)
    reference.observe_ratio("err", 0.0, num, den)
    states = evaluator.tick(0.0)
    assert_same(states, reference.tick(0.0), 0.0, {"err": RATIO})
    assert states[0].status.value == expected
