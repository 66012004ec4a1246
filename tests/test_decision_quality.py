"""A small decision-quality study (the full one: `python -m bench.decision_quality`).

The shipped pack must make no false step_down/rollback decision on healthy releases and
catch clear regressions of every kind; the literal reading of the runbook must do
measurably worse on healthy low-traffic releases — otherwise the guards would not matter.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.decision_quality import (
    PACKS,
    Job,
    Outcome,
    clopper_pearson_upper,
    evaluate,
    kind_rules,
    percentile,
)
from controller.simulator import RegressionKind, Volume, healthy_spec, regressed_spec
from policies.loader import load_pack
from policies.schema import PolicyPack

# Ten regressions per kind, clear ones (conversion at high traffic: ideal z ≫ 6).
CELLS: dict[RegressionKind, list[tuple[float, Volume]]] = {
    "error_rate": [(0.15, "low"), (0.3, "low"), (0.15, "high"), (0.5, "mid"), (0.15, "mid")],
    "latency": [(30.0, "low"), (45.0, "low"), (30.0, "high"), (30.0, "mid"), (45.0, "high")],
    "conversion": [(0.2, "high"), (0.3, "high")],
    "incidents": [(3.0, "mid"), (4.0, "mid"), (5.0, "mid")],
}
PER_KIND = 10
SEED = 7_000_000  # away from the published study's seeds


@pytest.fixture(scope="module")
def packs() -> dict[str, PolicyPack]:
    return {name: load_pack(ref) for name, ref in PACKS.items()}


def _run(jobs: list[Job], packs: dict[str, PolicyPack]) -> list[dict[str, Outcome]]:
    return [evaluate(job, packs) for job in jobs]


def test_shipped_pack_makes_no_false_decision_on_healthy_releases(packs: dict[str, PolicyPack]) -> None:
    jobs = [Job("healthy", healthy_spec(SEED + i)) for i in range(30)]
    outcomes = _run(jobs, packs)
    false = [(job.spec.seed, o["shipped"].breached) for job, o in zip(jobs, outcomes, strict=True)]
    assert [f for f in false if f[1]] == []
    assert all(not o["shipped"].lowered for o in outcomes)


@pytest.mark.parametrize("kind", list(CELLS))
def test_shipped_pack_catches_clear_regressions_of_every_kind(
    kind: RegressionKind, packs: dict[str, PolicyPack]
) -> None:
    cells = CELLS[kind]
    jobs = [
        Job(kind, regressed_spec(SEED + 100 * index + i, kind, *cells[index % len(cells)]), kind)
        for index in range(len(cells))
        for i in range(PER_KIND // len(cells) + (index < PER_KIND % len(cells)))
    ]
    assert len(jobs) == PER_KIND
    outcomes = [o["shipped"] for o in _run(jobs, packs)]
    assert all(o.clear for o in outcomes)
    caught = [o for o in outcomes if o.detected_at is not None]
    assert len(caught) >= 0.9 * PER_KIND, [(j.spec, o) for j, o in zip(jobs, outcomes, strict=True)]
    assert all(not o.lowered_before_onset for o in outcomes)
    # Nothing is caught before the runbook's own definition allows it (ticks are 30 s apart).
    assert all((o.delay or 0.0) >= -30.0 for o in caught)


def test_literal_reading_is_measurably_worse_on_healthy_low_traffic(packs: dict[str, PolicyPack]) -> None:
    jobs = [Job("healthy", replace(healthy_spec(SEED + 500 + i), peak_requests=3.0 + i)) for i in range(15)]
    outcomes = _run(jobs, packs)
    shipped = sum(o["shipped"].lowered for o in outcomes)
    literal = sum(o["literal"].lowered for o in outcomes)
    assert shipped == 0
    assert literal >= 5, literal  # noise at a few requests per scrape reads as a regression
    held = sum(o["literal"].hold_share for o in outcomes) / len(outcomes)
    assert held > sum(o["shipped"].hold_share for o in outcomes) / len(outcomes)


def test_literal_pack_misses_severe_error_regressions_that_the_guards_catch(
    packs: dict[str, PolicyPack],
) -> None:
    jobs = [
        Job("e", regressed_spec(SEED + 900 + i, "error_rate", 0.15, "low"), "error_rate") for i in range(10)
    ]
    outcomes = _run(jobs, packs)
    assert sum(o["shipped"].detected_at is not None for o in outcomes) >= 9
    # The literal rule needs 5 clean minutes of a 1-minute ratio over a few requests.
    literal_in_time = [o["literal"] for o in outcomes if (o["literal"].delay or 0) < 15 * 60]
    assert len(literal_in_time) < 10


def test_kind_rules_are_read_from_the_pack(packs: dict[str, PolicyPack]) -> None:
    shipped = packs["shipped"].policies
    assert kind_rules(shipped, "error_rate") == {"error-rate", "error-rate-severe", "error-rate-low-traffic"}
    assert kind_rules(shipped, "latency") == {"latency-p95"}
    assert kind_rules(shipped, "conversion") == {"kpi-drift", "kpi-drift-1h"}
    assert kind_rules(shipped, "incidents") == {"high-severity-incidents"}
    assert kind_rules(packs["literal"].policies, "error_rate") == {"error-rate"}


def test_clopper_pearson_and_percentiles() -> None:
    assert clopper_pearson_upper(0, 200) == pytest.approx(1 - 0.025 ** (1 / 200), rel=1e-6)
    assert clopper_pearson_upper(0, 1000) == pytest.approx(0.00368, abs=1e-5)
    assert 0.05 < clopper_pearson_upper(3, 100) < 0.1
    assert clopper_pearson_upper(5, 5) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
