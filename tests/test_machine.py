"""The rollout state machine, one table test per transition and guard (docs/rollouts.md "States").

Pure: a status, a verdict, the rollout's step ladders and the time go in; a Move (or None)
comes out. The shape is the docs' example: 10 → 50 → 100 forward, → 50 → 10 down.
"""

from __future__ import annotations

import pytest

from controller.core.decide import Decision, Verdict
from controller.core.machine import (
    MANUAL_TRIGGERS,
    NotAllowed,
    Shape,
    act,
    allowed_acts,
    complete,
    fail,
    react,
)
from controller.core.model import RolloutStatus, State, Step
from controller.core.plan import Intent

MINUTE = 60.0
SHAPE = Shape(
    steps=(Step(10, 10 * MINUTE), Step(50, 10 * MINUTE), Step(100, 120 * MINUTE)),
    down_steps=(Step(50, 30 * MINUTE), Step(10, 30 * MINUTE)),
)
LIVE = [s for s in State if not s.terminal]
TERMINAL = [State.ROLLED_BACK, State.PROMOTED]


def status(state: State, traffic: int = 0, step: int = 0, since: float = 0.0, seq: int = 7) -> RolloutStatus:
    return RolloutStatus(state, traffic, step, since, seq=seq, reason="before")


def verdict(decision: Decision, *policies: str) -> Verdict:
    return Verdict(decision, policies)


HEALTHY = verdict(Decision.ADVANCE)
STEP_DOWN = verdict(Decision.STEP_DOWN, "latency-p95")
ROLLBACK = verdict(Decision.ROLLBACK, "error-rate")


# --- start and advance ------------------------------------------------------------------


@pytest.mark.parametrize("decision", [Decision.ADVANCE, Decision.NOTIFY])
def test_start_enters_the_first_forward_step(decision: Decision) -> None:
    move = react(status(State.PENDING), verdict(decision), SHAPE, now=100.0)
    assert move is not None
    assert move.trigger == "start"
    assert (move.after.state, move.after.traffic, move.after.step) == (State.PROGRESSING, 10, 0)
    assert move.after.since == 100.0  # the bake of step 0 starts now
    assert move.after.seq == 8
    assert move.intent is Intent.ADVANCE


@pytest.mark.parametrize("state", [State.PENDING, State.PROGRESSING, State.STEPPING_DOWN, State.PAUSED])
def test_hold_moves_nothing(state: State) -> None:
    assert react(status(state, 50, 1), verdict(Decision.HOLD, "no-data"), SHAPE, now=1e6) is None


def test_advance_waits_for_the_bake() -> None:
    at_10 = status(State.PROGRESSING, 10, 0, since=1000.0)
    assert react(at_10, HEALTHY, SHAPE, now=1000.0 + 10 * MINUTE - 1) is None


def test_advance_after_the_bake_enters_the_next_step() -> None:
    at_10 = status(State.PROGRESSING, 10, 0, since=1000.0)
    move = react(at_10, HEALTHY, SHAPE, now=1000.0 + 10 * MINUTE)  # exactly the bake: done
    assert move is not None
    assert move.trigger == "advance"
    assert (move.after.state, move.after.traffic, move.after.step) == (State.PROGRESSING, 50, 1)
    assert move.after.since == 1000.0 + 10 * MINUTE
    assert move.intent is Intent.ADVANCE


def test_notify_advances_like_healthy() -> None:
    move = react(status(State.PROGRESSING, 10, 0), verdict(Decision.NOTIFY, "db"), SHAPE, now=1e6)
    assert move is not None
    assert move.after.traffic == 50
    assert move.after.reason == "notify: db"


def test_the_last_step_promotes_after_its_bake() -> None:
    at_100 = status(State.PROGRESSING, 100, 2, since=0.0)
    assert react(at_100, HEALTHY, SHAPE, now=120 * MINUTE - 1) is None
    move = react(at_100, HEALTHY, SHAPE, now=120 * MINUTE)
    assert move is not None
    assert move.trigger == "advance"
    assert (move.after.state, move.after.traffic) == (State.PROMOTED, 100)
    assert move.intent is Intent.PROMOTE


def test_promotion_means_full_traffic_even_when_the_last_step_is_lower() -> None:
    shape = Shape((Step(5, 0), Step(25, 0)), ())
    move = react(status(State.PROGRESSING, 25, 1), HEALTHY, shape, now=0.0)
    assert move is not None
    assert (move.after.state, move.after.traffic) == (State.PROMOTED, 100)


def test_healthy_reason_when_no_policy_is_named() -> None:
    move = react(status(State.PENDING), HEALTHY, SHAPE, now=0.0)
    assert move is not None
    assert move.after.reason == "healthy"


