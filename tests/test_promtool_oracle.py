"""The promtool oracle itself: hand-derived timelines it must accept, wrong ones it must flag.

Every expected timeline below is derived by hand from the semantics in DESIGN.md
(threshold rule, left-open 5m staleness / ratio window, pending from t0, firing at the first
tick with t - t0 >= for, reset on a false condition or no value).  Timeline shorthand:
i = inactive, p = pending, f = firing, one letter per tick k = 0, 1, ...
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import promtool_oracle
from tests.promtool_oracle import (
    OracleCase,
    PromtoolError,
    check_cases,
    promql_expr,
    promtool_available,
)

if not promtool_available() and os.environ.get("CI") != "true":
    pytest.skip("promtool is not installed (make tools)", allow_module_level=True)

_STATE = {"i": "inactive", "p": "pending", "f": "firing"}


def tl(spec: str) -> tuple[str, ...]:
    """'i p f' -> ('inactive', 'pending', 'firing')."""
    return tuple(_STATE[c] for c in spec.split())


def plain(
    name: str,
    values: tuple[float | None, ...],
    expected: str,
    *,
    step: int = 60,
    op: str = ">",
    threshold: float = 0.05,
    for_seconds: int = 0,
) -> OracleCase:
    return OracleCase(
        name=name,
        step=step,
        op=op,
        threshold=threshold,
        for_seconds=for_seconds,
        expected=tl(expected),
        values=values,
    )


def ratio(
    name: str,
    num: tuple[float | None, ...],
    den: tuple[float | None, ...],
    expected: str,
    *,
    step: int = 30,
    window_seconds: int = 60,
    min_samples: float = 0.0,
    op: str = ">",
    threshold: float = 0.05,
    for_seconds: int = 0,
) -> OracleCase:
    return OracleCase(
        name=name,
        step=step,
        op=op,
        threshold=threshold,
        for_seconds=for_seconds,
        expected=tl(expected),
        num=num,
        den=den,
        window_seconds=window_seconds,
        min_samples=min_samples,
    )


NA = None  # a missing sample

GOOD: list[OracleCase] = [
    # True from k=2 (t0 = 120 s); for 5m fires at the 6th true tick, k=7: 420 - 120 = 300.
    plain("breach_for_5m", (0.0, 0.0, *[0.1] * 8), "i i p p p p p f f f", for_seconds=300),
    # for: 0 fires at once, and a false tick resets it.
    plain("for_zero", (0.0, 0.1, 0.1, 0.0, 0.1), "i f f i f"),
    # A false value resets pending: t0 = 0, reset at k=2, t0 = 180 again, fires at 300.
    plain("false_resets", (0.1, 0.1, 0.0, 0.1, 0.1, 0.1), "p p i p p f", for_seconds=120),
    # Gap: the sample at 120 s carries the value through t = 360 (120 ∈ (60, 360]); at
    # t = 420 nothing is in (120, 420] -> no value -> reset.  Restarts at k=9 (t0 = 540);
    # without the reset it would have fired at k=10 (600 - 0 >= 600).
    plain(
        "gap_resets",
        (0.1, 0.1, 0.1, NA, NA, NA, NA, NA, NA, 0.1, 0.1, 0.1),
        "p p p p p p p i i p p p",
        for_seconds=600,
    ),
    # A sample exactly 300 s old is no value: at t = 300 the window (0, 300] is empty.
    plain("stale_at_300s", (0.1, NA, NA, NA, NA, NA), "f f f f f i"),
    # Same at a 300 s step: every other tick sees nothing, so pending restarts each time.
    plain("stale_step_300", (0.1, NA, 0.1, 0.1), "p i p f", step=300, for_seconds=300),
    # Value equal to the threshold: > and < are false there, >= and <= true.
    plain("boundary_gt", (0.05, 0.05, 0.1, 0.0), "i i f i", op=">"),
    plain("boundary_ge", (0.05, 0.05, 0.1, 0.0), "f f f i", op=">="),
    plain("boundary_lt", (0.05, 0.05, 0.1, 0.0), "i i i f", op="<"),
    plain("boundary_le", (0.05, 0.05, 0.1, 0.0), "f f i f", op="<="),
    # Ratio 5/10 = 0.5 > 0.05 everywhere, but Σden over (t - 60, t] is 10 at k=0, then 20:
    # min_samples 25 is never met (no value), min_samples 20 is met from k=1 on.
    ratio("ratio_min_never", (5.0,) * 4, (10.0,) * 4, "i i i i", min_samples=25),
    ratio("ratio_min_from_k1", (5.0,) * 4, (10.0,) * 4, "i f f f", min_samples=20),
    # Left-open window: at t = 60 the sample at 0 s is out of (0, 60], so 0/20 -> false.
    # A closed window would give 10/30 = 0.33 > 0.3 and fire.
    ratio("ratio_left_open", (10.0, 0.0, 0.0, 0.0), (10.0,) * 4, "f f i i", threshold=0.3),
    # The pending/firing clock on a ratio: true from k=1 (t0 = 30 s), for 60 s -> k=3.
    ratio(
        "ratio_for",
        (0.0, 5.0, 5.0, 5.0, 5.0),
        (10.0,) * 5,
        "i p p f f",
        for_seconds=60,
    ),
    # promtool: num with no sample in the window is no value (not 0 / Σden), so '< 0.5'
    # never holds even though Σden >= min_samples.
    ratio("ratio_num_absent", (NA,) * 4, (10.0,) * 4, "i i i i", op="<", threshold=0.5),
    # promtool: compensated summation. Σnum over (−1, 3] = 1e16 + 1 + 1 − 1e16 is 2 there
    # (2/4 = 0.5 > 0.25 fires), while a plain left-to-right float sum gives 0.
    ratio(
        "ratio_kahan_sum",
        (1e16, 1.0, 1.0, -1e16),
        (1.0,) * 4,
        "f f f f",
        step=1,
        window_seconds=4,
        threshold=0.25,
    ),
    # promtool: Σden = 0 with min_samples 0 divides: 1/0 = +Inf fires, 0/0 = NaN is false.
    ratio("ratio_den_zero", (1.0, 0.0, 0.0), (0.0, 0.0, 0.0), "f f i", threshold=0.5),
]

# Deliberately wrong expectations: each differs from the right timeline in its GOOD twin.
BAD: dict[str, OracleCase] = {
    # fires one tick early (k=6: only 240 s since t0)
    "early": plain("bad_early", (0.0, 0.0, *[0.1] * 8), "i i p p p p f f f f", for_seconds=300),
    # pretends the gap does not reset pending
    "no_reset": plain(
        "bad_no_reset",
        (0.1, 0.1, 0.1, NA, NA, NA, NA, NA, NA, 0.1, 0.1, 0.1),
        "p p p p p p p p p p f f",
        for_seconds=600,
    ),
    # pretends a 300 s old sample still counts (closed lookback)
    "stale": plain("bad_stale", (0.1, NA, NA, NA, NA, NA), "f f f f f f"),
    # pretends the ratio window is closed
    "closed_ratio": ratio("bad_closed_ratio", (10.0, 0.0, 0.0, 0.0), (10.0,) * 4, "f f f i", threshold=0.3),
    # > treated as >= at the boundary
    "boundary": plain("bad_boundary", (0.05, 0.05, 0.1, 0.0), "f f f i", op=">"),
}


def test_promtool_is_available() -> None:
    # In CI (CI=true) this module is not skipped: a missing promtool must fail here.
    assert promtool_available()


@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_hand_derived_timeline_agrees(case: OracleCase, tmp_path: Path) -> None:
    assert check_cases([case], tmp_path) == {}


def test_wrong_expectations_are_reported_and_attributed(tmp_path: Path) -> None:
    # Good and bad together in one promtool run: exactly the bad ones come back.
    report = check_cases([*GOOD, *BAD.values()], tmp_path)
    assert set(report) == {c.name for c in BAD.values()}

    early = report["bad_early"]
    assert 'expr: "ALERTS{alertname=\\"bad_early\\"}", time: 6m,' in early
    assert 'exp: {__name__="ALERTS", alertname="bad_early", alertstate="firing"}' in early
    assert 'got: {__name__="ALERTS", alertname="bad_early", alertstate="pending"}' in early
    assert "time: 7m" not in early  # only the wrong tick is reported

    stale = report["bad_stale"]
    assert "time: 5m," in stale
    assert "got: nil" in stale

    no_reset = report["bad_no_reset"]
    for minutes in (7, 8, 10, 11):
        assert f"time: {minutes}m," in no_reset
    assert "time: 9m," not in no_reset  # pending at k=9 is right either way

    assert "time: 1m," in report["bad_closed_ratio"]
    assert report["bad_boundary"].count("expr:") == 2  # k=0 and k=1


def test_cases_with_different_steps_share_one_run(tmp_path: Path) -> None:
    # Each case carries its own evaluation interval: 1 s, 7 s, 60 s, 300 s.
    cases = [
        plain("step_1", (0.1,) * 302, "p" + " p" * 299 + " f f", step=1, for_seconds=300),
        plain("step_7", (0.0, 0.1, 0.1, 0.1), "i p p f", step=7, for_seconds=14),
        plain("step_60", (0.1, 0.1), "p f", step=60, for_seconds=60),
        plain("step_300", (0.1, 0.1), "p f", step=300, for_seconds=300),
    ]
    assert check_cases(cases, tmp_path) == {}
    wrong = dataclasses.replace(cases[1], expected=tl("i p f f"))
    assert set(check_cases([cases[0], wrong], tmp_path / "again")) == {"step_7"}


def test_naive_forms_disagree_in_promtool_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the translation is needed: promtool 2.x windows are closed [t - d, t]."""
    if promtool_oracle._promtool_major() != 2:
        pytest.skip("closed windows are a promtool 2.x property")
    stale = next(c for c in GOOD if c.name == "stale_at_300s")
    left_open = next(c for c in GOOD if c.name == "ratio_left_open")

    def naive(case: OracleCase, promtool_major: int = 2) -> str:
        if case.is_ratio:
            w = case.window_seconds
            num = f"sum_over_time(tidegate_oracle_{case.name}_num[{w}s])"
            den = f"sum_over_time(tidegate_oracle_{case.name}_den[{w}s])"
            return f"{num} / {den} {case.op} {case.threshold!r}"
        return f"tidegate_oracle_{case.name}_sig {case.op} {case.threshold!r}"

    monkeypatch.setattr(promtool_oracle, "promql_expr", naive)
    report = check_cases([stale, left_open], tmp_path)
    # plain `sig > 0.05` still sees the sample exactly 300 s old (5m lookback is closed) ...
    assert "time: 5m," in report["stale_at_300s"]
    assert 'alertstate="firing"} 1E+00' in report["stale_at_300s"].split("got: ")[1]
    # ... and `[60s]` still holds the sample at 0 s when evaluated at 60 s.
    assert "time: 1m," in report["ratio_left_open"]


