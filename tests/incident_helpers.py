"""Shared by the incident source and webhook tests: count events through the real Evaluator."""

from __future__ import annotations

from collections.abc import Iterable

from policies.evaluator import Evaluator
from policies.schema import CountPolicy
from policies.series import Event


def count_rule(signal: str = "incidents", match: dict[str, str] | None = None) -> CountPolicy:
    return CountPolicy.model_validate(
        {
            "id": "incident-storm",
            "signal": signal,
            "count": ">= 2",
            "within": "1h",
            "match": {"severity": "high"} if match is None else match,
            "action": "rollback",
        }
    )


def counted(events: Iterable[Event], at: float, policy: CountPolicy | None = None) -> float | None:
    """What the count rule reads at `at` after every event was fed (in order, repeats included)."""
    rule = policy or count_rule()
    evaluator = Evaluator([rule], start=at - 7200, kinds={})
    for event in events:
        evaluator.observe_event(event)
    (state,) = evaluator.tick(at)
    return state.value
