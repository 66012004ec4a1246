"""One tick of one rollout, top to bottom (`Reconciler.step`), and the acts around it.

    finish what a crash left unfinished → evaluate → decide → transition → plan
      → journal the intent (one transaction) → actuate in parallel → journal each result
      → audit → complete the rollback, or fail and page a human

Everything before "journal" is the pure core; this module is the imperative shell that
runs it. A transition is always committed with all its intended operations before any
target is touched, and every operation's result is committed as it arrives, so a crash at
any point leaves a journal from which `recover` finishes the job without doing anything
twice (actuators observe first and answer `already_done`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from adapters.actuators.base import Actuator, AlreadyDone, Applied, Refused, Result
from adapters.errors import ActuatorError, RateLimited, Transient
from controller.core import machine
from controller.core.decide import Verdict, decide
from controller.core.machine import Move, Shape
from controller.core.model import RolloutId, RolloutStatus, State
from controller.core.plan import Plan, TargetView, plan
from controller.event_details import decision_details, transition_details
from controller.store.base import (
    AuditDraft,
    Fence,
    Intent,
    JsonValue,
    PlannedIntent,
    SourceRead,
    Store,
    TransitionRow,
)
from policies.evaluator import Evaluator
from policies.explain import condition
from policies.operations import Operation
from policies.rules.base import RuleState, Status
from policies.trace import Trace

log = logging.getLogger("tidegate.runtime")
AUTOMATIC = "tidegate"


@dataclass
class LiveRollout:
    """A rollout loaded for work: its record's status plus everything needed to act on it."""

    id: RolloutId
    name: str
    status: RolloutStatus
    shape: Shape
    previous_version: str
    evaluator: Evaluator
    targets: list[TargetView]
    actuators: dict[str, Actuator]
    last_verdict: Verdict | None = None
    last_states: list[RuleState] = field(default_factory=list)
    lowered: bool = False  # traffic was stepped down or rolled back at some point
    # Under `tidegate serve`: the lease every journal write is fenced with, and a check that
    # raises LeaseLost once this replica may no longer act (its lease ran out on its clock).
    fence: Fence | None = None
    guard: Callable[[], None] = field(default=lambda: None)
    settled: bool = False  # the journal holds no unfinished operation (see Reconciler.recover)
    trace: Trace | None = None  # `tidegate serve`: recent rule states, for the dashboard's charts


LOWERING_TRIGGERS = ("step_down", "rollback")
LONGEST_RATE_LIMIT_WAIT = 60.0  # seconds; past this a retry is attempted anyway, then we escalate


@dataclass(frozen=True)
class ActionResult:
    intent: PlannedIntent
    outcome: str  # applied | already_done | refused | failed
    detail: str


@dataclass(frozen=True)
class Event:
    """What the runtime tells its observer (the CLI's timeline, later the API and notifiers)."""

    at: float
    kind: str  # firing | recovered | decision | transition | action | page
    rollout: RolloutId
    text: str
    # The same facts as data, for notifiers and the API: decision (policies, values), transition
    # (from/to, traffic, trigger, actor, reason, bake, operations), action (target, operation,
    # outcome, detail, key), page (target, reason). Empty for the other kinds and in dry runs.
    details: Mapping[str, JsonValue] = field(default_factory=dict, hash=False)


Observer = Callable[[Event], None]


def idempotency_key(rollout_id: RolloutId, seq: int, operation: Operation) -> str:
    argument = operation.traffic if operation.traffic is not None else operation.version or ""
    return f"{rollout_id}/{seq}/{operation.target}/{operation.op.value}/{argument}"


