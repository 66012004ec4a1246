"""Decision quality of policy packs on simulated releases: false decisions, catches, delay.

    .venv/bin/python -m bench.decision_quality [--healthy N] [--per-cell N] [--stress N]
        [--seed S] [--workers W] [--markdown] [--kind KIND] [--pack NAME=REF] [--ablation]

Every release comes from `controller.simulator` (seeded) and goes through
`controller.backtest.run_backtest` — the engine the controller runs — once per pack: by
default the shipped pack (`library:runbook`) and the runbook read literally
(`bench/literal.yaml`). Definitions (docs/policies.md, "Measured"):

- *false decision*: a healthy release on which some tick decided step_down or rollback;
  reported with the exact (Clopper–Pearson) two-sided 95% upper bound on its rate, the rules
  behind the first such decision, and the share of ticks decided HOLD (what a guard may
  charge instead of a false decision);
- *caught*: a rule of the regression's kind — same signal, action at the kind's level
  (rollback for error rate, conversion and incidents; step_down or worse for latency) —
  entered breach at a tick in [onset, end of the release]. A breach already under way at
  the onset is a false alarm of the healthy part, not a catch;
- *earliest moment*: what the runbook's own definition allows — onset + 5 min (error
  rate, `for: 5m`), onset + 10 min (latency, `for: 10m`), the onset (conversion drift has
  no `for`), the first arrival at or after the onset that makes 3 distinct high-severity
  incidents within an hour, background ones included (incidents). Delay is the first
  catching tick minus that moment;
- *clear*: a regression counted against the ≥ 95% target. Error, latency and incident
  regressions are all clear. A conversion drop is clear when an ideal test — one-sided
  two-proportion z of the hour after onset against the two hours before the start, at the
  simulator's noise-free expected counts — reaches z ≥ 6 (Z_CLEAR): a rule that stays
  silent on thousands of healthy releases needs z ≈ 4.3 per look, and 95% power adds
  ≈ 1.6 on top. Drops below that are reported, not counted.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

from controller.backtest import BacktestResult, run_backtest
from controller.core.decide import Decision
from controller.simulator import (
    REGRESSION_KINDS,
    RegressionKind,
    ReleaseSpec,
    Scenario,
    Volume,
    healthy_spec,
    regressed_spec,
    simulate,
)
from policies.loader import load_pack
from policies.rules.base import Status
from policies.schema import Action, Baseline, CountPolicy, DriftPolicy, Policy, PolicyPack

PACKS: dict[str, str] = {
    "shipped": "library:runbook",
    "literal": str(Path(__file__).with_name("literal.yaml")),
}
SIGNAL: dict[RegressionKind, str] = {
    "error_rate": "error_rate",
    "latency": "latency_p95",
    "conversion": "checkout_conversion",
    "incidents": "incidents",
}
LEVEL: dict[RegressionKind, Action] = {
    "error_rate": Action.ROLLBACK,
    "latency": Action.STEP_DOWN,
    "conversion": Action.ROLLBACK,
    "incidents": Action.ROLLBACK,
}
# The runbook's own `for` (DESIGN.md table): the earliest a breach can be by definition.
RUNBOOK_FOR: dict[RegressionKind, float] = {"error_rate": 300.0, "latency": 600.0, "conversion": 0.0}
Z_CLEAR = 6.0
STEP_DOWN = Action.STEP_DOWN.severity
LOW_PEAK = 20.0  # healthy releases whose peak is at most this many requests per scrape: "low traffic"
TARGET = 0.95
STRESS: tuple[tuple[float, float], ...] = ((0.1, 0.0), (0.25, 0.3), (0.5, 0.3))  # (per hour, clustering)


@dataclass(frozen=True)
class Cell:
    kind: RegressionKind
    size: float
    volume: Volume

    @property
    def label(self) -> str:
        if self.kind == "incidents":
            return f"{self.size:g} high-severity incidents within an hour"
        if self.kind == "error_rate":
            size = f"error rate {self.size:.0%}"
        elif self.kind == "latency":
            size = f"p95 {self.size:g} s"
        else:
            size = f"conversion −{self.size:.0%}"
        return f"{size}, {self.volume} traffic"


CELLS: tuple[Cell, ...] = (
    *(Cell("error_rate", s, v) for s in (0.15, 0.3, 0.5) for v in ("low", "mid", "high")),
    *(Cell("latency", s, v) for s in (30.0, 45.0) for v in ("low", "mid", "high")),
    *(Cell("conversion", s, v) for s in (0.2, 0.3) for v in ("low", "mid", "high")),
    *(Cell("incidents", s, "mid") for s in (3.0, 4.0, 5.0)),
)


# --- one release ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    group: str  # "healthy", "stress:<rate>" or a cell index as text
    spec: ReleaseSpec
    kind: RegressionKind | None = None


@dataclass(frozen=True)
class Outcome:
    """What one pack did with one release (small: it crosses process boundaries)."""

    lowered: bool  # some tick decided step_down or rollback
    breached: tuple[str, ...]  # rules at step_down or rollback level that ever breached
    hold_share: float  # share of ticks decided HOLD
    lowered_before_onset: bool = False
    detected_at: float | None = None  # first breach of a kind rule in [onset, end]
    earliest: float | None = None
    ideal_z: float | None = None  # conversion only

    @property
    def clear(self) -> bool:
        return self.ideal_z is None or self.ideal_z >= Z_CLEAR

    @property
    def delay(self) -> float | None:
        if self.detected_at is None or self.earliest is None or not math.isfinite(self.earliest):
            return None
        return self.detected_at - self.earliest


PackSource = str | PolicyPack  # a file, library:NAME, or a pack built in memory (ablations)
_ACTIVE: dict[str, PackSource] = dict(PACKS)  # the packs under study (workers inherit it on fork)
_PACK_CACHE: dict[str, PolicyPack] = {}


def _pack(name: str) -> PolicyPack:
    source = _ACTIVE[name]
    if isinstance(source, PolicyPack):
        return source
    if source not in _PACK_CACHE:
        _PACK_CACHE[source] = load_pack(source)
    return _PACK_CACHE[source]


def kind_rules(policies: Iterable[Policy], kind: RegressionKind) -> set[str]:
    """The pack's rules that answer for a regression kind: same signal, action at its level."""
    rules = set()
    for policy in policies:
        if policy.signal != SIGNAL[kind] or policy.action.severity < LEVEL[kind].severity:
            continue
        if policy.targets:  # a mitigation never raises the rollout-wide decision
            continue
        if isinstance(policy, CountPolicy) and policy.match.get("severity") != "high":
            continue
        rules.add(policy.id)
    return rules


