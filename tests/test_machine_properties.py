"""The rollout machine's invariants (DESIGN.md "Rollout state machine"), property-tested.

`RolloutMachineProperties` drives the pure core (`controller.core.machine`) with random
verdicts at random times, manual acts, `complete` and `fail`, over random step ladders:
- traffic never rises on an automatic move while the verdict is step_down or rollback;
- nothing leaves a terminal state (rolled_back, promoted);
- manual rollback succeeds from every non-terminal state;
- `seq` grows by exactly one per move, and every move's intent matches where it lands;
- step_down goes to the highest down step below the traffic, or rolls back when there is none;
- a rollout that is rolling back or failed does not react automatically.

`JournaledRolloutProperties` tells the same kind of story through the real `Reconciler`, a
SQLite store and sandbox targets, each wrapped in a recording actuator that checks, at every
`apply`, that the transition and the intent with that key are already in the store: every
transition is journaled before its actions run.

Each story step is one weighted event (a verdict, a manual act, `complete`, `fail`, or the
next release once one has ended): hypothesis draws early list entries most often, so the
weights keep stories in the middle of a release — stepping down, recovering, resuming —
instead of ending at once in a rollback.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from adapters.actuators.base import Actuator, Observed, Result
from adapters.actuators.registry import build_actuator, capabilities_of
from adapters.actuators.sandbox import Emulated
from controller.core.decide import Decision, Verdict
from controller.core.machine import MANUAL_TRIGGERS, Move, NotAllowed, Shape, act, complete, fail, react
from controller.core.model import RolloutId, RolloutStatus, State, Step
from controller.core.plan import Intent, TargetView
from controller.runtime import LiveRollout, Reconciler
from controller.store.base import AuditDraft, RolloutRecord
from controller.store.sqlite import SqliteStore
from policies.evaluator import Evaluator, SignalKind
from policies.loader import parse_pack
from policies.operations import Op, Operation

NEXT_RELEASE, COMPLETE, FAIL = "next release", "complete", "fail"
A, N, H, S, R = Decision.ADVANCE, Decision.NOTIFY, Decision.HOLD, Decision.STEP_DOWN, Decision.ROLLBACK
EVENTS = st.sampled_from(
    [A, S, "resume", A, NEXT_RELEASE, N, S, A, H, "pause", COMPLETE, A, S, R, "rollback", "promote", FAIL]
)
# Through the runtime, `complete` and `fail` are the runtime's own moves, never forced.
RUNTIME_EVENTS = st.sampled_from(
    [A, A, NEXT_RELEASE, S, "resume", A, N, S, H, "pause", A, S, R, "rollback", "promote"]
)
PAUSES = st.sampled_from([900.0, 60.0, 1.0, 300.0, 3600.0, 30.0])  # time between two events
BAKES = st.sampled_from([0.0, 60.0, 300.0, 900.0])
# The docs' ladders first, then any ladder: forward steps rising, down steps falling.
FORWARD = st.one_of(
    st.just([10, 50, 100]),
    st.just([1, 5, 25, 50, 100]),
    st.sets(st.integers(1, 100), min_size=1, max_size=4).map(sorted),
)
DOWN = st.one_of(
    st.just([50, 10]),
    st.just([75, 30, 5]),
    st.sets(st.integers(1, 100), max_size=3).map(lambda ts: sorted(ts, reverse=True)),
)
EMULATIONS = st.lists(st.sampled_from(Emulated), min_size=1, max_size=3)

NO_REACTION = (State.ROLLING_BACK, State.FAILED)
MAY = {  # where each manual act is allowed (docs/rollouts.md "States"), written independently
    "rollback": {s for s in State if not s.terminal},
    "pause": {State.PENDING, State.PROGRESSING, State.STEPPING_DOWN},
    "resume": {State.PAUSED},
    "promote": {State.PENDING, State.PROGRESSING, State.PAUSED, State.STEPPING_DOWN, State.FAILED},
}


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    return Shape(
        tuple(Step(traffic, draw(BAKES)) for traffic in draw(FORWARD)),
        tuple(Step(traffic, draw(BAKES)) for traffic in draw(DOWN)),
    )


def highest_down_step_below(shape: Shape, traffic: int) -> int | None:
    lower = [step.traffic for step in shape.down_steps if step.traffic < traffic]
    return max(lower) if lower else None


def expected_intent(move: Move) -> Intent | None:
    """What the targets must be told for a move, from where it lands and why."""
    landing = move.after.state
    if landing is State.PROGRESSING:
        return Intent.RESUME if move.trigger == "resume" else Intent.ADVANCE
    if landing is State.PAUSED:
        return Intent.PAUSE if move.trigger == "pause" else None  # recovered: hold, touch nothing
    return {
        State.ROLLING_BACK: Intent.ROLLBACK,
        State.STEPPING_DOWN: Intent.STEP_DOWN,
        State.PROMOTED: Intent.PROMOTE,
        State.ROLLED_BACK: None,
        State.FAILED: None,
    }[landing]


def check_move(move: Move, before: RolloutStatus, shape: Shape, now: float) -> None:
    after = move.after
    assert move.before == before
    assert after.seq == before.seq + 1
    assert after.since == now
    assert move.intent is expected_intent(move), move
    if after.state is State.PROGRESSING:
        assert after.traffic == shape.steps[after.step].traffic
    if after.state is State.STEPPING_DOWN:
        assert after.traffic == shape.down_steps[after.step].traffic
    if after.state in (State.ROLLING_BACK, State.ROLLED_BACK):
        assert after.traffic == 0
    if after.state is State.PROMOTED:
        assert after.traffic == 100


def check_reaction(move: Move | None, before: RolloutStatus, decision: Decision, shape: Shape) -> None:
    """What a decision demands of the automatic move."""
    state = before.state
    if state.terminal or state in NO_REACTION or decision is Decision.HOLD:
        assert move is None
        return
    if decision.lowers_traffic and move is not None:
        assert move.after.traffic <= before.traffic, "traffic rose while step_down-or-worse breaches"
        assert move.after.state in (State.STEPPING_DOWN, State.ROLLING_BACK)
    if decision is Decision.ROLLBACK:
        assert move is not None
        assert move.after.state is State.ROLLING_BACK
    if decision is Decision.STEP_DOWN and move is not None:
        lower = highest_down_step_below(shape, before.traffic)
        if lower is None:
            assert move.after.state is State.ROLLING_BACK
        else:
            assert (move.after.state, move.after.traffic) == (State.STEPPING_DOWN, lower)
    if decision is Decision.STEP_DOWN and state is not State.STEPPING_DOWN:
        assert move is not None, "step_down waits only for a down step's bake"


def check_manual(move: Move | None, before: RolloutStatus, trigger: str) -> None:
    """`move` is None when `act` raised NotAllowed."""
    assert (move is not None) == (before.state in MAY[trigger]), (trigger, before.state)


class RolloutMachineProperties(RuleBasedStateMachine):
    """The pure machine, story by story."""

    def __init__(self) -> None:
        super().__init__()
        self.shape = Shape((Step(100, 0.0),), ())
        self.status = RolloutStatus(State.PENDING, 0, 0, 0.0)
        self.now = 0.0
        self.moves = 0

    @initialize(shape=shapes())
    def first_release(self, shape: Shape) -> None:
        self.shape = shape

    @rule(what=EVENTS, pause=PAUSES, shape=shapes())
    def happen(self, what: Decision | str, pause: float, shape: Shape) -> None:
        self.now += pause
        before = self.status
        move: Move | None
        if isinstance(what, Decision):
            move = react(before, Verdict(what, ("p",)), self.shape, self.now)
            check_reaction(move, before, what, self.shape)
        elif what in MANUAL_TRIGGERS:
            try:
                move = act(before, what, self.shape, self.now, reason="by hand")
            except NotAllowed:
                move = None
            check_manual(move, before, what)
            assert move is None or move.after.reason == "by hand"
        elif what == COMPLETE:
            move = complete(before, self.now)
            assert (move is not None) == (before.state is State.ROLLING_BACK)
            assert move is None or move.after.state is State.ROLLED_BACK
        elif what == FAIL:
            move = fail(before, self.now, "actuation failed")
            assert (move is None) == before.state.terminal
            assert move is None or (move.after.state, move.after.traffic) == (State.FAILED, before.traffic)
        else:  # the next release, once this one has ended
            if before.state.terminal:
                self.shape, self.status, self.moves = shape, RolloutStatus(State.PENDING, 0, 0, self.now), 0
            return
        if move is not None:
            check_move(move, before, self.shape, self.now)
            event(f"{move.before.state.value} --{move.trigger}--> {move.after.state.value}")
            self.status = move.after
            self.moves += 1

    @invariant()
    def seq_counts_the_moves(self) -> None:
        assert self.status.seq == self.moves

    @invariant()
    def nothing_leaves_a_terminal_state(self) -> None:
        if not self.status.state.terminal:
            return
        later = self.now + 1e6
        for decision in Decision:
            assert react(self.status, Verdict(decision, ("p",)), self.shape, later) is None
        for trigger in MANUAL_TRIGGERS:
            try:
                act(self.status, trigger, self.shape, later, reason="x")
            except NotAllowed:
                continue
            raise AssertionError(f"{trigger} left {self.status.state.value}")
        assert complete(self.status, later) is None
        assert fail(self.status, later, "x") is None

    @invariant()
    def manual_rollback_succeeds_from_every_non_terminal_state(self) -> None:
        if self.status.state.terminal:
            return
        move = act(self.status, "rollback", self.shape, self.now, reason="x")
        assert (move.after.state, move.after.traffic, move.intent) == (State.ROLLING_BACK, 0, Intent.ROLLBACK)

    @invariant()
    def rolling_back_or_failed_does_not_react(self) -> None:
        if self.status.state not in NO_REACTION:
            return
        for decision in Decision:
            assert react(self.status, Verdict(decision, ("p",)), self.shape, self.now + 1e6) is None


RolloutMachineProperties.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, derandomize=True, deadline=None
)
test_rollout_machine_properties = RolloutMachineProperties.TestCase


# --- journal before action, through the real runtime ----------------------------------

# One plain signal per rule action; a tick's verdict is chosen by which one reads 1.
SIGNALS = {decision: f"sig_{decision.value}" for decision in Decision if decision is not Decision.ADVANCE}
PACK = "apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {name: verdicts}\npolicies:\n" + "".join(
    f"  - {{id: {d.value.replace('_', '-')}, signal: {s}, when: '> 0.5', staleness: 1s, action: {d.value}}}\n"
    for d, s in SIGNALS.items()
)


# FIRST_USE: sandboxes sharing a brand-new state file, first used from parallel threads,
# sometimes get "database is locked" at once (a Transient the runtime would retry). That is
# the sandbox's business, not the journal's: each target is touched once before the story.


@dataclass
class JournalCheckingActuator:
    """A recording test double around a REAL sandbox target: before an operation reaches the
    target, the store must already hold its transition and its intent (same key, same op)."""

    inner: Actuator
    store: SqliteStore
    rollout_id: RolloutId
    applied: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self.inner.capabilities

    def observe(self) -> Observed:
        return self.inner.observe()

    def apply(self, operation: Operation, key: str) -> Result:
        journaled = {intent.key: intent for intent in self.store.intents(self.rollout_id)}
        assert key in journaled, f"{key} reached {self.name} before its intent was journaled"
        intent = journaled[key]
        assert intent.operation == operation
        assert intent.outcome is None, f"{key} applied again after its result was journaled"
        transitions = {row.seq for row in self.store.transitions(self.rollout_id)}
        assert intent.seq in transitions, f"{key} reached {self.name} before its transition was journaled"
        self.applied.append(key)
        return self.inner.apply(operation, key)


class JournaledRolloutProperties(RuleBasedStateMachine):
    """Ticks and manual acts through `Reconciler` with a SQLite store and sandbox targets;
    when a rollout ends, the story's next release starts in the same store."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="tidegate-journal-"))
        self.store = SqliteStore(self.folder / "state.db")
        self.reconciler = Reconciler(self.store, attempts=1)
        self.now = 0.0
        self.releases = 0
        self.wrapped: list[JournalCheckingActuator] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize(shape=shapes(), emulations=EMULATIONS)
    def release(self, shape: Shape, emulations: list[Emulated]) -> None:
        self.releases += 1
        self.id = RolloutId(f"prop-{self.releases}")
        status = RolloutStatus(State.PENDING, 0, 0, self.now)
        record = RolloutRecord(self.id, "prop", "{}", status, self.now)
        self.store.create_rollout(record, AuditDraft(self.now, "tidegate", "created", self.id, {}))
        targets: list[TargetView] = []
        self.wrapped = []
        for index, emulates in enumerate(emulations):
            name = f"t{index}-{emulates.value}"
            target_settings = {"emulates": emulates.value, "version": "2", "previous_version": "1"}
            targets.append(TargetView(name, emulates.value, capabilities_of("sandbox", target_settings)))
            sandbox = build_actuator(
                "sandbox", name, target_settings, state_dir=self.folder / "targets" / self.id
            )
            sandbox.observe()  # first use of the state file, one at a time: see FIRST_USE below
            self.wrapped.append(JournalCheckingActuator(sandbox, self.store, self.id))
        evaluator = Evaluator(
            parse_pack(PACK, "verdicts.yaml").policies,
            start=self.now,
            kinds=dict.fromkeys(SIGNALS.values(), SignalKind.PLAIN),
        )
        actuators: dict[str, Actuator] = {actuator.name: actuator for actuator in self.wrapped}
        self.rollout = LiveRollout(self.id, "prop", status, shape, "1", evaluator, targets, actuators)

    @rule(what=RUNTIME_EVENTS, pause=PAUSES, shape=shapes(), emulations=EMULATIONS)
    def happen(self, what: Decision | str, pause: float, shape: Shape, emulations: list[Emulated]) -> None:
        self.now += pause
        before = self.rollout.status
        if isinstance(what, Decision):
            for decision, signal in SIGNALS.items():
                self.rollout.evaluator.observe(signal, self.now, 1.0 if decision is what else 0.0)
            move = self.reconciler.step(self.rollout, self.now)
            assert move is None or move.before == before
            check_reaction(move, before, what, self.rollout.shape)
        elif what in MANUAL_TRIGGERS:
            try:
                move = self.reconciler.manual(self.rollout, what, self.now, actor="alice", reason="by hand")
            except NotAllowed:
                move = None
            check_manual(move, before, what)
        elif what == NEXT_RELEASE and before.state.terminal:
            self.release(shape, emulations)
        event(f"runtime reached {self.rollout.status.state.value}")

    @invariant()
    def the_store_holds_the_rollouts_status(self) -> None:
        record = self.store.get_rollout(self.id)
        assert record is not None
        assert record.status == self.rollout.status

    @invariant()
    def every_move_is_one_journaled_transition(self) -> None:
        seqs = [row.seq for row in self.store.transitions(self.id)]
        assert seqs == list(range(1, self.rollout.status.seq + 1))

    @invariant()
    def every_intent_ran_once_and_has_a_result(self) -> None:
        intents = self.store.intents(self.id)
        applied = [key for actuator in self.wrapped for key in actuator.applied]
        assert sorted(applied) == sorted(intent.key for intent in intents)
        assert all(intent.outcome in ("applied", "already_done") for intent in intents), intents

    @invariant()
    def a_rollback_whose_operations_all_have_results_is_complete(self) -> None:
        assert self.rollout.status.state is not State.ROLLING_BACK


JournaledRolloutProperties.TestCase.settings = settings(
    max_examples=15, stateful_step_count=25, derandomize=True, deadline=None
)
test_every_transition_is_journaled_before_its_actions = JournaledRolloutProperties.TestCase
