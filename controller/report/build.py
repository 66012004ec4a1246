"""Assemble a report: a stored rollout (records + re-evaluated signals), or a backtest.

Time is an argument (`now`): it bounds a running rollout's charts and stamps the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from controller.backtest import BacktestResult, DecisionChange
from controller.bootstrap import Signals, policies_of
from controller.core.model import State
from controller.report import records
from controller.report.model import (
    DecisionRow,
    Marker,
    Report,
    ReportKind,
    Subject,
)
from controller.report.rebuild import Rebuilt, reason, rebuild
from controller.report.signals import reread
from controller.spec import spec_from_json
from controller.store.base import RolloutRecord, Store
from policies.errors import TidegateError
from policies.schema import Policy

TAIL = 600.0  # seconds of signal drawn after a finished rollout's last transition: what came next


def rollout_report(store: Store, record: RolloutRecord, now: float) -> Report:
    spec = spec_from_json(record.spec_json)
    moves = records.moves(store, record.id)
    decided = records.decisions(store, record.id)
    finished = record.status.state.terminal or record.status.state is State.FAILED
    # A finished rollout ends at its last transition; any other at its last record (a running
    # one reads its sources every tick, so that is about now).
    end = moves[-1].at if finished and moves else records.last_activity(store, record)
    notes: list[str] = []
    policies: list[Policy] = []
    interval = 30.0
    try:
        policies, interval = policies_of(spec)
    except TidegateError as exc:
        notes.append(f"the rollout's policy packs cannot be read again: {exc}")
    rebuilt: Rebuilt | None = None
    if policies:
        # The charts go on past the end — a little for a finished rollout, up to now for one
        # that is not — and never past the data.
        horizon = min(end + TAIL, now) if finished else max(now, end)
        got = reread(spec, policies, record.created_at, horizon)
        notes += got.notes
        if got.signals is not None:
            span = got.signals.data.span()
            until = max(end, min(horizon, span[1] if span else end))
            rebuilt = rebuild(
                policies, got.signals, start=record.created_at, until=until, interval=interval, end=end
            )
            decided = _with_reasons(decided, rebuilt, policies)
            notes += _disagreement(decided, rebuilt.decisions, end)
    shown_until = max(end, record.created_at + (rebuilt.ticks - 1) * interval) if rebuilt else end
    acts, pages = records.manual_and_pages(store, record.id)
    return Report(
        kind=ReportKind.ROLLOUT,
        subject=Subject(
            title=record.id,
            rollout_id=record.id,
            name=spec.name,
            version=spec.version,
            previous_version=spec.previous_version,
            state=record.status.state.value,
            traffic=record.status.traffic,
            reason=record.status.reason,
        ),
        start=record.created_at,
        end=end,
        shown_until=shown_until,
        interval=interval,
        charts_available=rebuilt is not None,
        notes=tuple(notes),
        rules=tuple(rebuilt.rules if rebuilt else ()),
        markers=tuple(records.markers(moves)),
        decisions=tuple(decided),
        moves=tuple(moves),
        targets=tuple(records.lanes(store, record.id, spec, record.created_at, shown_until)),
        manual=tuple(acts),
        pages=tuple(pages),
        audit=records.audit(store, record.id),
        generated_at=now,
    )


def _with_reasons(rows: list[DecisionRow], rebuilt: Rebuilt, policies: Sequence[Policy]) -> list[DecisionRow]:
    """Each recorded cause with the value it judged at that tick, as re-evaluated."""
    by_id = {p.id: p for p in policies}
    return [
        replace(row, reasons=tuple(reason(rebuilt, by_id[c], row.at) for c in row.policies if c in by_id))
        for row in rows
    ]


def _disagreement(
    recorded: Sequence[DecisionRow], rebuilt: Sequence[DecisionChange], end: float
) -> list[str]:
    """Say so when today's data no longer gives the decisions the rollout made."""
    seen = _changes([(row.decision, row.policies) for row in recorded])
    again = _changes([(c.verdict.decision.value, c.verdict.policies) for c in rebuilt if c.at <= end])
    if seen == again:
        return ["re-evaluating the data gives the very decisions the rollout recorded"]
    return [
        "re-evaluating today's data gives other decisions than the rollout recorded "
        f"(recorded: {_sequence(seen)}; now: {_sequence(again)}): the source's data changed "
        "since (late, corrected or expired samples); the tables show what was recorded"
    ]


def _changes(rows: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple[str, ...]]]:
    """Consecutive repeats dropped: the store also records changes of mitigations alone."""
    return [row for index, row in enumerate(rows) if index == 0 or rows[index - 1] != row]


def _sequence(rows: list[tuple[str, tuple[str, ...]]]) -> str:
    return " → ".join(decision + (f" ({', '.join(causes)})" if causes else "") for decision, causes in rows)


def backtest_report(
    result: BacktestResult, signals: Signals, policies: Sequence[Policy], title: str, now: float
) -> Report:
    """The same pictures for a backtest: decisions from its result, no targets, no records."""
    rebuilt = rebuild(policies, signals, start=result.start, until=result.end, interval=result.interval)
    decided = _with_reasons(
        [DecisionRow(c.at, c.verdict.decision.value, c.verdict.policies, ()) for c in result.decisions],
        rebuilt,
        policies,
    )
    worst = max((c.verdict.decision for c in result.decisions), key=lambda d: d.severity, default=None)
    lowered = "traffic would have been lowered" if result.lowered_traffic else "no step down or rollback"
    return Report(
        kind=ReportKind.BACKTEST,
        subject=Subject(
            title=f"backtest of {title}",
            rollout_id=None,
            name=title,
            version="",
            previous_version="",
            state=worst.value if worst else "no decision",
            traffic=None,
            reason=lowered,
        ),
        start=result.start,
        end=result.end,
        shown_until=result.end,
        interval=result.interval,
        charts_available=True,
        notes=(f"{rebuilt.ticks} ticks of the recorded data through {len(result.policies)} bound policies",),
        rules=tuple(rebuilt.rules),
        markers=tuple(Marker(row.at, _decision_label(row), row.decision) for row in decided),
        decisions=tuple(decided),
        moves=(),
        targets=(),
        manual=(),
        pages=(),
        audit=None,
        generated_at=now,
    )


def _decision_label(row: DecisionRow) -> str:
    return row.decision.replace("_", " ") + (f" ({', '.join(row.policies)})" if row.policies else "")


__all__ = ["backtest_report", "rollout_report"]