def evaluate(job: Job, packs: Mapping[str, PolicyPack] | None = None) -> dict[str, Outcome]:
    """One release through every pack under study (or through `packs`)."""
    scenario = simulate(job.spec)
    chosen = packs if packs is not None else {name: _pack(name) for name in _ACTIVE}
    return {name: outcome(job, scenario, pack) for name, pack in chosen.items()}


def outcome(job: Job, scenario: Scenario, pack: PolicyPack) -> Outcome:
    result = run_backtest(
        pack.policies, scenario.data, start=scenario.start, interval=pack.interval, events_given=True
    )
    lowered = [c for c in result.decisions if c.verdict.decision.lowers_traffic]
    held = _held_share(result)
    lowering = {p.id for p in pack.policies if p.action.severity >= STEP_DOWN and not p.targets}
    breached = tuple(sorted({f.policy for f in result.firings if f.policy in lowering}))
    if job.kind is None:
        return Outcome(bool(lowered), breached, held)
    onset = scenario.onset(job.kind)
    assert onset is not None
    return Outcome(
        bool(lowered),
        breached,
        held,
        lowered_before_onset=any(c.at < onset for c in lowered),
        detected_at=_first_breach(result, kind_rules(pack.policies, job.kind), onset, scenario.end),
        earliest=_earliest(scenario, job.kind, onset),
        ideal_z=ideal_z(scenario, onset) if job.kind == "conversion" else None,
    )


def _held_share(result: BacktestResult) -> float:
    if result.ticks == 0:
        return 0.0
    held, changes = 0, result.decisions
    end = result.start + result.ticks * result.interval
    for index, change in enumerate(changes):
        stop = changes[index + 1].at if index + 1 < len(changes) else end
        if change.verdict.decision is Decision.HOLD:
            held += round((stop - change.at) / result.interval)
    return held / result.ticks


