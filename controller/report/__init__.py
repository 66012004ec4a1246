"""`tidegate report`: pictures and a timeline of what tidegate saw, decided and did.

    build.py      a stored rollout (store records + its signals re-read and re-evaluated),
                  or a backtest's result, into the Report model (model.py)
    signals.py    reading a stored rollout's data again from its sources
    rebuild.py    the evaluator re-run tick by tick: per-rule values, streaks, firings
    records.py    the store's transitions, journal and audit log as report rows
    html.py       one self-contained page (controller/web/static/ inlined), charts in SVG
    markdown.py   the after-action timeline (UTC) to paste into a postmortem
    jsonout.py    the model as JSON

Renderers only format the model; they decide nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.report.build import backtest_report, rollout_report
from controller.report.html import render_html
from controller.report.jsonout import render_json
from controller.report.markdown import render_markdown
from controller.report.model import Report

RENDERERS: dict[str, Callable[[Report], str]] = {
    "html": render_html,
    "md": render_markdown,
    "json": render_json,
}


def render(report: Report, format_: str) -> str:
    return RENDERERS[format_](report)


__all__ = ["RENDERERS", "Report", "backtest_report", "render", "rollout_report"]
