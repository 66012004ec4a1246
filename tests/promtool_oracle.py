"""The real ``promtool test rules`` as an oracle for our threshold + ``for`` semantics.

A differential test builds :class:`OracleCase` objects (a signal on a regular grid, a
threshold rule and the state timeline *our* evaluator produced) and hands them to
:func:`check_cases`, which asks Prometheus' own rule engine whether it agrees, tick by tick.

Semantics being checked (see DESIGN.md, "Rule kinds")
-----------------------------------------------------
Ticks are at ``t = k*step`` (k = 0..n-1); sample k of every series is at ``k*step``.

* plain signal: the value at t is the newest sample in ``(t - 300s, t]``;
* ratio signal: ``Σnum / Σden`` over the samples in ``(t - window, t]``; no value when
  ``Σden < min_samples``;
* the rule is *pending* from the first tick t0 where ``value OP threshold`` holds and
  *firing* from the first tick with ``t - t0 >= for``; a false condition or no value resets.

Closed vs left-open windows (why the PromQL below says ``299s`` and ``window-1``)
--------------------------------------------------------------------------------
promtool 2.x (2.42 here) selects ``[t - d, t]``: both its 5m lookback and its range
selectors are *closed*.  Our semantics (like Prometheus 3.x) is left-open ``(t - d, t]``.
Verified with promtool 2.42 and a single sample at 0 s, queried at 300 s:

* ``sig`` (instant selector, 5m lookback) still returns the sample (closed lookback);
* ``last_over_time(sig[300s])`` also returns it (closed range);
* ``last_over_time(sig[299s])`` returns nothing — "no value", as our semantics demands;
  at 299 s it does return the sample, as ours does too (0 ∈ (-1, 299]).

Every sample time and tick is a whole number of seconds (``step`` is an integer >= 1, so
they lie on the integer grid), hence for integers s, t and an integer window W::

    t - W < s <= t   <=>   t - (W - 1) <= s <= t

i.e. the closed window of width ``W - 1`` holds exactly the samples of our left-open window
of width ``W``: no sample can lie strictly between ``t - W`` and ``t - W + 1``.  That is the
whole precondition (step >= 1 on an integer grid, W integer); PromQL additionally rejects a
``0s`` range, so the ratio window must be >= 2 s.  The translation therefore uses:

* plain (staleness fixed at 300 s):  ``last_over_time(SIG[299s]) OP THRESHOLD``.
  ``last_over_time`` over an explicit range makes the 5m lookback (and its closedness)
  irrelevant; missing samples are simply absent (``_``), no staleness markers.
* ratio:  ``sum_over_time(NUM[Ws]) / sum_over_time(DEN[Ws]) OP THRESHOLD
  and sum_over_time(DEN[Ws]) >= MIN_SAMPLES`` with ``W = window - 1``.

Should promtool report major version >= 3, whose windows are left-open, the ranges become
``300s`` and ``window`` instead (not exercised here: the machines ship 2.42).

What each case checks
---------------------
Each case gets its own rule file (one group, one alerting rule named after the case) and its
own test file (``evaluation_interval`` = input ``interval`` = step, one test group).  All test
files go to *one* ``promtool test rules`` invocation (one per 500 cases; per-file rule sets
keep the work linear, as a test group evaluates every group of its rule files at every
tick).  At every tick there is one ``promql_expr_test`` on ``ALERTS{alertname="CASE"}``:
it expects no sample (inactive) or exactly
``ALERTS{alertname="CASE", alertstate="pending"|"firing"} 1``.  ``alert_rule_test`` is not
used: it only compares firing alerts, while ``ALERTS`` covers both states (the rule group
writes staleness markers when a state's series disappears, so the instant query at
tick t sees exactly the state of the evaluation at t).

promtool 2.42 prints no test-group names, and with several files its stdout and stderr
interleave unpredictably, so failures are attributed through the ``alertname`` inside the
failing expression.  Anything else promtool reports (YAML or rule-load errors, rule
evaluation errors, query errors) is not a disagreement: :func:`check_cases` raises
:class:`PromtoolError` with the full output.

Things promtool does that a differential test should know
----------------------------------------------------------
* ``sum_over_time`` over a window with no sample gives no series: a window where ``num`` has
  no sample but ``den`` has is "no value" here, not ``0 / Σden``; likewise ``den`` absent.
* ``Σden == 0`` with ``min_samples <= 0`` gives ``±Inf`` (or ``NaN`` for 0/0), not an error.
* ``NaN`` compares false with every threshold.
* 2.42's ``sum_over_time`` uses compensated (Kahan) summation: ``1e16, 1, 1`` sums to
  ``1e16 + 2``, whereas Python 3.11's ``sum`` gives ``1e16``.  Differential cases should use
  values whose sums are exact (small integers, dyadic fractions) unless our evaluator
  compensates too.
* Samples are written with ``repr`` (``Inf``/``-Inf``/``NaN`` spelled the PromQL way), so
  promtool reads the exact doubles; ``0.1 + 0.2 > 0.3`` holds there as it does in Python.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "OPS",
    "STATES",
    "OracleCase",
    "PromtoolError",
    "check_cases",
    "promql_expr",
    "promtool_available",
]

OPS = (">", ">=", "<", "<=")
STATES = ("inactive", "pending", "firing")
STALENESS_SECONDS = 300
_NAME_RE = re.compile(r"[a-z0-9_]+")
_PROMTOOL = "promtool"
_TIMEOUT_SECONDS = 600
_BATCH = 500  # test files per promtool call: keeps the command line short


class PromtoolError(RuntimeError):
    """promtool failed for a reason other than a case's expected timeline disagreeing."""