def test_promql_forms() -> None:
    assert promql_expr(GOOD[0]) == "last_over_time(tidegate_oracle_breach_for_5m_sig[299s]) > 0.05"
    case = ratio("r", (1.0,), (1.0,), "i", window_seconds=120, min_samples=50, op="<=")
    num = "sum_over_time(tidegate_oracle_r_num[119s])"
    den = "sum_over_time(tidegate_oracle_r_den[119s])"
    assert promql_expr(case) == f"{num} / {den} <= 0.05 and {den} >= 50.0"
    # promtool 3.x windows are left-open already: no shift.
    assert promql_expr(case, promtool_major=3).startswith("sum_over_time(tidegate_oracle_r_num[120s])")


def test_exact_floats_reach_promtool(tmp_path: Path) -> None:
    # 0.1 + 0.2 != 0.3: the sample must arrive as the exact double, compared exactly.
    x = 0.1 + 0.2
    cases = [
        plain("float_gt", (x, 0.3), "f i", threshold=0.3),
        plain("float_tiny", (5e-324, 0.0, -1e-300, 1e300), "f i i f", threshold=0.0),
        plain("float_inf", (float("inf"), float("nan"), -float("inf")), "f i i", threshold=1e308),
    ]
    assert check_cases(cases, tmp_path) == {}