# --- step down -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "traffic", "expected"),
    [
        ((50, 10), 100, 50),
        ((50, 10), 50, 10),  # not the step it is already at
        ((50, 10), 30, 10),
        ((80, 30, 5), 50, 30),  # the highest below, not the first listed
        ((80, 30, 5), 100, 80),
        ((80, 30, 5), 6, 5),
    ],
)
def test_step_down_picks_the_highest_down_step_below_current_traffic(
    down: tuple[int, ...], traffic: int, expected: int
) -> None:
    shape = Shape(SHAPE.steps, tuple(Step(t, 60.0) for t in down))
    move = react(status(State.PROGRESSING, traffic, 2), STEP_DOWN, shape, now=5.0)
    assert move is not None
    assert move.trigger == "step_down"
    assert (move.after.state, move.after.traffic) == (State.STEPPING_DOWN, expected)
    assert shape.down_steps[move.after.step].traffic == expected
    assert move.after.since == 5.0
    assert move.intent is Intent.STEP_DOWN
    assert move.after.reason == "step_down: latency-p95"


@pytest.mark.parametrize(
    ("shape", "traffic"),
    [
        (SHAPE, 10),  # at the lowest down step already
        (SHAPE, 5),  # under it
        (Shape(SHAPE.steps, ()), 100),  # no down steps at all
    ],
)
def test_step_down_with_no_lower_step_rolls_back(shape: Shape, traffic: int) -> None:
    move = react(status(State.PROGRESSING, traffic, 0), STEP_DOWN, shape, now=0.0)
    assert move is not None
    assert move.trigger == "step_down"
    assert (move.after.state, move.after.traffic) == (State.ROLLING_BACK, 0)
    assert move.intent is Intent.ROLLBACK


def test_step_down_before_the_rollout_started_rolls_back() -> None:
    move = react(status(State.PENDING), STEP_DOWN, SHAPE, now=0.0)
    assert move is not None
    assert move.after.state is State.ROLLING_BACK


def test_stepping_down_waits_for_the_down_steps_bake() -> None:
    at_50 = status(State.STEPPING_DOWN, 50, 0, since=1000.0)
    assert react(at_50, STEP_DOWN, SHAPE, now=1000.0 + 30 * MINUTE - 1) is None
    move = react(at_50, STEP_DOWN, SHAPE, now=1000.0 + 30 * MINUTE)
    assert move is not None
    assert (move.after.state, move.after.traffic, move.after.step) == (State.STEPPING_DOWN, 10, 1)


def test_still_degraded_at_the_lowest_down_step_rolls_back_after_its_bake() -> None:
    at_10 = status(State.STEPPING_DOWN, 10, 1, since=0.0)
    assert react(at_10, STEP_DOWN, SHAPE, now=30 * MINUTE - 1) is None
    move = react(at_10, STEP_DOWN, SHAPE, now=30 * MINUTE)
    assert move is not None
    assert (move.after.state, move.intent) == (State.ROLLING_BACK, Intent.ROLLBACK)


def test_a_rollback_breach_does_not_wait_for_the_down_steps_bake() -> None:
    move = react(status(State.STEPPING_DOWN, 50, 0, since=0.0), ROLLBACK, SHAPE, now=1.0)
    assert move is not None
    assert move.trigger == "rollback"
    assert (move.after.state, move.after.traffic) == (State.ROLLING_BACK, 0)
    assert move.after.reason == "rollback: error-rate"


def test_step_down_while_paused_still_lowers_traffic_without_waiting() -> None:
    move = react(status(State.PAUSED, 50, 0, since=0.0), STEP_DOWN, SHAPE, now=0.0)
    assert move is not None
    assert (move.after.state, move.after.traffic) == (State.STEPPING_DOWN, 10)


# --- recover, pause, resume -------------------------------------------------------------


def test_recovered_while_stepping_down_pauses_after_the_bake() -> None:
    at_50 = status(State.STEPPING_DOWN, 50, 0, since=0.0)
    assert react(at_50, HEALTHY, SHAPE, now=30 * MINUTE - 1) is None
    move = react(at_50, HEALTHY, SHAPE, now=30 * MINUTE)
    assert move is not None
    assert move.trigger == "recover"
    assert (move.after.state, move.after.traffic) == (State.PAUSED, 50)
    assert move.intent is None  # holding where it is touches no target


def test_paused_waits_for_a_human_when_healthy() -> None:
    assert react(status(State.PAUSED, 50, 0), HEALTHY, SHAPE, now=1e9) is None


@pytest.mark.parametrize(
    ("traffic", "step", "traffic_after"),
    [(50, 1, 50), (100, 2, 100), (10, 0, 10), (30, 0, 10), (75, 1, 50), (0, 0, 10)],
)
def test_resume_returns_to_the_highest_forward_step_not_above_current_traffic(
    traffic: int, step: int, traffic_after: int
) -> None:
    move = act(status(State.PAUSED, traffic, 1), "resume", SHAPE, now=42.0, reason="looks fine")
    assert move.trigger == "resume"
    assert (move.after.state, move.after.step, move.after.traffic) == (State.PROGRESSING, step, traffic_after)
    assert move.after.since == 42.0  # the bake starts again
    assert move.after.reason == "looks fine"
    assert move.intent is Intent.RESUME


