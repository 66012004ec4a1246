"""The words of a message: event details turned into the short phrases templates insert.

Kept apart from `messages` (which decides *which* message an event makes) so that the
phrasing can change without touching that logic, and so each phrase has one definition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from controller.store.base import JsonValue

DONE = ("applied", "already_done")


def utc_time(at: float) -> str:
    """`15:04 UTC`: comms give the time of day in UTC (runbook: timeline in UTC)."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%H:%M UTC")


def symptom(
    policies: Sequence[str], values: Mapping[str, JsonValue], conditions: Mapping[str, JsonValue]
) -> str:
    """`latency-p95 (latency_p95 > 20 for 10m, now 26.69)`; several joined by `; `."""
    parts = []
    for policy in policies:
        value = values.get(policy)
        said = [str(conditions[policy])] if policy in conditions else []
        if isinstance(value, int | float) and not isinstance(value, bool):
            said.append(f"now {value:.4g}")
        parts.append(f"{policy} ({', '.join(said)})" if said else policy)
    return "; ".join(parts)


def doing(move: Mapping[str, JsonValue]) -> str:
    """What a transition does, as the object of "Mitigating by …"."""
    trigger, to = move.get("trigger"), move.get("to")
    traffic, before = move.get("traffic"), move.get("previous_traffic")
    if trigger == "step_down" and to == "stepping_down":
        return f"stepping traffic down from {before}% to {traffic}%"
    if to == "rolling_back":
        return "rolling back to the previous version"
    if trigger == "pause":
        return f"pausing the rollout at {traffic}%"
    if to == "promoted":
        return "promoting to 100%"
    if trigger == "resume":
        return f"resuming at {traffic}%"
    if trigger in ("start", "advance"):
        return f"moving traffic from {before}% to {traffic}%"
    if not move:
        return "finishing an operation journaled before a restart"
    return f"moving to {to} at {traffic}%"


def operation_results(answers: Sequence[Mapping[str, JsonValue]]) -> str:
    """`checkout-flag: set_traffic(50%) → applied; ios-app: pause → failed (…)`."""
    if not answers:
        return "no target to change"
    parts = []
    for answer in answers:
        said = f"{answer.get('target')}: {answer.get('operation')} → {answer.get('outcome')}"
        detail = answer.get("detail")
        if answer.get("outcome") not in DONE and detail:
            said += f" ({detail})"
        parts.append(said)
    return "; ".join(parts)


def outcome(answers: Sequence[Mapping[str, JsonValue]]) -> str:
    """`all 4 targets done` or `3 of 4 targets done; failed: backend`."""
    if not answers:
        return "nothing to do"
    failed = [str(a.get("target")) for a in answers if a.get("outcome") not in DONE]
    total = len(answers)
    if not failed:
        return f"all {total} targets done" if total > 1 else "done"
    return f"{total - len(failed)} of {total} targets done; failed: {', '.join(failed)}"