def test_unattributable_promtool_failure_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(case: OracleCase, promtool_major: int = 2) -> str:
        return "sum_over_time(("

    monkeypatch.setattr(promtool_oracle, "promql_expr", broken)
    with pytest.raises(PromtoolError, match="not attributable") as err:
        check_cases([GOOD[0]], tmp_path)
    assert "breach_for_5m.rules.yml" in str(err.value)  # the full output is in the message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: dataclasses.replace(c, name="Bad-Name"), "name"),
        (lambda c: dataclasses.replace(c, step=0), "step"),
        (lambda c: dataclasses.replace(c, op="=="), "op"),
        (lambda c: dataclasses.replace(c, for_seconds=-1), "for_seconds"),
        (lambda c: dataclasses.replace(c, expected=("pending", "burning")), "state"),
        (lambda c: dataclasses.replace(c, values=(0.1,)), "samples"),
        (lambda c: dataclasses.replace(c, num=(1.0,), den=(1.0,)), "not both"),
        (lambda c: dataclasses.replace(c, values=None), "num"),
    ],
)
def test_invalid_cases_are_rejected(
    change: Callable[[OracleCase], OracleCase], message: str, tmp_path: Path
) -> None:
    base = plain("valid", (0.1, 0.1), "f f")
    with pytest.raises(ValueError, match=message):
        check_cases([change(base)], tmp_path)


def test_ratio_window_must_allow_a_nonzero_range(tmp_path: Path) -> None:
    case = ratio("w1", (1.0,), (1.0,), "f", window_seconds=1, step=1)
    with pytest.raises(ValueError, match="window_seconds"):
        check_cases([case], tmp_path)
    # window == step is fine: (t - step, t] holds exactly the sample at t.
    ok = ratio("w_eq_step", (1.0, 0.0), (2.0, 2.0), "f i", window_seconds=30, step=30)
    assert check_cases([ok], tmp_path) == {}


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        check_cases([GOOD[0], GOOD[0]], tmp_path)


def test_three_hundred_cases_are_fast(tmp_path: Path) -> None:
    # The differential test's budget: a few hundred cases of ~60 ticks well under 30 s.
    cases = []
    for i in range(300):
        if i % 2:
            values: tuple[float | None, ...] = (0.1,) * 60
            expected = tl("p " * 5 + "f " * 55)
        else:
            values = tuple(None if k % 7 == 3 else 0.0 for k in range(60))
            expected = tl("i " * 60)
        cases.append(
            OracleCase(
                name=f"perf_{i}",
                step=30,
                op=">",
                threshold=0.05,
                for_seconds=150,
                expected=expected,
                values=values,
            )
        )
    started = time.monotonic()
    assert check_cases(cases, tmp_path) == {}
    assert time.monotonic() - started < 20