@pytest.mark.parametrize("state", [State.PENDING, State.PROGRESSING, State.STEPPING_DOWN])
def test_manual_pause_holds_the_traffic(state: State) -> None:
    move = act(status(state, 50, 1), "pause", SHAPE, now=0.0, reason="investigating")
    assert (move.after.state, move.after.traffic) == (State.PAUSED, 50)
    assert move.intent is Intent.PAUSE


# --- manual promote and rollback --------------------------------------------------------


@pytest.mark.parametrize(
    "state", [State.PENDING, State.PROGRESSING, State.PAUSED, State.STEPPING_DOWN, State.FAILED]
)
def test_manual_promote(state: State) -> None:
    move = act(status(state, 10, 0), "promote", SHAPE, now=0.0, reason="known false alarm")
    assert (move.after.state, move.after.traffic, move.after.step) == (State.PROMOTED, 100, 2)
    assert move.intent is Intent.PROMOTE


@pytest.mark.parametrize("state", LIVE)
def test_manual_rollback_from_every_non_terminal_state(state: State) -> None:
    move = act(status(state, 50, 1), "rollback", SHAPE, now=0.0, reason="customer reports")
    assert (move.after.state, move.after.traffic) == (State.ROLLING_BACK, 0)
    assert move.after.seq == 8
    assert move.after.reason == "customer reports"
    assert move.intent is Intent.ROLLBACK


def test_complete_finishes_a_rollback() -> None:
    move = complete(status(State.ROLLING_BACK), now=5.0)
    assert move is not None
    assert (move.after.state, move.intent) == (State.ROLLED_BACK, None)


@pytest.mark.parametrize("state", [s for s in State if s is not State.ROLLING_BACK])
def test_complete_only_from_rolling_back(state: State) -> None:
    assert complete(status(state, 50, 1), now=5.0) is None


@pytest.mark.parametrize("state", LIVE)
def test_fail_from_every_non_terminal_state_keeps_the_traffic(state: State) -> None:
    move = fail(status(state, 50, 1), now=5.0, reason="actuation failed: web: timeout")
    assert move is not None
    assert (move.after.state, move.after.traffic, move.intent) == (State.FAILED, 50, None)
    assert move.after.reason == "actuation failed: web: timeout"


@pytest.mark.parametrize("state", [State.ROLLING_BACK, State.FAILED])
@pytest.mark.parametrize("decision", list(Decision))
def test_rolling_back_and_failed_do_not_react(state: State, decision: Decision) -> None:
    assert react(status(state, 50, 1), verdict(decision, "x"), SHAPE, now=1e9) is None


# --- terminal states and NotAllowed -----------------------------------------------------


@pytest.mark.parametrize("state", TERMINAL)
def test_nothing_leaves_a_terminal_state(state: State) -> None:
    done = status(state, 100 if state is State.PROMOTED else 0, 0)
    for decision in Decision:
        assert react(done, verdict(decision, "x"), SHAPE, now=1e9) is None
    assert complete(done, now=1e9) is None
    assert fail(done, now=1e9, reason="x") is None
    for trigger in ("rollback", "pause", "resume", "promote"):
        with pytest.raises(NotAllowed, match=f"cannot {trigger} a rollout that is {state.value}"):
            act(done, trigger, SHAPE, now=1e9, reason="x")


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (State.PROGRESSING, "resume"),
        (State.PENDING, "resume"),
        (State.STEPPING_DOWN, "resume"),
        (State.FAILED, "resume"),
        (State.PAUSED, "pause"),
        (State.FAILED, "pause"),
        (State.ROLLING_BACK, "pause"),
        (State.ROLLING_BACK, "promote"),
    ],
)
def test_manual_acts_the_state_does_not_allow(state: State, trigger: str) -> None:
    with pytest.raises(NotAllowed) as raised:
        act(status(state, 50, 1), trigger, SHAPE, now=0.0, reason="x")
    assert str(raised.value) == f"cannot {trigger} a rollout that is {state.value}"


@pytest.mark.parametrize("trigger", ["advance", "start", "step_down", "complete", "fail", "recover", "jump"])
def test_only_the_four_manual_acts_are_accepted(trigger: str) -> None:
    with pytest.raises(NotAllowed) as raised:
        act(status(State.PROGRESSING, 10, 0), trigger, SHAPE, now=1e9, reason="x")
    assert str(raised.value) == f"unknown manual act {trigger!r}"


@pytest.mark.parametrize("state", list(State))
def test_allowed_acts_are_exactly_the_acts_that_succeed(state: State) -> None:
    def succeeds(trigger: str) -> bool:
        try:
            act(status(state, 50, 1), trigger, SHAPE, now=0.0, reason="x")
        except NotAllowed:
            return False
        return True

    allowed = allowed_acts(state)
    assert allowed == [trigger for trigger in MANUAL_TRIGGERS if succeeds(trigger)]
    assert ("rollback" in allowed) is not state.terminal