def _earliest(scenario: Scenario, kind: RegressionKind, onset: float) -> float:
    if kind == "incidents":
        return third_incident(scenario, onset)
    return onset + RUNBOOK_FOR[kind]


def third_incident(scenario: Scenario, onset: float, count: int = 3, within: float = 3600.0) -> float:
    """The first arrival at or after `onset` that makes `count` distinct high-severity
    incidents within the trailing `within` — injected or background, each id once."""
    first: dict[str, float] = {}
    for event in scenario.data.events:
        if event.fields.get("severity") == "high" and event.id is not None:
            first.setdefault(event.id, event.time)
    arrivals = sorted(first.values())
    for index, at in enumerate(arrivals):
        if at >= onset and index + 1 >= count and at - arrivals[index + 1 - count] < within:
            return at
    return math.inf


def _first_breach(result: BacktestResult, rules: set[str], onset: float, end: float) -> float | None:
    for transition in result.transitions:
        if transition.policy in rules and transition.after is Status.BREACH and onset <= transition.at <= end:
            return transition.at
    return None


def ideal_z(scenario: Scenario, onset: float) -> float:
    """z of an ideal one-sided two-proportion test of the hour after onset against the whole
    history before the start, at the expected (noise-free) counts: the detection limit."""
    spec = scenario.spec
    times, requests = scenario.latent["requests"]
    conversion = scenario.latent["conversion"][1]
    n0 = c0 = n1 = c1 = 0.0
    for at, expected, rate in zip(times, requests, conversion, strict=True):
        sessions = expected * spec.sessions_per_request
        if at < spec.start:
            n0, c0 = n0 + sessions, c0 + sessions * rate
        elif onset <= at < onset + 3600:
            n1, c1 = n1 + sessions, c1 + sessions * rate
    if n0 <= 0 or n1 <= 0:
        return 0.0
    pooled = (c0 + c1) / (n0 + n1)
    return (c0 / n0 - c1 / n1) / math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))


# --- the study -----------------------------------------------------------------------------------

Rows = list[tuple[Job, dict[str, Outcome]]]


@dataclass
class Study:
    healthy: int
    per_cell: int
    seed: int
    stress: int
    packs: dict[str, PackSource]
    cells: tuple[Cell, ...]
    seconds: float = 0.0
    outcomes: dict[str, Rows] = field(default_factory=dict)

    def group(self, name: str) -> Rows:
        return self.outcomes.get(name, [])


def jobs_for(healthy: int, per_cell: int, seed: int, stress: int, cells: Sequence[Cell]) -> list[Job]:
    base = seed * 1_000_000
    jobs = [Job("healthy", healthy_spec(base + i)) for i in range(healthy)]
    for index, (rate, clustering) in enumerate(STRESS):
        for i in range(stress):
            spec = replace(
                healthy_spec(base + 100_000 * (index + 1) + i),
                background_incidents_per_hour=rate,
                incident_clustering=clustering,
            )
            jobs.append(Job(f"stress:{rate:g}", spec))
    for index, cell in enumerate(cells):
        for i in range(per_cell):
            spec = regressed_spec(base + 500_000 + 1000 * index + i, cell.kind, cell.size, cell.volume)
            jobs.append(Job(str(index), spec, cell.kind))
    return jobs


def run_study(
    healthy: int = 1000,
    per_cell: int = 40,
    seed: int = 1,
    stress: int = 100,
    workers: int = 2,
    cells: Sequence[Cell] = CELLS,
    packs: dict[str, PackSource] | None = None,
) -> Study:
    began = time.perf_counter()
    _ACTIVE.clear()
    _ACTIVE.update(packs or PACKS)
    jobs = jobs_for(healthy, per_cell, seed, stress, cells)
    study = Study(healthy, per_cell, seed, stress, dict(_ACTIVE), tuple(cells))
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            results = pool.map(evaluate, jobs, chunksize=16)
    else:
        results = [evaluate(job) for job in jobs]
    for job, result in zip(jobs, results, strict=True):
        study.outcomes.setdefault(job.group, []).append((job, result))
        if job.group == "healthy" and job.spec.peak_requests <= LOW_PEAK:
            study.outcomes.setdefault("healthy-low", []).append((job, result))
    study.seconds = time.perf_counter() - began
    return study