class Reconciler:
    def __init__(
        self,
        store: Store,
        observer: Observer | None = None,
        attempts: int = 4,
        backoff: float = 0.2,
        dry_run: bool = False,
        record_reads: Callable[[RolloutId, Sequence[SourceRead]], None] | None = None,
    ):
        self.store = store
        # where source-read counts go: the store at once, or a buffer flushed in batches
        # (`tidegate serve`, where thousands of rollouts tick)
        self._record_reads = record_reads or store.record_source_reads
        self.dry_run = dry_run  # decide and plan, but journal nothing and touch no target
        self.observer = observer or (lambda event: None)
        self.attempts = attempts
        self.backoff = backoff

    # --- the tick --------------------------------------------------------------------

    def step(self, rollout: LiveRollout, now: float, *, watch_only: bool = False) -> Move | None:
        """Gather → evaluate → decide → transition → plan → journal → actuate → record."""
        self.recover(rollout, now)
        states = rollout.evaluator.tick(now)
        verdict = decide(states)
        self._note_evaluation(rollout, now, states, verdict)
        move = machine.react(rollout.status, verdict, rollout.shape, now)
        if move is not None and watch_only and move.trigger in ("start", "advance"):
            move = None  # a gate watches; it never steps traffic up or promotes
        if move is None:
            return None
        self.execute(rollout, move, now, actor=AUTOMATIC, verdict=verdict)
        return move

    def manual(self, rollout: LiveRollout, trigger: str, now: float, actor: str, reason: str) -> Move:
        """A person's rollback / pause / resume / promote, audited with who and why."""
        self.recover(rollout, now)
        move = machine.act(rollout.status, trigger, rollout.shape, now, reason)
        self.execute(rollout, move, now, actor=actor, verdict=None)
        return move

    # --- journal, then act ----------------------------------------------------------

    def execute(
        self, rollout: LiveRollout, move: Move, now: float, *, actor: str, verdict: Verdict | None
    ) -> None:
        the_plan = self._plan(rollout, move)
        rollout.lowered = rollout.lowered or move.trigger in LOWERING_TRIGGERS
        intents = [
            PlannedIntent(idempotency_key(rollout.id, move.after.seq, op), op) for op in the_plan.operations
        ]
        if self.dry_run:
            rollout.status = move.after
            self._emit(now, "transition", rollout, "would move " + _describe_move(move, actor))
            for intent in intents:
                operation = intent.operation
                self._emit(now, "action", rollout, f"would tell {operation.target}: {operation.describe()}")
            return
        self.store.commit_transition(
            rollout.id,
            move.before.seq,
            move.after,
            TransitionRow(
                rollout.id,
                move.after.seq,
                now,
                move.trigger,
                move.before.state.value,
                move.after.state.value,
                move.after.traffic,
                move.after.reason,
                actor,
            ),
            intents,
            self._transition_audit(rollout, move, the_plan, now, actor, verdict),
            fence=rollout.fence,
        )
        rollout.status = move.after
        rollout.settled = False  # intents journaled: unfinished until each result is recorded
        details = transition_details(rollout.shape, move, intents, the_plan.manual_steps, actor)
        self._emit(now, "transition", rollout, _describe_move(move, actor), details)
        for step in the_plan.manual_steps:
            page: dict[str, JsonValue] = {"seq": move.after.seq, "target": step.target, "reason": step.reason}
            self._emit(now, "page", rollout, f"PAGE a human: {step.target}: {step.reason}", page)
        results = self._actuate(rollout, intents, now)
        rollout.settled = True  # every intent of this transition has its result
        self._settle(rollout, results, now)

    def recover(self, rollout: LiveRollout, now: float) -> None:
        """Finish intents a crash left without a result: re-apply, the target says if it's done.

        Once a rollout's journal is known to hold no unfinished work (`settled`), it stays so
        until this process journals a transition whose operations do not all finish — so a
        long-lived controller does not ask the store at every tick."""
        if self.dry_run or rollout.settled:
            return
        unfinished = self.store.unfinished_intents(rollout.id)
        results: list[ActionResult] = []
        if unfinished:
            self._emit(now, "recovery", rollout, f"finishing {len(unfinished)} journaled operation(s)")
            results = self._actuate(rollout, [PlannedIntent(i.key, i.operation) for i in unfinished], now)
        self._settle(rollout, [*self._failed_before_crash(rollout, results), *results], now)
        rollout.settled = True

    def _failed_before_crash(self, rollout: LiveRollout, fresh: Sequence[ActionResult]) -> list[ActionResult]:
        """Failures of the current transition's operations that a process journaled and then
        died before moving the rollout to `failed`: they still fail it (and page), rather than
        a rollback with a failed operation completing as rolled back."""
        status = rollout.status
        if status.state.terminal or status.state is State.FAILED:
            return []
        seen = {result.intent.key for result in fresh}
        return [
            ActionResult(PlannedIntent(i.key, i.operation), i.outcome, i.detail)
            for i in self.store.intents(rollout.id)
            if i.seq == status.seq and i.outcome in ("failed", "refused") and i.key not in seen
        ]

    def _settle(self, rollout: LiveRollout, results: Sequence[ActionResult], now: float) -> None:
        """After actuation: a failure fails the rollout; a finished rollback completes it."""
        # A refusal is as final as a failure: the target is not where the journal says it
        # must be, so a human is paged rather than the rollout reported done.
        failed = [r for r in results if r.outcome in ("failed", "refused")]
        if failed:
            reason = "; ".join(f"{r.intent.operation.target}: {r.detail}" for r in failed)
            move = machine.fail(rollout.status, now, f"actuation failed: {reason}")
            if move is not None:
                self.execute(rollout, move, now, actor=AUTOMATIC, verdict=None)  # audits the page
            else:  # the move landed in a final state (promoted): nothing to fail, still page
                page = {"reason": f"actuation failed: {reason}"}
                self.store.append_audit(AuditDraft(now, AUTOMATIC, "page", rollout.id, page), rollout.fence)
            text = f"actuation failed after retries: {reason}"
            paged: dict[str, JsonValue] = {"seq": rollout.status.seq, "target": None, "reason": text}
            self._emit(now, "page", rollout, f"PAGE a human: {text}", paged)
            return
        if rollout.status.state is State.ROLLING_BACK and not self.store.unfinished_intents(rollout.id):
            done = machine.complete(rollout.status, now)
            if done is not None:
                self.execute(rollout, done, now, actor=AUTOMATIC, verdict=None)

    def _plan(self, rollout: LiveRollout, move: Move) -> Plan:
        if move.intent is None:
            return Plan(None, None, ())
        return plan(move.intent, move.after.traffic, rollout.previous_version, rollout.targets)

    def _actuate(
        self, rollout: LiveRollout, intents: Sequence[PlannedIntent], now: float
    ) -> list[ActionResult]:
        if not intents:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(intents))) as pool:
            results = list(pool.map(lambda i: self._apply(rollout, i), intents))
        for result in results:
            operation = result.intent.operation
            self.store.finish_intent(
                result.intent.key,
                result.outcome,
                result.detail,
                now,
                AuditDraft(
                    now,
                    AUTOMATIC,
                    "action",
                    rollout.id,
                    {
                        "target": operation.target,
                        "operation": operation.describe(),
                        "outcome": result.outcome,
                        "detail": result.detail,
                        "key": result.intent.key,
                    },
                ),
                rollout.fence,
            )
            text = f"{operation.target}: {operation.describe()} → {result.outcome}"
            extra = result.detail if result.detail and operation.describe() not in result.detail else ""
            details = {
                "target": operation.target,
                "operation": operation.describe(),
                "outcome": result.outcome,
                "detail": result.detail,
                "key": result.intent.key,
            }
            self._emit(now, "action", rollout, text + (f" ({extra})" if extra else ""), details)
        return results

    def _apply(self, rollout: LiveRollout, intent: PlannedIntent) -> ActionResult:
        actuator = rollout.actuators[intent.operation.target]
        rollout.guard()  # LeaseLost: leave the intent unfinished for the new holder
        try:
            for attempt in Retrying(
                retry=retry_if_exception(_not_yet_retried),
                stop=stop_after_attempt(self.attempts),
                wait=_wait(self.backoff),
                reraise=False,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        rollout.guard()  # a retry may come after the lease ran out
                    result = actuator.apply(intent.operation, intent.key)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            return ActionResult(intent, "failed", f"gave up after {self.attempts} attempts: {cause}")
        except ActuatorError as exc:
            return ActionResult(intent, "failed", str(exc))
        return _outcome(intent, result)

    # --- records ---------------------------------------------------------------------

    def _note_evaluation(
        self, rollout: LiveRollout, now: float, states: list[RuleState], verdict: Verdict
    ) -> None:
        previous = {s.policy.id: s.status for s in rollout.last_states}
        for state in states:
            before = previous.get(state.policy.id, Status.OK)
            if state.status is Status.BREACH and before is not Status.BREACH:
                rule = rollout.evaluator.rule(state.policy.id)
                text = f"{state.policy.id} breached: {rule.describe(now)} (rule: {condition(state.policy)})"
                self._emit(now, "firing", rollout, text)
            elif before is Status.BREACH and state.status is not Status.BREACH:
                self._emit(now, "recovered", rollout, f"{state.policy.id} no longer breaches")
        rollout.last_states = states
        if rollout.trace is not None:
            rollout.trace.record(now, states)
        if verdict != rollout.last_verdict and not self.dry_run:
            self.store.record_evaluation(
                rollout.id,
                now,
                verdict.decision.value,
                {
                    "policies": list(verdict.policies),
                    "breaching": [s.policy.id for s in states if s.status is Status.BREACH],
                    "no_data": [s.policy.id for s in states if s.status is Status.NO_DATA],
                },
                rollout.fence,
            )
        if verdict != rollout.last_verdict:
            causes = f" ({', '.join(verdict.policies)})" if verdict.policies else ""
            details = decision_details(rollout.status, states, verdict)
            self._emit(now, "decision", rollout, f"{verdict.decision.value}{causes}", details)
            rollout.last_verdict = verdict

    def _transition_audit(
        self,
        rollout: LiveRollout,
        move: Move,
        the_plan: Plan,
        now: float,
        actor: str,
        verdict: Verdict | None,
    ) -> list[AuditDraft]:
        drafts = []
        if verdict is not None:
            drafts.append(
                AuditDraft(
                    now,
                    actor,
                    "decision",
                    rollout.id,
                    {"decision": verdict.decision.value, "policies": list(verdict.policies)},
                )
            )
        kind = "transition" if actor == AUTOMATIC else "manual"
        drafts.append(
            AuditDraft(
                now,
                actor,
                kind,
                rollout.id,
                {
                    "trigger": move.trigger,
                    "from": move.before.state.value,
                    "to": move.after.state.value,
                    "traffic": move.after.traffic,
                    "reason": move.after.reason,
                    "operations": [op.describe() + " on " + op.target for op in the_plan.operations],
                },
            )
        )
        drafts += [
            AuditDraft(now, actor, "page", rollout.id, {"target": s.target, "reason": s.reason})
            for s in the_plan.manual_steps
        ]
        if move.after.state is State.FAILED:  # `failed` means humans were paged: record it with the move
            drafts.append(AuditDraft(now, actor, "page", rollout.id, {"reason": move.after.reason}))
        return drafts

    def record_reads(self, rollout: LiveRollout, reads: Sequence[SourceRead]) -> None:
        """Count a tick's source reads into the rollout's source health (`tidegate status`)."""
        if not self.dry_run and reads:
            self._record_reads(rollout.id, reads)

    def note(self, rollout: LiveRollout, at: float, kind: str, text: str) -> None:
        """Tell the observer something that is not a decision (a source without data)."""
        self._emit(at, kind, rollout, text)

    def _emit(
        self,
        at: float,
        kind: str,
        rollout: LiveRollout,
        text: str,
        details: Mapping[str, JsonValue] | None = None,
    ) -> None:
        log.info(text, extra={"rollout": rollout.id, "kind": kind})
        self.observer(Event(at, kind, rollout.id, text, details or {}))


def _not_yet_retried(error: BaseException) -> bool:
    """Retry a Transient error unless the adapter already retried it to its own cap."""
    return isinstance(error, Transient) and not error.retried


def _wait(backoff: float) -> Callable[[RetryCallState], float]:
    def wait(retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            # The vendor said when; honoured up to a minute — a rollback must not park for an hour.
            return min(float(error.retry_after), LONGEST_RATE_LIMIT_WAIT)
        ceiling = min(backoff * 10, backoff * 2.0 ** (retry_state.attempt_number - 1))
        return ceiling * random.uniform(0.5, 1.0)  # jitter: many rollouts must not retry in step

    return wait


def _outcome(intent: PlannedIntent, result: Result) -> ActionResult:
    if isinstance(result, Applied):
        return ActionResult(intent, "applied", result.detail)
    if isinstance(result, AlreadyDone):
        return ActionResult(intent, "already_done", result.detail)
    assert isinstance(result, Refused)
    return ActionResult(intent, "refused", result.reason)


def _describe_move(move: Move, actor: str) -> str:
    who = "" if actor == AUTOMATIC else f" by {actor}"
    why = f" — {move.after.reason}" if move.after.reason else ""
    return (
        f"{move.before.state.value} → {move.after.state.value} at {move.after.traffic}%"
        f" ({move.trigger}{who}){why}"
    )


__all__ = ["ActionResult", "Event", "Intent", "LiveRollout", "Reconciler", "idempotency_key"]