@dataclass(frozen=True)
class OracleCase:
    """One signal + one threshold rule + the state timeline expected at every tick."""

    name: str  # unique, [a-z0-9_]
    step: int  # seconds
    op: str  # '>', '>=', '<', '<='
    threshold: float
    for_seconds: int
    expected: tuple[str, ...]  # one state per tick k = 0..len-1
    values: tuple[float | None, ...] | None = None  # plain signal, sample at k*step
    num: tuple[float | None, ...] | None = None  # ratio signal
    den: tuple[float | None, ...] | None = None
    window_seconds: int = 60
    min_samples: float = 0.0

    @property
    def is_ratio(self) -> bool:
        return self.values is None


def promtool_available() -> bool:
    """True when a working ``promtool`` is on PATH."""
    return _promtool_major() is not None


@cache
def _promtool_major() -> int | None:
    if shutil.which(_PROMTOOL) is None:
        return None
    try:
        proc = subprocess.run(
            [_PROMTOOL, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"version (\d+)\.", proc.stdout + proc.stderr)
    if proc.returncode != 0 or match is None:
        return None
    return int(match.group(1))


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _validate(case: OracleCase) -> None:
    def bad(why: str) -> ValueError:
        return ValueError(f"OracleCase {case.name!r}: {why}")

    if not _NAME_RE.fullmatch(case.name):
        raise bad("name must match [a-z0-9_]+")
    # The closed->left-open translation needs ticks and samples on the integer-second grid.
    if not _is_int(case.step) or case.step < 1:
        raise bad(f"step must be an integer >= 1 second, got {case.step!r}")
    if case.op not in OPS:
        raise bad(f"op must be one of {OPS}, got {case.op!r}")
    if not _is_int(case.for_seconds) or case.for_seconds < 0:
        raise bad(f"for_seconds must be an integer >= 0, got {case.for_seconds!r}")
    if not case.expected:
        raise bad("expected must hold at least one tick")
    for state in case.expected:
        if state not in STATES:
            raise bad(f"unknown state {state!r}; use one of {STATES}")
    n = len(case.expected)
    if case.values is not None:
        if case.num is not None or case.den is not None:
            raise bad("give either values (plain) or num+den (ratio), not both")
        if len(case.values) != n:
            raise bad(f"values has {len(case.values)} samples for {n} ticks")
        return
    if case.num is None or case.den is None:
        raise bad("give either values (plain) or both num and den (ratio)")
    if len(case.num) != n or len(case.den) != n:
        raise bad(f"num/den have {len(case.num)}/{len(case.den)} samples for {n} ticks")
    # Closed range of window-1 seconds == left-open range of window seconds on the integer
    # grid; PromQL rejects a 0s range, hence window >= 2.
    if not _is_int(case.window_seconds) or case.window_seconds < 2:
        raise bad(f"window_seconds must be an integer >= 2, got {case.window_seconds!r}")
    if not math.isfinite(case.min_samples):
        raise bad(f"min_samples must be finite, got {case.min_samples!r}")


def _fmt(x: float) -> str:
    """A float in a form both PromQL and promtool's series notation read back exactly."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    return repr(x)


def _series_values(samples: Sequence[float | None]) -> str:
    return " ".join("_" if v is None else _fmt(v) for v in samples)


def _metric(case: OracleCase, part: str) -> str:
    return f"tidegate_oracle_{case.name}_{part}"


def _range_seconds(window_seconds: int, major: int) -> int:
    """The PromQL range that selects the samples of our left-open (t - window, t]."""
    return window_seconds - 1 if major < 3 else window_seconds


def promql_expr(case: OracleCase, promtool_major: int = 2) -> str:
    """The alerting-rule expression that encodes ``case``'s condition for that promtool."""
    thr = _fmt(case.threshold)
    if not case.is_ratio:
        rng = _range_seconds(STALENESS_SECONDS, promtool_major)
        return f"last_over_time({_metric(case, 'sig')}[{rng}s]) {case.op} {thr}"
    rng = _range_seconds(case.window_seconds, promtool_major)
    num = f"sum_over_time({_metric(case, 'num')}[{rng}s])"
    den = f"sum_over_time({_metric(case, 'den')}[{rng}s])"
    return f"{num} / {den} {case.op} {thr} and {den} >= {_fmt(case.min_samples)}"


def _alerts_query(case: OracleCase) -> str:
    return f'ALERTS{{alertname="{case.name}"}}'


def _rules_doc(case: OracleCase, major: int) -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": case.name,
                "rules": [
                    {
                        "alert": case.name,
                        "expr": promql_expr(case, major),
                        "for": f"{case.for_seconds}s",
                    }
                ],
            }
        ]
    }


