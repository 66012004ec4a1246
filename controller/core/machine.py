"""The rollout state machine (DESIGN.md "Rollout state machine"), declared as data.

States and transitions live in one table below; guards are named pure predicates; the
machine is rebuilt from the persisted state each time (`initial=`), never auto-transitions,
and queues triggers. A transition does not call anything: it returns a `Move` — the new
status and the `Intent` the planner turns into operations — and the runtime journals it
before acting (STYLE.md §5).

Automatic reactions (`react`) map a decision onto triggers:
- rollback → `rollback` from any non-terminal state;
- step_down → `step_down`: to the next lower down step, or a full rollback when there is
  none; while stepping down it waits for the current down step's bake first;
- advance/notify → `start` (pending), `advance` after the bake (progressing; the last step
  promotes), `recover` after the bake (stepping down: hold for a human, `paused`);
- hold → nothing.
Manual acts (`act`): rollback from every non-terminal state, pause, resume, promote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transitions import Machine, MachineError

from controller.core.decide import Decision, Verdict
from controller.core.model import RolloutStatus, State, Step
from controller.core.plan import Intent
from policies.errors import TidegateError

S = State
_LIVE = [s.value for s in State if not s.terminal]  # every non-terminal state

TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "start",
        "source": S.PENDING.value,
        "dest": S.PROGRESSING.value,
        "after": "_enter_first_step",
    },
    {
        "trigger": "advance",
        "source": S.PROGRESSING.value,
        "dest": S.PROGRESSING.value,
        "conditions": ["bake_done", "has_next_step"],
        "after": "_enter_next_step",
    },
    {
        "trigger": "advance",
        "source": S.PROGRESSING.value,
        "dest": S.PROMOTED.value,
        "conditions": ["bake_done"],
        "unless": ["has_next_step"],
        "after": "_enter_promoted",
    },
    {
        "trigger": "step_down",
        "source": [S.PROGRESSING.value, S.PAUSED.value, S.PENDING.value],
        "dest": S.STEPPING_DOWN.value,
        "conditions": ["has_lower_step"],
        "after": "_enter_lower_step",
    },
    {
        "trigger": "step_down",
        "source": S.STEPPING_DOWN.value,
        "dest": S.STEPPING_DOWN.value,
        "conditions": ["bake_done", "has_lower_step"],
        "after": "_enter_lower_step",
    },
    {
        "trigger": "step_down",
        "source": [S.PROGRESSING.value, S.PAUSED.value, S.PENDING.value],
        "dest": S.ROLLING_BACK.value,
        "unless": ["has_lower_step"],
        "after": "_enter_rolling_back",
    },
    {
        "trigger": "step_down",
        "source": S.STEPPING_DOWN.value,
        "dest": S.ROLLING_BACK.value,
        "conditions": ["bake_done"],
        "unless": ["has_lower_step"],
        "after": "_enter_rolling_back",
    },
    {
        "trigger": "recover",
        "source": S.STEPPING_DOWN.value,
        "dest": S.PAUSED.value,
        "conditions": ["bake_done"],
        "after": "_enter_recovered",
    },
    {"trigger": "rollback", "source": _LIVE, "dest": S.ROLLING_BACK.value, "after": "_enter_rolling_back"},
    {
        "trigger": "pause",
        "source": [S.PENDING.value, S.PROGRESSING.value, S.STEPPING_DOWN.value],
        "dest": S.PAUSED.value,
        "after": "_enter_paused",
    },
    {"trigger": "resume", "source": S.PAUSED.value, "dest": S.PROGRESSING.value, "after": "_enter_resumed"},
    {
        "trigger": "promote",
        "source": [
            S.PENDING.value,
            S.PROGRESSING.value,
            S.PAUSED.value,
            S.STEPPING_DOWN.value,
            S.FAILED.value,
        ],
        "dest": S.PROMOTED.value,
        "after": "_enter_promoted",
    },
    {
        "trigger": "complete",
        "source": S.ROLLING_BACK.value,
        "dest": S.ROLLED_BACK.value,
        "after": "_enter_done",
    },
    {"trigger": "fail", "source": _LIVE, "dest": S.FAILED.value, "after": "_enter_failed"},
]

MANUAL_TRIGGERS = ("rollback", "pause", "resume", "promote")
_MANUAL_SOURCES: dict[str, frozenset[str]] = {
    trigger: frozenset(
        source
        for t in TRANSITIONS
        if t["trigger"] == trigger
        for source in ([t["source"]] if isinstance(t["source"], str) else t["source"])
    )
    for trigger in MANUAL_TRIGGERS
}


class NotAllowed(TidegateError):
    """A manual act that the rollout's current state does not allow."""


