"""`--format md`: the after-action timeline the runbooks ask for, ready for a postmortem.

The runbooks' "After Action" wants a UTC timeline first, then root cause, what helped, and
follow-ups with owners: the timeline and the facts behind it are written here; the rest is
left as headings for people to fill in.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.report.model import Report, ReportKind, RuleChart, SpanKind
from controller.report.readable import change, clock, day, number, span, utc

# Entries at one time: what fired, what recovered, what was decided, then each transition
# followed by its page and its operations (a rollback's "complete" comes after them).
_FIRING, _RECOVERED, _DECISION, _MOVE = range(4)
_Entry = tuple[float, int, int, int, int, str]  # at, group, transition seq, within it, order, text


def render_markdown(report: Report) -> str:
    return "\n".join(_document(report)) + "\n"


def _document(report: Report) -> Iterator[str]:
    subject = report.subject
    heading = "Backtest timeline" if report.kind is ReportKind.BACKTEST else "After-action timeline"
    yield f"# {heading}: {_cell(subject.title)}"
    yield ""
    yield from _summary(report)
    yield ""
    yield "## Timeline (UTC)"
    yield ""
    one_day = day(report.start) == day(report.end)
    if one_day:
        yield f"All times on {day(report.start)}, UTC."
        yield ""
    yield "| time (UTC) | what happened |"
    yield "|---|---|"
    for entry in sorted(_entries(report)):
        yield f"| {clock(entry[0]) if one_day else utc(entry[0])} | {_cell(entry[-1])} |"
    yield ""
    yield from _fired(report)
    if report.targets:
        yield from _targets(report)
    if report.kind is ReportKind.ROLLOUT:
        yield from _by_hand(report)
    yield "## How this timeline was made"
    yield ""
    for note in report.notes:
        yield f"- {note}"
    yield f"- generated {utc(report.generated_at)} by `tidegate report`"
    yield ""
    if report.kind is ReportKind.ROLLOUT:
        yield "## For the review (to be written by people)"
        yield ""
        yield "- Root cause:"
        yield "- What helped / what didn't:"
        yield "- Follow-ups (owner, due date):"
        yield "- Tests, monitoring or docs to update:"


def _summary(report: Report) -> Iterator[str]:
    subject = report.subject
    at = f" at {subject.traffic}%" if subject.traffic is not None else ""
    why = f" — {subject.reason}" if subject.reason else ""
    if report.kind is ReportKind.ROLLOUT:
        yield f"- Release: {subject.name} {subject.previous_version} → {subject.version}"
    yield f"- Outcome: **{subject.state}{at}**{_cell(why)}"
    yield f"- Window: {utc(report.start)} → {utc(report.end)} ({span(report.start, report.end)})"
    if report.audit is not None:
        audit = report.audit
        state = "intact" if audit.ok else f"BROKEN at row {audit.first_bad}: {audit.reason}"
        yield (
            f"- Audit chain: {state} ({audit.rows} rows in the store, {audit.rollout_rows} for this "
            "rollout; `tidegate audit verify`)"
        )
    if not report.charts_available:
        yield "- Signal values: unavailable — " + "; ".join(report.notes)


def _entries(report: Report) -> Iterator[_Entry]:
    for rule in report.rules:
        yield from _rule_entries(rule, report.end)
    for index, row in enumerate(report.decisions):
        causes = "; ".join(row.reasons) or ", ".join(row.policies)
        text = f"decision **{row.decision}**" + (f" — {causes}" if causes else "")
        yield row.at, _DECISION, 0, 0, index, text
    for move in report.moves:
        why = f" — {move.reason}" if move.reason else ""
        moved = f"{move.before} → {move.after} at {move.traffic}%"
        text = f"{moved} ({move.trigger}){why}"
        if move.actor != "tidegate":  # who did what by hand, and why, in their words
            text = f"**by hand, {move.actor}**: {move.trigger}, {moved} — “{move.reason}”"
        yield move.at, _MOVE, move.seq, 0, 0, text
    for index, page in enumerate(report.pages):
        target = f"{page.target}: " if page.target else ""
        yield page.at, _MOVE, _seq_at(report, page.at), 1, index, f"**PAGE** a human: {target}{page.reason}"
    for order, lane in enumerate(report.targets):
        for action in lane.actions:
            detail = f" ({action.detail})" if action.detail and action.detail != action.told else ""
            text = f"{lane.name} told {action.told} → {action.outcome}{detail}"
            yield action.at, _MOVE, action.seq, 2, order, text


def _seq_at(report: Report, at: float) -> int:
    """The transition a page came with: the last one at or before it whose plan could page."""
    moves = [m for m in report.moves if m.at <= at and m.trigger != "complete"]
    return moves[-1].seq if moves else 0


def _rule_entries(rule: RuleChart, end: float) -> Iterator[_Entry]:
    for firing in rule.firings:
        if firing.at > end:
            continue
        since = f"; pending since {clock(firing.pending_since)}" if firing.pending_since != firing.at else ""
        value = _value(rule, firing.value)
        text = f"**{rule.policy} fired**: {value} — {firing.detail} (rule: {rule.condition}{since})"
        yield firing.at, _FIRING, 0, 0, 0, text
    for streak in rule.spans:
        if streak.kind is SpanKind.BREACH and streak.end <= end and rule.action != "notify":
            yield streak.end, _RECOVERED, 0, 0, 0, f"{rule.policy} no longer breaches"


def _value(rule: RuleChart, value: float | None) -> str:
    if rule.kind == "drift":
        return change(value)
    return number(value, rule.percent)


def _fired(report: Report) -> Iterator[str]:
    yield "## What fired"
    yield ""
    firings = [(f, rule) for rule in report.rules for f in rule.firings if f.at <= report.end]
    if not report.charts_available:
        yield "Values unavailable: the signals could not be read again (see the notes below)."
        yield ""
        return
    if not firings:
        yield "No rule breached."
        yield ""
        return
    yield "| fired at (UTC) | rule | value | evidence | condition | pending since | action |"
    yield "|---|---|---|---|---|---|---|"
    for firing, rule in sorted(firings, key=lambda pair: pair[0].at):
        cells = [
            utc(firing.at),
            rule.policy,
            _value(rule, firing.value),
            firing.detail,
            rule.condition,
            utc(firing.pending_since),
            rule.action,
        ]
        yield "| " + " | ".join(_cell(c) for c in cells) + " |"
    yield ""


def _targets(report: Report) -> Iterator[str]:
    yield "## What each target was told"
    yield ""
    for lane in report.targets:
        yield f"### {lane.name} ({lane.kind})"
        yield ""
        if not lane.actions:
            yield "Never told anything."
            yield ""
            continue
        yield "| time (UTC) | told | answered | detail |"
        yield "|---|---|---|---|"
        for action in lane.actions:
            detail = action.detail if action.detail != action.told else ""
            yield f"| {utc(action.at)} | {action.told} | {action.outcome} | {_cell(detail)} |"
        yield ""


def _by_hand(report: Report) -> Iterator[str]:
    yield "## Done by hand"
    yield ""
    if not report.manual:
        yield "Nothing was done by hand."
    else:
        yield "| time (UTC) | who | what | why | result |"
        yield "|---|---|---|---|---|"
        for act in report.manual:
            cells = [utc(act.at), act.actor, act.act, act.reason, act.result]
            yield "| " + " | ".join(_cell(c) for c in cells) + " |"
    yield ""
    yield "## Pages"
    yield ""
    if not report.pages:
        yield "No human was paged."
    for page in report.pages:
        target = f"{page.target}: " if page.target else ""
        yield f"- {utc(page.at)} — {_cell(target + page.reason)}"
    yield ""


def _cell(text: str) -> str:
    """Table-safe: a pipe would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")
