"""Readable backtest output: one line per rule transition and decision change, in time order."""

from __future__ import annotations

from collections.abc import Iterator

from controller.backtest import BacktestResult, DecisionChange, Transition
from policies.durations import format_duration
from policies.rules.base import Status
from policies.timestamps import format_timestamp

_LABEL = {
    Status.PENDING: "pending",
    Status.BREACH: "BREACH",
    Status.OK: "ok",
    Status.NO_DATA: "no data",
}


def render_timeline(result: BacktestResult, title: str) -> Iterator[str]:
    bound = len(result.policies)
    yield (
        f"backtest of {title}: {bound} policies bound, {len(result.unbound)} unbound; "
        f"{format_timestamp(result.start)} → {format_timestamp(result.end)}, "
        f"every {format_duration(result.interval)} ({result.ticks} ticks)"
    )
    entries: list[tuple[float, int, Transition | DecisionChange]] = [
        (t.at, 0, t) for t in result.transitions if _worth_showing(t)
    ]
    entries += [(d.at, 1, d) for d in result.decisions]
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    for at, _, entry in entries:
        stamp = format_timestamp(at)
        if isinstance(entry, Transition):
            yield f"{stamp}  {_LABEL[entry.after]:<8} {entry.policy:<24} {entry.detail}"
        else:
            verdict = entry.verdict
            causes = f" ({', '.join(verdict.policies)})" if verdict.policies else ""
            yield f"{stamp}  decision {verdict.decision.value.upper()}{causes}"
    yield _summary(result)


def _worth_showing(transition: Transition) -> bool:
    # Going quiet (ok ↔ no data) is noise in a timeline; streaks and recoveries are not.
    quiet = {Status.OK, Status.NO_DATA}
    return not (transition.before in quiet and transition.after in quiet)


def _summary(result: BacktestResult) -> str:
    worst = max((c.verdict.decision for c in result.decisions), key=lambda d: d.severity, default=None)
    firings = len(result.firings)
    outcome = "traffic would have been lowered" if result.lowered_traffic else "no step down or rollback"
    worst_text = worst.value if worst else "none"
    return f"summary: worst decision {worst_text}; {firings} firing(s); {outcome}"