@dataclass(frozen=True)
class Shape:
    """The rollout's step ladders: forward (10→50→100) and down (→50→10)."""

    steps: tuple[Step, ...]
    down_steps: tuple[Step, ...]


@dataclass(frozen=True)
class Move:
    trigger: str
    before: RolloutStatus
    after: RolloutStatus
    intent: Intent | None  # what the targets must do; None when nothing is actuated


class _Rollout:
    """The `transitions` model for one reaction: current status in, landing status out."""

    def __init__(self, status: RolloutStatus, shape: Shape, now: float, reason: str) -> None:
        self.status, self.shape, self.now, self.reason = status, shape, now, reason
        self.landing: RolloutStatus | None = None
        self.intent: Intent | None = None

    # --- guards: pure predicates on (status, shape, now) ---------------------------------

    def bake_done(self, _event: object = None) -> bool:
        status = self.status
        ladder = self.shape.down_steps if status.state is State.STEPPING_DOWN else self.shape.steps
        bake = ladder[status.step].bake if 0 <= status.step < len(ladder) else 0.0
        return self.now - status.since >= bake

    def has_next_step(self, _event: object = None) -> bool:
        return self.status.step + 1 < len(self.shape.steps)

    def has_lower_step(self, _event: object = None) -> bool:
        return _lower_step(self.shape, self.status.traffic) is not None

    # --- landings: the status each transition arrives at -------------------------------

    def _land(self, state: State, traffic: int, step: int, intent: Intent | None) -> None:
        self.landing = self.status.moved(
            state, traffic=traffic, step=step, since=self.now, reason=self.reason
        )
        self.intent = intent

    def _enter_first_step(self, _event: object = None) -> None:
        self._land(State.PROGRESSING, self.shape.steps[0].traffic, 0, Intent.ADVANCE)

    def _enter_next_step(self, _event: object = None) -> None:
        step = self.status.step + 1
        self._land(State.PROGRESSING, self.shape.steps[step].traffic, step, Intent.ADVANCE)

    def _enter_promoted(self, _event: object = None) -> None:
        self._land(State.PROMOTED, 100, len(self.shape.steps) - 1, Intent.PROMOTE)

    def _enter_lower_step(self, _event: object = None) -> None:
        index = _lower_step(self.shape, self.status.traffic)
        assert index is not None
        self._land(State.STEPPING_DOWN, self.shape.down_steps[index].traffic, index, Intent.STEP_DOWN)

    def _enter_rolling_back(self, _event: object = None) -> None:
        self._land(State.ROLLING_BACK, 0, 0, Intent.ROLLBACK)

    def _enter_paused(self, _event: object = None) -> None:
        self._land(State.PAUSED, self.status.traffic, self.status.step, Intent.PAUSE)

    def _enter_recovered(self, _event: object = None) -> None:
        # Recovered while stepping down: hold where we are for a human, touching no target.
        # (A person's `pause` from stepping_down does pause the targets: see _enter_paused.)
        self._land(State.PAUSED, self.status.traffic, self.status.step, None)

    def _enter_resumed(self, _event: object = None) -> None:
        step = _resume_step(self.shape, self.status.traffic)
        self._land(State.PROGRESSING, self.shape.steps[step].traffic, step, Intent.RESUME)

    def _enter_done(self, _event: object = None) -> None:
        self._land(State.ROLLED_BACK, 0, 0, None)

    def _enter_failed(self, _event: object = None) -> None:
        self._land(State.FAILED, self.status.traffic, self.status.step, None)


