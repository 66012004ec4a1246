"""One plain sentence per rule: what `tidegate policy explain` prints for reviewers."""

from __future__ import annotations

from policies.durations import describe_duration, format_duration
from policies.schema import (
    Action,
    Comparison,
    CountPolicy,
    Direction,
    DriftPolicy,
    OnNoData,
    Policy,
    PolicyPack,
    ThresholdPolicy,
)

_VERB = {
    Action.ROLLBACK: "roll back",
    Action.STEP_DOWN: "step traffic down",
    Action.HOLD: "hold the rollout",
    Action.NOTIFY: "notify",
}
_WORDS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}
_NO_DATA = {
    OnNoData.HOLD: "without data it holds the rollout",
    OnNoData.OK: "without data it does nothing",
    OnNoData.BREACH: "without data it acts as if breached",
}


def explain_pack(pack: PolicyPack) -> list[str]:
    return [explain(policy) for policy in pack.policies]


def explain(policy: Policy) -> str:
    if isinstance(policy, ThresholdPolicy):
        body = _threshold(policy)
    elif isinstance(policy, CountPolicy):
        body = _count(policy)
    else:
        body = _drift(policy)
    scope = f" on {', '.join(policy.targets)} only" if policy.targets else ""
    return f"{policy.id}: {_VERB[policy.action]}{scope} when {body}; {_NO_DATA[policy.on_no_data]}."


def _sustained(policy: Policy) -> str:
    return f" for {describe_duration(policy.for_)}" if policy.for_ else ""


def _number(value: float, percent: bool) -> str:
    return f"{value * 100:g}%" if percent else f"{value:g}"


def _threshold(policy: ThresholdPolicy) -> str:
    ratio = bool({"window", "min_samples", "confidence"} & policy.model_fields_set)
    text = f"{policy.signal} is {_WORDS[policy.when.op]} {_number(policy.when.value, ratio)}"
    text += _sustained(policy)
    if ratio:
        text += f" (as a ratio: Σnum/Σden over {describe_duration(policy.window)}"
        if policy.confidence is not None:
            side = "upper" if policy.when.op in ("<", "<=") else "lower"
            text += f", judged on its {side} {_confidence(policy.confidence)} confidence bound"
        text += ")"
        if policy.min_samples:
            text += f", once the denominator reaches {policy.min_samples:g}"
    else:
        text += f" (newest sample at most {describe_duration(policy.staleness)} old)"
    return text


def _count(policy: CountPolicy) -> str:
    matched = " with " + ", ".join(f"{k}={v}" for k, v in policy.match.items()) if policy.match else ""
    count: Comparison = policy.count
    return (
        f"the number of {policy.signal}{matched} within {describe_duration(policy.within)} is "
        f"{_WORDS[count.op]} {count.value:g}{_sustained(policy)} (each id counted once)"
    )


def _drift(policy: DriftPolicy) -> str:
    way = {Direction.DOWN: "drops", Direction.UP: "rises", Direction.BOTH: "changes"}[policy.direction]
    more = "at least" if policy.drift.op == ">=" else "more than"
    return (
        f"{policy.signal} over the last {describe_duration(policy.window)} {way} {more} "
        f"{policy.drift.value * 100:g}% against the {describe_duration(policy.baseline.window)} "
        f"before the rollout started{_sustained(policy)}, and the change is significant at "
        f"{_confidence(policy.confidence)} confidence"
    )


def _confidence(level: float) -> str:
    """0.95 → 95%, 0.99999 → 99.999% (`:.0%` rounded the latter to a misleading 100%)."""
    return f"{level * 100:.10g}%"


def condition(policy: Policy) -> str:
    """The rule's condition in short form for timelines: `error_rate > 0.05 for 5m`."""
    if isinstance(policy, ThresholdPolicy):
        text = f"{policy.signal} {policy.when}"
    elif isinstance(policy, CountPolicy):
        matched = ",".join(f"{k}={v}" for k, v in policy.match.items())
        text = f"{policy.signal}{{{matched}}} count {policy.count} within {format_duration(policy.within)}"
    else:
        text = f"{policy.signal} drift {policy.drift.op} {policy.drift.value:.0%} {policy.direction.value}"
    return text + (f" for {format_duration(policy.for_)}" if policy.for_ else "")
