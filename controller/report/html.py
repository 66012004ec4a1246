"""`--format html`: one self-contained page that opens offline.

Styles and scripts are read from controller/web/static/ and inlined; the chart data travels
in the page as JSON. A Content-Security-Policy forbids every fetch, so the page provably
loads nothing from anywhere. The numbers are also in plain tables, readable without script.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from html import escape
from importlib import resources
from typing import Any

from controller.report import chartdata
from controller.report.model import Report, ReportKind, RuleChart
from controller.report.readable import number, span, utc

STATIC = ("web", "static")
_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
_BAD = ("rolled_back", "rolling_back", "failed", "rollback")
_WARN = ("stepping_down", "paused", "step_down", "hold")


def static(name: str) -> str:
    """A file shipped in controller/web/static (package data)."""
    return (resources.files("controller").joinpath(*STATIC) / name).read_text(encoding="utf-8")


def render_html(report: Report) -> str:
    acted = [r for r in report.rules if r.worst != "quiet" and not r.unavailable]
    quiet = [r for r in report.rules if r.worst == "quiet" and not r.unavailable]
    missing = [r for r in report.rules if r.unavailable]
    drawn = acted + quiet
    data = {
        "charts": [chartdata.chart_options(report, rule) for rule in drawn],
        "lanes": chartdata.lane_options(report, report.targets) if report.targets else None,
    }
    title = escape(report.subject.title)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>tidegate report — {title}</title>",
        f"<style>{static('report.css')}</style></head><body>",
        *_header(report),
        "<main>",
        *_toc(report),
        *_signals(report, acted, quiet, missing),
        *(_targets(report) if report.targets else ()),
        *_decisions(report),
        *(_records(report) if report.kind is ReportKind.ROLLOUT else ()),
        *_method(report),
        "</main>",
        f"<footer>Generated {escape(utc(report.generated_at))} by <code>tidegate report</code>. "
        "All times UTC.</footer>",
        f'<script type="application/json" id="tidegate-report-data">{_json(data)}</script>',
        f"<script>{static('charts.js')}</script>",
        f"<script>{static('report.js')}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _json(data: dict[str, Any]) -> str:
    # `<` escaped: no `</script>` or `<!--` inside the data can end the script element.
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _header(report: Report) -> Iterator[str]:
    subject = report.subject
    tone = "tg-bad" if subject.state in _BAD else "tg-warn" if subject.state in _WARN else ""
    tone = "tg-good" if subject.state in ("promoted", "advance") else tone
    at = f" at {subject.traffic}%" if subject.traffic is not None else ""
    why = f" — {subject.reason}" if subject.reason else ""
    kicker = "tidegate backtest report" if report.kind is ReportKind.BACKTEST else "tidegate rollout report"
    yield f'<header><p class="tg-kicker">{kicker}</p><h1>{escape(subject.title)}</h1>'
    yield f'<div class="tg-outcome {tone}">{escape(subject.state.replace("_", " ") + at + why)}</div>'
    facts = [("Window", f"{utc(report.start)} → {utc(report.end)} ({span(report.start, report.end)})")]
    if report.kind is ReportKind.ROLLOUT:
        facts.insert(0, ("Release", f"{subject.name} {subject.previous_version} → {subject.version}"))
    firings = report.firings
    facts.append(("Decisions", f"{len(report.decisions)} changes · {len(firings)} firings"))
    if report.audit is not None:
        audit = report.audit
        text = f"intact ({audit.rows} rows)" if audit.ok else f"BROKEN at row {audit.first_bad}"
        facts.append(("Audit chain", text))
    yield '<dl class="tg-facts">'
    yield from (f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    yield "</dl></header>"


def _toc(report: Report) -> Iterator[str]:
    links = [("signals", "Signals"), ("targets", "Targets"), ("decisions", "Decisions")]
    if report.kind is ReportKind.ROLLOUT:
        links += [("transitions", "Transitions"), ("manual", "By hand & pages"), ("audit", "Audit")]
    links.append(("method", "How this was made"))
    if not report.targets:
        links = [link for link in links if link[0] != "targets"]
    yield '<nav class="tg-toc">' + "".join(f'<a href="#{a}">{t}</a>' for a, t in links) + "</nav>"


_LEGEND = (
    '<p class="tg-legend"><span class="tg-l-line">value at each tick</span>'
    '<span class="tg-l-threshold">threshold</span><span class="tg-l-pending">pending</span>'
    '<span class="tg-l-breach">breach</span><span class="tg-l-baseline">drift baseline</span>'
    '<span class="tg-l-marker">transition</span></p>'
)


def _signals(
    report: Report, acted: list[RuleChart], quiet: list[RuleChart], missing: list[RuleChart]
) -> Iterator[str]:
    yield '<section id="signals"><h2>Signals</h2>'
    if not report.charts_available:
        yield '<p class="tg-note tg-bad">Charts unavailable: ' + escape("; ".join(report.notes)) + "</p>"
    else:
        yield _LEGEND
    for index, rule in enumerate(acted):
        yield from _figure(report, rule, index)
    if quiet:
        yield f"<h3>Rules that stayed quiet ({len(quiet)})</h3><div class='tg-grid'>"
        for index, rule in enumerate(quiet, start=len(acted)):
            yield from _figure(report, rule, index)
        yield "</div>"
    if missing and report.charts_available:
        yield "<h3>Rules without a chart</h3><ul>"
        yield from (f"<li><b>{escape(r.policy)}</b>: {escape(r.unavailable)}</li>" for r in missing)
        yield "</ul>"
    yield "</section>"


def _figure(report: Report, rule: RuleChart, index: int) -> Iterator[str]:
    badge = f'<span class="tg-badge tg-{rule.worst}">{rule.worst}</span>'
    yield f'<figure class="tg-figure" id="rule-{escape(rule.policy)}"><figcaption>'
    yield f"<h3>{escape(rule.signal)} — {escape(rule.policy)} {badge}</h3>"
    yield f"<p>{escape(rule.sentence)}</p>"
    for firing in (f for f in rule.firings if f.at <= report.end):
        since = f", pending since {utc(firing.pending_since)}" if firing.pending_since != firing.at else ""
        yield (
            f'<p class="tg-fired">Fired {escape(utc(firing.at))}: {escape(firing.detail)}{escape(since)}</p>'
        )
    yield f'</figcaption><div class="tg-chart-box" data-chart="{index}"></div>'
    yield from _values(report, rule)
    yield "</figure>"


def _values(report: Report, rule: RuleChart) -> Iterator[str]:
    """Every drawn point in a table: the numbers without script, and for copying."""
    status = _status_at(rule)
    yield f"<details><summary>Values ({len(rule.points)} points)</summary>"
    if rule.thinned:
        yield "<p>Thinned for drawing: each point is the most alarming value of its stretch.</p>"
    yield from _table(
        ("time (UTC)", "value", "status"),
        ((utc(p.t), number(p.v, rule.percent), status(p.t)) for p in rule.points),
        numeric=(1,),
    )
    yield "</details>"


def _status_at(rule: RuleChart) -> Callable[[float], str]:
    def status(at: float) -> str:
        for streak in rule.spans:
            if streak.start <= at < streak.end:
                return streak.kind.value
        if rule.baseline is not None and rule.baseline.start <= at < rule.baseline.end:
            return "baseline"
        return ""

    return status


def _targets(report: Report) -> Iterator[str]:
    yield '<section id="targets"><h2>Targets</h2>'
    yield "<p>What each target was told (the journal's intents) and what it answered.</p>"
    yield '<div class="tg-lanes-box" data-lanes="1"></div>'
    for lane in report.targets:
        yield f"<details><summary>{escape(lane.name)} ({escape(lane.kind)}): {len(lane.actions)} operations"
        yield "</summary>"
        yield from _table(
            ("time (UTC)", "told", "answered", "detail"),
            (
                (utc(a.at), a.told, _badge(a.outcome), a.detail if a.detail != a.told else "")
                for a in lane.actions
            ),
            raw=(2,),
        )
        yield "</details>"
    yield "</section>"


def _decisions(report: Report) -> Iterator[str]:
    yield '<section id="decisions"><h2>Decisions</h2>'
    yield "<p>Each change of the decision, with the rules that caused it and the values they judged.</p>"
    yield from _table(
        ("time (UTC)", "decision", "because"),
        (
            (utc(d.at), _badge(d.decision), escape("; ".join(d.reasons) or ", ".join(d.policies) or "—"))
            for d in report.decisions
        ),
        raw=(1, 2),
    )
    yield "</section>"


def _records(report: Report) -> Iterator[str]:
    yield '<section id="transitions"><h2>Transitions</h2>'
    yield from _table(
        ("time (UTC)", "trigger", "from → to", "traffic", "by", "reason"),
        (
            (utc(m.at), m.trigger, f"{m.before} → {m.after}", f"{m.traffic}%", m.actor, m.reason)
            for m in report.moves
        ),
        numeric=(3,),
    )
    yield '</section><section id="manual"><h2>By hand &amp; pages</h2><h3>Manual acts</h3>'
    if report.manual:
        yield from _table(
            ("time (UTC)", "who", "what", "why", "result"),
            ((utc(a.at), a.actor, a.act, a.reason, a.result) for a in report.manual),
        )
    else:
        yield "<p>Nothing was done by hand.</p>"
    yield "<h3>Pages</h3>"
    if report.pages:
        yield from _table(
            ("time (UTC)", "target", "reason"), ((utc(p.at), p.target, p.reason) for p in report.pages)
        )
    else:
        yield "<p>No human was paged.</p>"
    yield '</section><section id="audit"><h2>Audit chain</h2>'
    audit = report.audit
    if audit is not None and audit.ok:
        yield (
            f'<p class="tg-note">Intact: the hash chain holds over all {audit.rows} rows of the store '
            f"({audit.rollout_rows} for this rollout). Check again with "
            "<code>tidegate audit verify</code>.</p>"
        )
    elif audit is not None:
        yield (
            f'<p class="tg-note tg-bad">BROKEN at row {audit.first_bad}: {escape(audit.reason)}. '
            "Rows after it cannot be trusted as recorded.</p>"
        )
    yield "</section>"


def _method(report: Report) -> Iterator[str]:
    yield '<section id="method"><h2>How this report was made</h2><ul>'
    yield from (f"<li>{escape(note)}</li>" for note in report.notes)
    yield (
        f"<li>ticks every {escape(span(0, report.interval))} from {escape(utc(report.start))}; "
        "the evaluator that decided live was run again over the same data, tick by tick</li>"
    )
    yield "</ul></section>"


def _badge(text: str) -> str:
    return f'<span class="tg-badge tg-{escape(text)}">{escape(text.replace("_", " "))}</span>'


def _table(
    head: Iterable[str],
    rows: Iterable[Iterable[str]],
    numeric: tuple[int, ...] = (),
    raw: tuple[int, ...] = (),
) -> Iterator[str]:
    """A table inside a scroller (phones); cells escaped unless their column is `raw` HTML."""
    yield '<div class="tg-table"><table><thead><tr>'
    yield "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            css = "tg-time" if index == 0 else "tg-num" if index in numeric else ""
            content = cell if index in raw else escape(cell)
            cells.append(f'<td class="{css}">{content}</td>' if css else f"<td>{content}</td>")
        yield "<tr>" + "".join(cells) + "</tr>"
    yield "</tbody></table></div>"