def _lower_step(shape: Shape, traffic: int) -> int | None:
    """Index of the highest down step below `traffic`, None at (or under) the lowest."""
    lower = [(step.traffic, index) for index, step in enumerate(shape.down_steps) if step.traffic < traffic]
    return max(lower)[1] if lower else None


def _resume_step(shape: Shape, traffic: int) -> int:
    """Resume at the highest forward step not above the current traffic (never jump up)."""
    fitting = [index for index, step in enumerate(shape.steps) if step.traffic <= traffic]
    return max(fitting) if fitting else 0


def _fire(status: RolloutStatus, shape: Shape, now: float, trigger: str, reason: str) -> Move | None:
    if status.state.terminal:
        return None
    model = _Rollout(status, shape, now, reason)
    Machine(
        model=model,
        states=[s.value for s in State],
        transitions=TRANSITIONS,
        initial=status.state.value,
        auto_transitions=False,
        queued=True,
        ignore_invalid_triggers=True,
    )
    model.trigger(trigger)  # type: ignore[attr-defined]
    if model.landing is None:
        return None
    return Move(trigger, status, model.landing, model.intent)


def react(status: RolloutStatus, verdict: Verdict, shape: Shape, now: float) -> Move | None:
    """The automatic move for this tick's decision, or None to stay where we are."""
    if status.state in (State.ROLLING_BACK, State.FAILED):
        return None  # already rolling back, or waiting for a human after failed actuation
    reason = _reason(verdict)
    decision = verdict.decision
    if decision is Decision.ROLLBACK:
        return _fire(status, shape, now, "rollback", reason)
    if decision is Decision.STEP_DOWN:
        return _fire(status, shape, now, "step_down", reason)
    if decision is Decision.HOLD:
        return None
    trigger = {
        State.PENDING: "start",
        State.PROGRESSING: "advance",
        State.STEPPING_DOWN: "recover",
    }.get(status.state)
    return _fire(status, shape, now, trigger, reason or "healthy") if trigger else None


def act(status: RolloutStatus, trigger: str, shape: Shape, now: float, reason: str) -> Move:
    """A person's act. Raises NotAllowed when the state does not allow it."""
    if trigger not in MANUAL_TRIGGERS:
        raise NotAllowed(f"unknown manual act {trigger!r}")
    move = _fire(status, shape, now, trigger, reason)
    if move is None:
        raise NotAllowed(f"cannot {trigger} a rollout that is {status.state.value}")
    return move


def allowed_acts(state: State) -> list[str]:
    """The manual acts a state allows (the dashboard offers only these). Read from the table:
    no manual transition has a guard, so the state decides (a test checks it against `act`),
    and an API read builds no machine."""
    return [trigger for trigger in MANUAL_TRIGGERS if state.value in _MANUAL_SOURCES[trigger]]


def complete(status: RolloutStatus, now: float) -> Move | None:
    """rolling_back → rolled_back, once every rollback operation has a result."""
    return _fire(status, Shape((), ()), now, "complete", "every target rolled back")


def fail(status: RolloutStatus, now: float, reason: str) -> Move | None:
    return _fire(status, Shape((), ()), now, "fail", reason)


def _reason(verdict: Verdict) -> str:
    if not verdict.policies:
        return ""
    return f"{verdict.decision.value}: {', '.join(verdict.policies)}"


__all__ = [
    "MANUAL_TRIGGERS",
    "Move",
    "NotAllowed",
    "Shape",
    "act",
    "allowed_acts",
    "complete",
    "fail",
    "react",
]
_ = MachineError  # raised by `transitions` only for invalid triggers, which we ignore above