# --- statistics ----------------------------------------------------------------------------------


def clopper_pearson_upper(failures: int, trials: int, confidence: float = 0.95) -> float:
    """Upper end of the exact two-sided Clopper–Pearson interval for failures/trials."""
    if trials <= 0 or failures >= trials:
        return 1.0
    tail = (1 - confidence) / 2
    low, high = failures / trials, 1.0
    for _ in range(100):  # bisection on p: P(X ≤ failures | p) = tail
        mid = (low + high) / 2
        if binomial_cdf(failures, trials, mid) > tail:
            low = mid
        else:
            high = mid
    return high


def binomial_cdf(k: int, n: int, p: float) -> float:
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    head = math.lgamma(n + 1)
    return math.fsum(
        math.exp(head - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in range(k + 1)
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class HealthyRow:
    releases: int
    false: int
    upper: float
    causes: dict[str, int]
    hold_share: float


def healthy_row(rows: Rows, pack: str) -> HealthyRow:
    outcomes = [o[pack] for _, o in rows]
    false = [o for o in outcomes if o.lowered]
    causes = Counter(policy for o in false for policy in o.breached)
    hold = statistics.fmean(o.hold_share for o in outcomes) if outcomes else 0.0
    upper = clopper_pearson_upper(len(false), len(outcomes))
    return HealthyRow(len(outcomes), len(false), upper, dict(causes), hold)


@dataclass(frozen=True)
class CellRow:
    cell: Cell
    runs: int
    clear: int
    caught: int  # among the clear runs
    caught_all: int
    median_delay: float | None
    p95_delay: float | None
    early: int  # releases that lowered traffic before the onset
    ideal_z: float | None

    @property
    def share(self) -> float:
        return self.caught / self.clear if self.clear else math.nan


def cell_row(cell: Cell, rows: Rows, pack: str) -> CellRow:
    outcomes = [o[pack] for _, o in rows]
    clear = [o for o in outcomes if o.clear]
    delays = [d for o in clear if (d := o.delay) is not None]
    zs = [o.ideal_z for o in outcomes if o.ideal_z is not None]
    return CellRow(
        cell,
        len(outcomes),
        len(clear),
        sum(o.detected_at is not None for o in clear),
        sum(o.detected_at is not None for o in outcomes),
        statistics.median(delays) if delays else None,
        percentile(delays, 0.95) if delays else None,
        sum(o.lowered_before_onset for o in outcomes),
        statistics.median(zs) if zs else None,
    )


def kind_summary(study: Study, pack: str, kind: RegressionKind) -> tuple[int, int, float]:
    """(caught, clear runs, worst cell share) over every cell of a kind."""
    caught = total = 0
    worst = math.inf
    for index, cell in enumerate(study.cells):
        if cell.kind != kind:
            continue
        row = cell_row(cell, study.group(str(index)), pack)
        caught, total = caught + row.caught, total + row.clear
        if row.clear:
            worst = min(worst, row.share)
    return caught, total, worst


# --- reporting -----------------------------------------------------------------------------------


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f}"


def _causes(causes: dict[str, int]) -> str:
    ranked = sorted(causes.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} ×{count}" for name, count in ranked) or "—"


def report(study: Study) -> list[str]:
    packs = list(study.packs)
    lines = [
        f"decision quality — seed {study.seed}: {study.healthy} healthy releases, {study.per_cell} per "
        f"regression cell, {study.stress} per stress set; packs: "
        + ", ".join(f"{name} = {_source(ref)}" for name, ref in study.packs.items())
        + f"; {study.seconds:.0f} s",
        "",
        "Healthy releases: false step_down/rollback decisions (target 0)",
        "",
        "| set | pack | releases | false decisions | 95% upper bound | rules that breached (releases) "
        "| ticks on HOLD |",
        "|---|---|---|---|---|---|---|",
    ]
    sets = [
        ("healthy", "healthy (0.05 high-sev/h)"),
        ("healthy-low", f"… of which low traffic (peak ≤ {LOW_PEAK:g}/scrape)"),
    ]
    sets += [(f"stress:{r:g}", f"stress: {r:g} high-sev/h" + (", clustered" if c else "")) for r, c in STRESS]
    for group, name in sets:
        rows = study.group(group)
        for pack in packs if rows else ():
            healthy = healthy_row(rows, pack)
            lines.append(
                f"| {name} | {pack} | {healthy.releases} | {healthy.false} | {healthy.upper:.2%} | "
                f"{_causes(healthy.causes)} | {healthy.hold_share:.1%} |"
            )
    lines += [
        "",
        "Regressions: caught by the kind's rules (clear runs), delay after the earliest moment "
        "the runbook allows (minutes, median / p95)",
        "",
        "| regression | " + " | ".join(f"{p} caught | {p} delay" for p in packs) + " | notes |",
        "|---|" + "---|---|" * len(packs) + "---|",
    ]
    for index, cell in enumerate(study.cells):
        rows = study.group(str(index))
        if rows:
            lines.append(_cell_line(cell, rows, packs))
    kinds = [k for k in REGRESSION_KINDS if any(c.kind == k for c in study.cells)]
    lines += [
        "",
        f"Per kind: caught of all clear runs (worst cell); target ≥ {TARGET:.0%} in every cell",
        "",
        "| pack | " + " | ".join(kinds) + " | all targets met |",
        "|---|" + "---|" * len(kinds) + "---|",
    ]
    for pack in packs:
        cells, met = [], True
        for kind in kinds:
            caught, total, worst = kind_summary(study, pack, kind)
            cells.append(f"{caught}/{total} ({worst:.0%})")
            met = met and worst >= TARGET
        false = healthy_row(study.group("healthy"), pack).false if study.group("healthy") else 0
        met = met and false == 0
        lines.append(f"| {pack} | " + " | ".join(cells) + f" | {'yes' if met else 'no'} |")
    return lines


def _source(source: PackSource) -> str:
    if isinstance(source, PolicyPack):
        return f"{source.metadata.name} (in memory)"
    path = Path(source)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        return str(path.relative_to(Path.cwd()))
    return source


def _cell_line(cell: Cell, rows: Rows, packs: list[str]) -> str:
    parts, notes = [], []
    by_pack = {pack: cell_row(cell, rows, pack) for pack in packs}
    for pack, row in by_pack.items():
        share = f"{row.share:.0%}" if row.clear else "n/a"
        delay = f"{_minutes(row.median_delay)} / {_minutes(row.p95_delay)}"
        parts.append(f"{row.caught}/{row.clear} ({share}) | {delay}")
        if row.early:
            notes.append(f"{pack}: {row.early} lowered before onset")
    first = by_pack[packs[0]]
    if first.ideal_z is not None:
        notes.insert(0, f"ideal z {first.ideal_z:.1f}, {first.clear}/{first.runs} clear")
        if first.clear < first.runs:
            everything = ", ".join(f"{pack} {row.caught_all}/{row.runs}" for pack, row in by_pack.items())
            notes.insert(1, f"caught of all runs: {everything}")
    return f"| {cell.label} | " + " | ".join(parts) + f" | {'; '.join(notes)} |"


# --- ablation: what each guard of the shipped pack buys ------------------------------------------


def _edit(
    pack: PolicyPack, name: str, changes: dict[str, dict[str, object]], drop: Sequence[str] = ()
) -> PolicyPack:
    """The pack with some policies' fields changed (by id) and some policies removed."""
    policies = tuple(
        policy.model_copy(update=changes.get(policy.id, {}))
        for policy in pack.policies
        if policy.id not in drop
    )
    metadata = pack.metadata.model_copy(update={"name": name})
    return pack.model_copy(update={"policies": policies, "metadata": metadata})


def ablations(pack: PolicyPack) -> dict[str, PolicyPack]:
    """The shipped pack with one guard taken away at a time (names say which)."""
    drifts = ("kpi-drift", "kpi-drift-1h")
    return {
        "shipped": pack,
        "error-rate: no confidence bound": _edit(pack, "a1", {"error-rate": {"confidence": None}}),
        "error-rate: no min_samples": _edit(pack, "a2", {"error-rate": {"min_samples": 0.0}}),
        "without error-rate-severe": _edit(pack, "a3", {}, drop=["error-rate-severe"]),
        "without error-rate-low-traffic": _edit(pack, "a4", {}, drop=["error-rate-low-traffic"]),
        "error-rate-low-traffic: for = window (20m)": _edit(
            pack, "a5", {"error-rate-low-traffic": {"for_": 1200.0}}
        ),
        "kpi drift: confidence 0.99": _edit(pack, "a6", {d: {"confidence": 0.99} for d in drifts}),
        "kpi drift: confidence 0.9999": _edit(pack, "a7", {d: {"confidence": 0.9999} for d in drifts}),
        "kpi drift: no for": _edit(pack, "a8", {d: {"for_": 0.0} for d in drifts}),
        "kpi drift: baseline 1h": _edit(pack, "a9", {d: {"baseline": _hour(pack, d)} for d in drifts}),
        "without kpi-drift-1h": _edit(pack, "a10", {}, drop=["kpi-drift-1h"]),
        "latency-p95: for 0 (no `for`)": _edit(pack, "a11", {"latency-p95": {"for_": 0.0}}),
    }


def _hour(pack: PolicyPack, policy_id: str) -> Baseline:
    """A drift policy's baseline, one hour long."""
    for policy in pack.policies:
        if policy.id == policy_id and isinstance(policy, DriftPolicy):
            return policy.baseline.model_copy(update={"window": 3600.0})
    raise KeyError(policy_id)


def ablation_report(study: Study) -> list[str]:
    kinds = [k for k in REGRESSION_KINDS if any(c.kind == k for c in study.cells)]
    lines = [
        f"ablation — seed {study.seed}: {study.healthy} healthy releases, {study.per_cell} per regression "
        f"cell; {study.seconds:.0f} s",
        "",
        "Each row takes one guard away from the shipped pack. Per kind: caught of all clear runs "
        "(worst cell) · median / p95 delay over every caught clear run, in minutes.",
        "",
        "| variant | false decisions | ticks on HOLD | " + " | ".join(kinds) + " |",
        "|---|---|---|" + "---|" * len(kinds),
    ]
    for name in study.packs:
        healthy = healthy_row(study.group("healthy"), name)
        parts = []
        for kind in kinds:
            caught, total, worst = kind_summary(study, name, kind)
            delays = [
                d
                for index, cell in enumerate(study.cells)
                if cell.kind == kind
                for _, outcomes in study.group(str(index))
                if outcomes[name].clear and (d := outcomes[name].delay) is not None
            ]
            median = _minutes(statistics.median(delays)) if delays else "—"
            p95 = _minutes(percentile(delays, 0.95)) if delays else "—"
            parts.append(f"{caught / total:.0%} ({worst:.0%}) · {median} / {p95}")
        causes = f" ({_causes(healthy.causes)})" if healthy.false else ""
        lines.append(
            f"| {name} | {healthy.false}{causes} | {healthy.hold_share:.1%} | " + " | ".join(parts) + " |"
        )
    return lines


def plain(lines: list[str]) -> list[str]:
    """The Markdown report without table syntax, for a terminal."""
    out = []
    for line in lines:
        if line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        out.append("  ".join(cells) if line.startswith("|") else line)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.decision_quality",
        description="False decisions, catches and detection delay of policy packs on simulated releases.",
    )
    parser.add_argument("--healthy", type=int, default=1000, help="healthy releases (default 1000)")
    parser.add_argument("--per-cell", type=int, default=40, help="releases per regression cell (default 40)")
    parser.add_argument("--stress", type=int, default=100, help="releases per stress set (default 100)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--kind", action="append", choices=list(REGRESSION_KINDS), help="only these kinds")
    parser.add_argument(
        "--pack",
        action="append",
        metavar="NAME=REF",
        help="study these packs instead of shipped and literal (a file or library:NAME; repeatable)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="instead: the shipped pack with one guard taken away at a time (no stress sets)",
    )
    args = parser.parse_args(argv)
    packs: dict[str, PackSource] = (
        dict(item.split("=", 1) for item in args.pack) if args.pack else dict(PACKS)
    )
    cells = [c for c in CELLS if not args.kind or c.kind in args.kind]
    if args.ablation:
        packs = dict(ablations(load_pack(PACKS["shipped"])))
        study = run_study(args.healthy, args.per_cell, args.seed, 0, args.workers, cells, packs)
        lines = ablation_report(study)
    else:
        study = run_study(args.healthy, args.per_cell, args.seed, args.stress, args.workers, cells, packs)
        lines = report(study)
    print("\n".join(lines if args.markdown else plain(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
