"""Differential test: our threshold + `for` evaluator against the real `promtool test rules`.

Hundreds of seeded random scenarios — plain and ratio signals, gaps longer than the 5m
staleness, values exactly at the threshold, `for: 0` and `for` not a multiple of the step,
min_samples on the edge — are evaluated by `policies.evaluator.Evaluator`; the timeline it
produces (inactive / pending / firing at every tick) becomes promtool's expectation, and
promtool's own rule engine must agree at every tick.

Ratio cases keep min_samples ≥ 1: with Σden = 0 and no floor, PromQL divides by zero
(+Inf fires a `>` rule) while tidegate calls an empty denominator "no value" — a
deliberate, documented difference (docs/policies.md), not something to paper over here.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from policies.evaluator import Evaluator, SignalKind
from policies.rules.base import Status
from policies.schema import ThresholdPolicy
from tests.promtool_oracle import OracleCase, check_cases, promtool_available

_STATE = {
    Status.OK: "inactive",
    Status.NO_DATA: "inactive",
    Status.PENDING: "pending",
    Status.BREACH: "firing",
}
OPS = (">", ">=", "<", "<=")

pytestmark = pytest.mark.skipif(
    not promtool_available() and os.environ.get("CI") != "true",
    reason="promtool missing (make test installs Debian's prometheus package)",
)


def _with_gaps(rng: random.Random, values: list[float]) -> list[float | None]:
    """Knock out runs of samples; some runs outlast the 5m staleness at every step size."""
    out: list[float | None] = list(values)
    index = 0
    while index < len(out):
        if rng.random() < 0.08:
            length = rng.choice([1, 2, 3, 6, 11, 12])
            for k in range(index, min(len(out), index + length)):
                out[k] = None
            index += length
        index += 1
    return out


def _hold_for(rng: random.Random, step: int) -> int:
    return rng.choice([0, 0, step, 2 * step, 300, 600, 90, 5 * step + 1])


def _plain_case(rng: random.Random, name: str) -> tuple[OracleCase, ThresholdPolicy]:
    step = rng.choice([15, 30, 60, 120])
    ticks = rng.randint(20, 70)
    levels = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # exact binary fractions: equality is exact
    level = rng.choice(levels)
    values: list[float] = []
    for _ in range(ticks):
        if rng.random() < 0.25:
            level = rng.choice(levels)
        values.append(level)
    op, threshold, hold = rng.choice(OPS), rng.choice(levels), _hold_for(rng, step)
    policy = ThresholdPolicy.model_validate(
        {
            "id": name.replace("_", "-"),
            "signal": "s",
            "when": f"{op} {threshold}",
            "for": f"{hold}s",
            "action": "rollback",
        }
    )
    case = OracleCase(name, step, op, threshold, hold, (), values=tuple(_with_gaps(rng, values)))
    return case, policy


def _ratio_case(rng: random.Random, name: str) -> tuple[OracleCase, ThresholdPolicy]:
    step = rng.choice([15, 30, 60])
    ticks = rng.randint(20, 70)
    den = [float(rng.choice([0, 1, 2, 5, 10, 20, 40])) for _ in range(ticks)]
    share = rng.choice([0.0, 0.05, 0.1, 0.25, 0.5])
    num = [float(min(d, round(d * share + rng.choice([-1, 0, 0, 1])))) if d else 0.0 for d in den]
    num = [max(0.0, n) for n in num]
    op, threshold = rng.choice(OPS), rng.choice([0.0, 0.05, 0.1, 0.25, 0.5])
    window = rng.choice([step, 2 * step, 60, 90, 300])
    min_samples = rng.choice([1, 5, 20, 50])
    hold = _hold_for(rng, step)
    policy = ThresholdPolicy.model_validate(
        {
            "id": name.replace("_", "-"),
            "signal": "s",
            "when": f"{op} {threshold}",
            "for": f"{hold}s",
            "window": f"{window}s",
            "min_samples": min_samples,
            "action": "rollback",
        }
    )
    num_gapped = _with_gaps(rng, num) if rng.random() < 0.5 else list(num)
    case = OracleCase(
        name,
        step,
        op,
        threshold,
        hold,
        (),
        num=tuple(num_gapped),
        den=tuple(_with_gaps(rng, den)),
        window_seconds=window,
        min_samples=float(min_samples),
    )
    return case, policy


def _our_timeline(case: OracleCase, policy: ThresholdPolicy) -> tuple[str, ...]:
    ratio = case.num is not None
    evaluator = Evaluator([policy], start=0.0, kinds={"s": SignalKind.RATIO if ratio else SignalKind.PLAIN})
    ticks = len(case.den if ratio and case.den is not None else case.values or ())
    states = []
    for k in range(ticks):
        time = float(k * case.step)
        if ratio:
            assert case.num is not None and case.den is not None
            if case.num[k] is not None:
                evaluator.load("s:num", [time], [case.num[k] or 0.0])
            if case.den[k] is not None:
                evaluator.load("s:den", [time], [case.den[k] or 0.0])
        elif case.values is not None and case.values[k] is not None:
            evaluator.observe("s", time, case.values[k] or 0.0)
        states.append(_STATE[evaluator.tick(time)[0].status])
    return tuple(states)


def _cases(seed: int, count: int) -> list[OracleCase]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        make = _plain_case if index % 2 == 0 else _ratio_case
        case, policy = make(rng, f"c{seed}_{index}")
        cases.append(OracleCase(**{**case.__dict__, "expected": _our_timeline(case, policy)}))
    return cases


def test_generated_scenarios_match_promtool_tick_by_tick(tmp_path: Path) -> None:
    cases = _cases(seed=20261128, count=400)
    firing = sum("firing" in c.expected for c in cases)
    assert firing > 100, "the generator must produce plenty of firing timelines to be a real check"
    assert check_cases(cases, tmp_path) == {}


def test_a_wrong_timeline_is_caught(tmp_path: Path) -> None:
    """The oracle can fail: flip one tick of one of our timelines and promtool must object."""
    case = next(c for c in _cases(seed=7, count=40) if "firing" in c.expected)
    flipped = list(case.expected)
    index = flipped.index("firing")
    flipped[index] = "inactive"
    broken = OracleCase(**{**case.__dict__, "expected": tuple(flipped)})
    assert set(check_cases([broken], tmp_path)) == {case.name}