def _test_doc(case: OracleCase, rules_file: str) -> dict[str, Any]:
    if case.values is not None:
        series = [{"series": _metric(case, "sig"), "values": _series_values(case.values)}]
    else:
        assert case.num is not None and case.den is not None
        series = [
            {"series": _metric(case, "num"), "values": _series_values(case.num)},
            {"series": _metric(case, "den"), "values": _series_values(case.den)},
        ]
    query = _alerts_query(case)
    tests: list[dict[str, Any]] = []
    for k, state in enumerate(case.expected):
        exp: list[dict[str, Any]] = []
        if state != "inactive":
            labels = f'{{__name__="ALERTS", alertname="{case.name}", alertstate="{state}"}}'
            exp.append({"labels": labels, "value": 1})
        tests.append({"expr": query, "eval_time": f"{k * case.step}s", "exp_samples": exp})
    return {
        "rule_files": [rules_file],
        "evaluation_interval": f"{case.step}s",
        "tests": [
            {
                "name": case.name,
                "interval": f"{case.step}s",
                "input_series": series,
                "promql_expr_test": tests,
            }
        ],
    }


# One mismatch, as promtool 2.42 prints it:
#     expr: "ALERTS{alertname=\"x\"}", time: 3m,
#         exp: {__name__="ALERTS", alertname="x", alertstate="pending"} 1E+00
#         got: nil
_EXPR_LINE = re.compile(r'    expr: "(?P<expr>(?:[^"\\]|\\.)*)", time: (?P<time>[0-9a-z.]+),')
_DETAIL_LINE = re.compile(r"        (?:exp|got): .*")
_ALERTNAME = re.compile(r'^ALERTS\{alertname=\\"(?P<name>[a-z0-9_]+)\\"\}$')


def _attribute(stderr: str, names: set[str]) -> dict[str, list[str]] | None:
    """{case: [failure lines]} from promtool's stderr, or None if anything is unaccounted."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stderr.splitlines():
        if not line.strip() or line.strip() == "FAILED:":
            current = None
            continue
        match = _EXPR_LINE.fullmatch(line)
        if match is not None:
            name_match = _ALERTNAME.match(match.group("expr"))
            if name_match is None or name_match.group("name") not in names:
                return None
            current = found.setdefault(name_match.group("name"), [])
            current.append(line.strip())
            continue
        if current is not None and _DETAIL_LINE.fullmatch(line):
            current.append("    " + line.strip())
            continue
        return None
    return found


def _dump(doc: dict[str, Any]) -> str:
    # JSON is YAML (and an order of magnitude faster to write than PyYAML's pure-Python dumper).
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def _run(test_files: list[Path], workdir: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_PROMTOOL, "test", "rules", *(p.name for p in test_files)],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired as exc:
        raise PromtoolError(f"promtool test rules timed out after {_TIMEOUT_SECONDS}s") from exc


def check_cases(cases: Sequence[OracleCase], workdir: Path) -> dict[str, str]:
    """Runs promtool once over all cases (one rules file + one test file per case, all test
    files in one ``promtool test rules`` call per 500 cases); returns {case name: promtool's failure
    text} for the cases that disagree, {} when all agree.

    Raises ValueError for an invalid case and PromtoolError when promtool is missing or fails
    in a way that is not a disagreement with an expected timeline.
    """
    if not cases:
        return {}
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"case names must be unique: {dupes}")
    for case in cases:
        _validate(case)
    major = _promtool_major()
    if major is None:
        raise PromtoolError("promtool is not installed or does not run (make tools)")

    workdir.mkdir(parents=True, exist_ok=True)
    test_files: list[Path] = []
    for case in cases:
        rules_file = workdir / f"{case.name}.rules.yml"
        test_file = workdir / f"{case.name}.test.yml"
        rules_file.write_text(_dump(_rules_doc(case, major)))
        test_file.write_text(_dump(_test_doc(case, rules_file.name)))
        test_files.append(test_file)

    report: dict[str, str] = {}
    for start in range(0, len(test_files), _BATCH):
        batch = test_files[start : start + _BATCH]
        batch_names = {c.name for c in cases[start : start + _BATCH]}
        report.update(_check_batch(batch, batch_names, workdir))
    return report


def _check_batch(test_files: list[Path], names: set[str], workdir: Path) -> dict[str, str]:
    proc = _run(test_files, workdir)
    output = f"exit status {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    ran = set(re.findall(r"^Unit Testing:\s+(\S+)\s*$", proc.stdout, flags=re.MULTILINE))
    missing = [p.name for p in test_files if p.name not in ran]
    if missing:
        raise PromtoolError(f"promtool did not run {missing[:5]}...:\n{output}")
    failures = _attribute(proc.stderr, names)
    if failures is None:
        raise PromtoolError(f"promtool output has failures not attributable to a case:\n{output}")
    if proc.returncode not in (0, 1) or (proc.returncode == 1) != bool(failures):
        raise PromtoolError(f"promtool exit status does not match its report:\n{output}")
    return {name: "\n".join(lines) for name, lines in failures.items()}
