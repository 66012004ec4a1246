"""The report as data: what tidegate saw, decided and did, ready for any renderer.

Frozen data and nothing else. `build` fills it from the store and the re-read signals (or a
backtest's result); `html`, `markdown` and `jsonout` only format it, so the three formats
can never tell different stories. Times are unix seconds (UTC); renderers format them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ReportKind(Enum):
    ROLLOUT = "rollout"  # a rollout in the store: records plus re-evaluated signals
    BACKTEST = "backtest"  # recorded data through the policies: no targets, no records


class SpanKind(Enum):
    PENDING = "pending"
    BREACH = "breach"


@dataclass(frozen=True)
class Point:
    t: float
    v: float | None  # None: the rule had no value at this tick (a gap, never a zero)


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    kind: SpanKind


@dataclass(frozen=True)
class Window:
    start: float
    end: float


@dataclass(frozen=True)
class Firing:
    """A rule going into breach, with the evidence it judged (the rule's own words)."""

    policy: str
    at: float
    value: float | None
    detail: str
    pending_since: float  # the streak's first tick; `at` itself for a rule without `for`


@dataclass(frozen=True)
class RuleChart:
    """One rule over the rollout: the value it judged at each tick and its streaks.

    `points` hold what the chart draws: the rule's value for threshold and count rules,
    the signal's level over the rule's window for drift rules (whose `threshold` is then
    the baseline level moved by the drift bound). `percent` marks ratio signals.
    """

    policy: str
    signal: str
    kind: str  # threshold | count | drift
    action: str
    sentence: str  # policies.explain: the rule in one plain sentence
    condition: str  # short form for tables: `error_rate > 0.05 for 5m`
    percent: bool
    threshold: float | None
    threshold_label: str
    points: tuple[Point, ...]
    spans: tuple[Span, ...]
    baseline: Window | None = None
    baseline_value: float | None = None
    firings: tuple[Firing, ...] = ()
    unavailable: str = ""  # why there is no chart ("" when there is one)
    thinned: bool = False  # more ticks than a chart draws: each bucket keeps its worst value
    worst: str = "quiet"  # breach | pending | quiet: the most the rule did while the rollout ran


@dataclass(frozen=True)
class Marker:
    """A vertical line on every chart: a transition, a manual act, a decision change."""

    at: float
    label: str
    kind: str  # the trigger (start, advance, step_down, rollback, complete, …), manual, or a decision


@dataclass(frozen=True)
class DecisionRow:
    at: float
    decision: str
    policies: tuple[str, ...]  # the rules that raised the decision to its level
    reasons: tuple[str, ...]  # each cause with the value it judged, when the signals were re-read
    breaching: tuple[str, ...] = ()
    no_data: tuple[str, ...] = ()


@dataclass(frozen=True)
class MoveRow:
    at: float
    seq: int  # the transition's number; its operations carry it too
    trigger: str
    before: str
    after: str
    traffic: int
    reason: str
    actor: str


@dataclass(frozen=True)
class TargetAction:
    """One operation the journal holds: what the target was told and what it answered."""

    at: float
    seq: int  # the transition that planned it
    told: str  # set_traffic(50%), rollback(to 2.3.9), pause, …
    outcome: str  # applied | already_done | refused | failed | unfinished
    detail: str
    finished_at: float | None


@dataclass(frozen=True)
class LaneSegment:
    """Where a target stood between two operations, as the journal says it was told."""

    start: float
    end: float
    label: str
    kind: str  # idle | traffic | paused | rolled_back | off | on | failed


@dataclass(frozen=True)
class TargetLane:
    name: str
    kind: str  # the vendor it is (or, for a sandbox, emulates)
    actions: tuple[TargetAction, ...]
    segments: tuple[LaneSegment, ...]


@dataclass(frozen=True)
class ManualAct:
    at: float
    actor: str
    act: str  # rollback | pause | resume | promote
    reason: str
    result: str  # "progressing → paused at 50%"


@dataclass(frozen=True)
class PageRow:
    at: float
    target: str
    reason: str


@dataclass(frozen=True)
class AuditStatus:
    ok: bool
    rows: int  # rows in the whole chain (every rollout shares one chain)
    rollout_rows: int
    first_bad: int | None
    reason: str


@dataclass(frozen=True)
class Subject:
    """What the report is about: the rollout record, or the backtest's inputs."""

    title: str
    rollout_id: str | None
    name: str
    version: str
    previous_version: str
    state: str
    traffic: int | None
    reason: str


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    subject: Subject
    start: float
    end: float  # the rollout's last transition when it finished, else the last tick
    shown_until: float  # charts may run a little past `end`: what the signals did next
    interval: float
    charts_available: bool
    notes: tuple[str, ...]  # how the charts were rebuilt, or why they could not be
    rules: tuple[RuleChart, ...]
    markers: tuple[Marker, ...]
    decisions: tuple[DecisionRow, ...]
    moves: tuple[MoveRow, ...]
    targets: tuple[TargetLane, ...]
    manual: tuple[ManualAct, ...]
    pages: tuple[PageRow, ...]
    audit: AuditStatus | None
    generated_at: float

    @property
    def firings(self) -> list[Firing]:
        """Firings while the rollout ran (the charts' tail after its end shows more)."""
        fired = (f for rule in self.rules for f in rule.firings if f.at <= self.end)
        return sorted(fired, key=lambda f: f.at)
