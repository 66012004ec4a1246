"""`--format json`: the report model as one JSON object.

Times are RFC 3339 UTC strings like every other tidegate JSON, except chart points, which
are `{"t": unix seconds, "v": value}` — the shape TidegateCharts.lineChart takes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from controller.report.model import Report, RuleChart
from policies.timestamps import format_timestamp


def render_json(report: Report) -> str:
    return json.dumps(document(report), indent=1, ensure_ascii=False) + "\n"


def document(report: Report) -> dict[str, Any]:
    subject = report.subject
    audit = report.audit
    return {
        "kind": report.kind.value,
        "subject": {
            "title": subject.title,
            "rollout": subject.rollout_id,
            "name": subject.name,
            "version": subject.version,
            "previous_version": subject.previous_version,
            "state": subject.state,
            "traffic": subject.traffic,
            "reason": subject.reason,
        },
        "start": _at(report.start),
        "end": _at(report.end),
        "shown_until": _at(report.shown_until),
        "interval_seconds": report.interval,
        "charts_available": report.charts_available,
        "notes": list(report.notes),
        "rules": [_rule(rule) for rule in report.rules],
        "firings": [
            {
                "policy": f.policy,
                "at": _at(f.at),
                "value": _number(f.value),
                "detail": f.detail,
                "pending_since": _at(f.pending_since),
            }
            for f in report.firings
        ],
        "markers": [{"at": _at(m.at), "label": m.label, "kind": m.kind} for m in report.markers],
        "decisions": [
            {
                "at": _at(d.at),
                "decision": d.decision,
                "policies": list(d.policies),
                "reasons": list(d.reasons),
                "breaching": list(d.breaching),
                "no_data": list(d.no_data),
            }
            for d in report.decisions
        ],
        "transitions": [
            {
                "at": _at(m.at),
                "trigger": m.trigger,
                "from": m.before,
                "to": m.after,
                "traffic": m.traffic,
                "reason": m.reason,
                "actor": m.actor,
            }
            for m in report.moves
        ],
        "targets": [
            {
                "name": lane.name,
                "kind": lane.kind,
                "actions": [
                    {
                        "at": _at(a.at),
                        "told": a.told,
                        "outcome": a.outcome,
                        "detail": a.detail,
                        "finished_at": _at(a.finished_at),
                    }
                    for a in lane.actions
                ],
                "segments": [
                    {"from": _at(s.start), "to": _at(s.end), "label": s.label, "kind": s.kind}
                    for s in lane.segments
                ],
            }
            for lane in report.targets
        ],
        "manual": [
            {"at": _at(m.at), "actor": m.actor, "act": m.act, "reason": m.reason, "result": m.result}
            for m in report.manual
        ],
        "pages": [{"at": _at(p.at), "target": p.target or None, "reason": p.reason} for p in report.pages],
        "audit": None
        if audit is None
        else {
            "ok": audit.ok,
            "rows": audit.rows,
            "rollout_rows": audit.rollout_rows,
            "first_bad": audit.first_bad,
            "reason": audit.reason or None,
        },
        "generated_at": _at(report.generated_at),
    }


def _rule(rule: RuleChart) -> dict[str, Any]:
    return {
        "policy": rule.policy,
        "signal": rule.signal,
        "kind": rule.kind,
        "action": rule.action,
        "sentence": rule.sentence,
        "condition": rule.condition,
        "percent": rule.percent,
        "threshold": _number(rule.threshold),
        "threshold_label": rule.threshold_label,
        "baseline": None
        if rule.baseline is None
        else {"from": _at(rule.baseline.start), "to": _at(rule.baseline.end)},
        "baseline_value": _number(rule.baseline_value),
        "spans": [{"from": _at(s.start), "to": _at(s.end), "kind": s.kind.value} for s in rule.spans],
        "worst": rule.worst,
        "unavailable": rule.unavailable or None,
        "thinned": rule.thinned,
        "points": [{"t": p.t, "v": _number(p.v)} for p in rule.points],
    }


def _at(at: float | None) -> str | None:
    return None if at is None else format_timestamp(at)


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
