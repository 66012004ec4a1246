"""The report model as TidegateCharts options (controller/web/static/charts.js).

Ratio signals are drawn in percent (values × 100, unit "%"), so axis labels read `17.09%`
rather than `0.1709`; the model keeps fractions, like the policies do.
"""

from __future__ import annotations

import math
from typing import Any

from controller.report.model import Marker, Report, RuleChart, TargetLane

QUIET_HEIGHT = 160  # px: rules that never went pending get a smaller chart
ACTED_HEIGHT = 230


def chart_options(report: Report, rule: RuleChart) -> dict[str, Any]:
    scale = 100.0 if rule.percent else 1.0
    start = rule.baseline.start if rule.baseline is not None else report.start
    return {
        "series": [{"t": p.t, "v": _scaled(p.v, scale)} for p in rule.points],
        "threshold": _scaled(rule.threshold, scale),
        "thresholdLabel": rule.threshold_label,
        "spans": [{"from": s.start, "to": s.end, "kind": s.kind.value} for s in rule.spans],
        "baseline": None if rule.baseline is None else {"from": rule.baseline.start, "to": rule.baseline.end},
        "markers": markers(report.markers),
        "unit": "%" if rule.percent else ("events" if rule.kind == "count" else ""),
        "title": f"{rule.signal} · {rule.policy}",
        "from": start,
        "to": report.shown_until,
        "height": QUIET_HEIGHT if rule.worst == "quiet" else ACTED_HEIGHT,
        "ended": _ended(report),
    }


def lane_options(report: Report, lanes: tuple[TargetLane, ...]) -> dict[str, Any]:
    return {
        "lanes": [
            {
                "name": lane.name,
                "segments": [
                    {"from": s.start, "to": s.end, "label": s.label, "kind": s.kind} for s in lane.segments
                ],
                "events": [
                    {"t": a.at, "label": f"{a.told} → {a.outcome}", "kind": a.outcome} for a in lane.actions
                ]
                + [
                    {"t": p.at, "label": f"PAGE: {p.reason}", "kind": "page"}
                    for p in report.pages
                    if p.target == lane.name
                ],
            }
            for lane in lanes
        ],
        "markers": markers(report.markers),
        "from": report.start,
        "to": report.shown_until,
        "ended": _ended(report),
    }


def _ended(report: Report) -> float | None:
    """Grey out what the charts show after a finished rollout's last transition."""
    return report.end if report.shown_until > report.end else None


def markers(rows: tuple[Marker, ...]) -> list[dict[str, Any]]:
    return [{"t": m.at, "label": m.label, "kind": m.kind} for m in rows]


def _scaled(value: float | None, scale: float) -> float | None:
    # Rounded: 0.1709 × 100 is 17.089999999999996 in floating point, which no one should read.
    # NaN or infinity would make the page's JSON unreadable: no value, drawn as a gap.
    return None if value is None or not math.isfinite(value) else round(value * scale, 10)
