"""decide(): rule states at one tick → one decision and the policies that caused it (DESIGN.md)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.decide import Decision, Mitigation, Verdict, decide
from policies.rules.base import RuleState, Status
from policies.schema import Action, Policy, ThresholdPolicy

LADDER = ["notify", "hold", "step_down", "rollback"]


def policy(
    ident: str, action: str = "rollback", on_no_data: str = "hold", targets: tuple[str, ...] = ()
) -> Policy:
    return ThresholdPolicy.model_validate(
        {
            "id": ident,
            "signal": "error_rate",
            "when": "> 0.05",
            "action": action,
            "on_no_data": on_no_data,
            "targets": list(targets),
        }
    )


def state(p: Policy, status: Status) -> RuleState:
    value = None if status is Status.NO_DATA else 0.1
    return RuleState.of(p, status, value, 0.0 if status in (Status.PENDING, Status.BREACH) else None)


def breach(ident: str, action: str = "rollback", targets: tuple[str, ...] = ()) -> RuleState:
    return state(policy(ident, action, targets=targets), Status.BREACH)


def test_nothing_breaching_advances_with_no_cause() -> None:
    states = [state(policy("a"), Status.OK), state(policy("b", "step_down"), Status.PENDING)]
    assert decide(states) == Verdict(Decision.ADVANCE, ())
    assert decide([]) == Verdict(Decision.ADVANCE, ())


def test_pending_never_decides_anything_however_severe() -> None:
    assert decide([state(policy("a", "rollback"), Status.PENDING)]).decision is Decision.ADVANCE


@pytest.mark.parametrize(("lower", "higher"), list(itertools.combinations(LADDER, 2)))
def test_the_more_severe_action_wins_and_only_its_rules_are_causes(lower: str, higher: str) -> None:
    for states in (
        [breach("low", lower), breach("high", higher)],
        [breach("high", higher), breach("low", lower)],
    ):
        assert decide(states) == Verdict(Decision(higher), ("high",))


def test_severity_ladder_is_notify_hold_step_down_rollback() -> None:
    decisions = [Decision.ADVANCE, *(Decision(name) for name in LADDER)]
    assert [d.severity for d in decisions] == sorted({d.severity for d in decisions})
    assert [d for d in decisions if d.lowers_traffic] == [Decision.STEP_DOWN, Decision.ROLLBACK]


def test_ties_list_every_causing_policy_in_pack_order() -> None:
    states = [
        breach("b-rollback"),
        breach("notify-only", "notify"),
        breach("a-rollback"),
        breach("c-rollback"),
    ]
    assert decide(states) == Verdict(Decision.ROLLBACK, ("b-rollback", "a-rollback", "c-rollback"))


def test_on_no_data_hold_is_the_default_and_holds_the_rollout() -> None:
    verdict = decide([state(policy("silent", "rollback"), Status.NO_DATA)])
    assert verdict == Verdict(Decision.HOLD, ("silent",))


def test_on_no_data_hold_outranks_a_breaching_notify() -> None:
    states = [breach("db", "notify"), state(policy("silent", "notify"), Status.NO_DATA)]
    assert decide(states) == Verdict(Decision.HOLD, ("silent",))


def test_on_no_data_ok_ignores_the_missing_value() -> None:
    assert decide([state(policy("quiet", "rollback", "ok"), Status.NO_DATA)]) == Verdict(Decision.ADVANCE, ())


def test_on_no_data_breach_acts_as_the_rule_would() -> None:
    states = [state(policy("fail-closed", "step_down", "breach"), Status.NO_DATA), breach("n", "notify")]
    assert decide(states) == Verdict(Decision.STEP_DOWN, ("fail-closed",))


def test_on_no_data_only_applies_without_data() -> None:
    states = [
        state(policy("a", "rollback", "breach"), Status.OK),
        state(policy("b", "rollback", "hold"), Status.OK),
    ]
    assert decide(states).decision is Decision.ADVANCE


def test_hold_from_a_breach_and_hold_from_missing_data_are_both_causes() -> None:
    states = [breach("hold-rule", "hold"), state(policy("silent", "notify"), Status.NO_DATA)]
    assert decide(states) == Verdict(Decision.HOLD, ("hold-rule", "silent"))


def test_a_target_scoped_rollback_is_a_mitigation_not_a_rollout_decision() -> None:
    banner = breach("beta-banner", "rollback", targets=("banner-flag",))
    verdict = decide([banner, state(policy("error-rate"), Status.OK)])
    assert verdict.decision is Decision.ADVANCE
    assert verdict.policies == ()
    assert verdict.mitigations == (Mitigation("beta-banner", Action.ROLLBACK, ("banner-flag",)),)


def test_mitigations_sit_beside_the_rollout_decision_without_raising_it() -> None:
    states = [
        breach("incident-flag", "rollback", targets=("incident-reporting-flag", "exports")),
        breach("db", "notify"),
        state(policy("queue", "step_down", "breach", targets=("worker",)), Status.NO_DATA),
    ]
    verdict = decide(states)
    assert (verdict.decision, verdict.policies) == (Decision.NOTIFY, ("db",))
    assert verdict.mitigations == (
        Mitigation("incident-flag", Action.ROLLBACK, ("incident-reporting-flag", "exports")),
        Mitigation("queue", Action.STEP_DOWN, ("worker",)),
    )


def test_a_scoped_rule_without_data_holds_only_its_targets() -> None:
    verdict = decide([state(policy("flag", "rollback", targets=("flag",)), Status.NO_DATA)])
    assert verdict == Verdict(Decision.ADVANCE, (), (Mitigation("flag", Action.HOLD, ("flag",)),))


rule_states = st.lists(
    st.tuples(
        st.sampled_from(LADDER),
        st.sampled_from(["hold", "ok", "breach"]),
        st.booleans(),
        st.sampled_from(list(Status)),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(rule_states)
def test_decision_is_the_highest_effective_action_of_unscoped_rules(
    rows: list[tuple[str, str, bool, Status]],
) -> None:
    states = [
        state(policy(f"p{i}", action, on_no_data, ("t",) if scoped else ()), status)
        for i, (action, on_no_data, scoped, status) in enumerate(rows)
    ]

    def asks(action: str, on_no_data: str, status: Status) -> str | None:
        if status is Status.BREACH:
            return action
        if status is Status.NO_DATA:
            return {"hold": "hold", "ok": None, "breach": action}[on_no_data]
        return None

    wanted = {f"p{i}": asks(a, n, s) for i, (a, n, scoped, s) in enumerate(rows) if not scoped}
    levels = [LADDER.index(a) for a in wanted.values() if a is not None]
    verdict = decide(states)
    if not levels:
        assert verdict == Verdict(Decision.ADVANCE, (), verdict.mitigations)
    else:
        top = LADDER[max(levels)]
        assert verdict.decision is Decision(top)
        assert verdict.policies == tuple(ident for ident, a in wanted.items() if a == top)
    unscoped = [s for s in states if not s.policy.targets]
    alone = decide(unscoped)
    assert (alone.decision, alone.policies) == (verdict.decision, verdict.policies)
    scoped_asking = [f"p{i}" for i, (a, n, scoped, s) in enumerate(rows) if scoped and asks(a, n, s)]
    assert [m.policy for m in verdict.mitigations] == scoped_asking
