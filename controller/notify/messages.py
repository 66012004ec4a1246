"""Runtime events → the messages people get, following the runbook's comms templates.

    decision away from healthy (hold / step_down / rollback, a policy breaching) → start
    decision `notify` with a policy breaching                                   → notice
    step_down / rollback / pause, once every target has answered                → mitigation
    start / advance / resume with no incident open, once every target answered  → progress
    rolled back, promoted or recovered while an incident is open;
      or the signals healthy again before any traffic was changed               → resolved
    a page (a target that cannot do it by API, actuation failed after retries)  → human

A `Composer` keeps, per rollout, the open incident (when it started, which policies fired,
the pages still to act on) and the transition waiting for its targets' answers; everything
else comes from the events' `details`. Time is the events' own: no clock is read, so a
replayed rollout composes the same messages. Each message carries a key that is the same
when the same fact is told again (the dispatcher's dedupe): a breach is keyed by its
policies and the tick its streak started, a move by its sequence number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from controller.core.model import RolloutId
from controller.notify.wording import doing, operation_results, outcome, symptom, utc_time
from controller.runtime import AUTOMATIC, Event
from controller.store.base import JsonValue
from policies.durations import format_duration
from policies.timestamps import format_timestamp

UNHEALTHY = ("hold", "step_down", "rollback")
HEALTHY = ("advance", "notify")
MITIGATING = ("step_down", "rollback", "pause")


class MessageKind(Enum):
    START = "start"
    MITIGATION = "mitigation"
    RESOLVED = "resolved"
    HUMAN = "human"
    NOTICE = "notice"
    PROGRESS = "progress"


@dataclass(frozen=True)
class Message:
    """One thing to tell people. `fields` are the template's values as plain text (a notifier
    escapes them for its medium); `details` the same facts as data for machine receivers;
    `verify_in` how long until the move is verified (the step's bake), None when the move does
    not bake and the notifier's `verification` period applies."""

    kind: MessageKind
    rollout: RolloutId
    key: str
    at: float
    fields: Mapping[str, str]
    details: Mapping[str, JsonValue]
    verify_in: float | None = None


@dataclass
class _Incident:
    opened_at: float
    key: str
    policies: list[str] = field(default_factory=list)  # in the order they fired
    acted: bool = False  # tidegate (or a person) changed traffic or paused since it opened
    pages: list[str] = field(default_factory=list)  # what a human still has to do
    cause: str = ""  # for an incident a person opened: their reason


@dataclass
class _Move:
    """A transition waiting for its targets' answers (keys from the journal)."""

    event: Event
    kind: MessageKind
    answers: dict[str, Mapping[str, JsonValue] | None]


@dataclass
class _Rollout:
    incident: _Incident | None = None
    symptom: str = ""  # the latest unhealthy decision's, in words
    move: _Move | None = None
    state: str = ""  # where the rollout stands, as the latest decision or transition said
    traffic: str = ""
    final: bool = False  # rolled back or promoted: forgotten once its last message is out


class Composer:
    def __init__(self) -> None:
        self._rollouts: dict[RolloutId, _Rollout] = {}

    def forget(self, rollout: RolloutId) -> None:
        """Drop what is known about a rollout this process no longer watches (a lease moved)."""
        self._rollouts.pop(rollout, None)

    def compose(self, event: Event) -> list[Message]:
        if not event.details and event.kind != "page":
            return []  # dry runs and text-only kinds (firing, recovery, source) tell no one
        notes = self._rollouts.setdefault(event.rollout, _Rollout())
        standing = event.details.get("to") or event.details.get("state")
        if event.kind in ("decision", "transition") and standing:
            notes.state, notes.traffic = str(standing), str(event.details.get("traffic", ""))
        if event.kind == "decision":
            messages = self._decision(event, notes)
        elif event.kind == "transition":
            messages = [*self._flush(notes), *self._transition(event, notes)]
        elif event.kind == "action":
            messages = self._action(event, notes)
        elif event.kind == "page":
            messages = [self._page(event, notes)]
        else:
            messages = []
        if notes.final and notes.move is None:
            del self._rollouts[event.rollout]  # nothing more will be said about it
        return messages

    # --- decisions --------------------------------------------------------------------

    def _decision(self, event: Event, notes: _Rollout) -> list[Message]:
        details = event.details
        decision = str(details.get("decision"))
        breaching = set(_strings(details.get("breaching")))
        fired = [p for p in _strings(details.get("policies")) if p in breaching]
        said = symptom(fired, _mapping(details.get("values")), _mapping(details.get("conditions")))
        if decision in UNHEALTHY:
            notes.symptom = said  # "" when no rule breaches (no data): the move's reason says why
            return self._open(event, notes, fired) if fired else []
        if fired and decision == "notify":
            key = "notice/" + _streaks(details, fired)
            return [self._message(notes, MessageKind.NOTICE, event, key, {"symptom": said})]
        incident = notes.incident
        if decision in HEALTHY and incident is not None and not incident.acted:
            notes.incident = None  # healthy again before anything was changed: it resolved itself
            traffic = details.get("traffic")
            return [
                self._resolved(
                    notes,
                    event,
                    incident,
                    "resolved/" + incident.key,
                    f"signals healthy again, no traffic changed ({traffic}%)",
                    "watch the rollout; it carries on",
                )
            ]
        return []

    def _open(self, event: Event, notes: _Rollout, fired: list[str]) -> list[Message]:
        incident = notes.incident
        if incident is not None:  # already investigating: the next mitigation says why
            incident.policies += [p for p in fired if p not in incident.policies]
            return []
        key = "start/" + _streaks(event.details, fired)
        since = _mapping(event.details.get("since"))
        began = [t for p in fired if isinstance(t := since.get(p), int | float) and not isinstance(t, bool)]
        notes.incident = _Incident(min([event.at, *began]), key, list(fired))
        fields = {
            "symptom": notes.symptom,
            "started_at": utc_time(notes.incident.opened_at),
            "decision": str(event.details.get("decision")),
            "policies": ", ".join(fired),
        }
        return [self._message(notes, MessageKind.START, event, key, fields)]

    # --- moves and their answers ------------------------------------------------------

    def _transition(self, event: Event, notes: _Rollout) -> list[Message]:
        details = event.details
        trigger, to = str(details.get("trigger")), str(details.get("to"))
        if trigger == "fail":
            return []  # the page that follows says it, as a `human` message
        notes.final = to in ("rolled_back", "promoted")
        incident = notes.incident
        if trigger in MITIGATING:
            if incident is None:  # a person (or a rule without data) acted: the act opens one
                actor, cause = details.get("actor"), str(details.get("reason") or trigger)
                cause += f" (by {actor})" if actor != AUTOMATIC else ""
                incident = notes.incident = _Incident(event.at, f"manual/{details.get('seq')}", cause=cause)
            incident.acted = True
            return self._await(event, notes, MessageKind.MITIGATION)
        if incident is not None and (to in ("rolled_back", "promoted", "paused") or trigger == "resume"):
            notes.incident = None
            return [self._closing(notes, event, incident)]
        return self._await(event, notes, MessageKind.PROGRESS)

    def _await(self, event: Event, notes: _Rollout, kind: MessageKind) -> list[Message]:
        keys = [str(_mapping(op).get("key")) for op in _list(event.details.get("operations"))]
        notes.move = _Move(event, kind, dict.fromkeys(keys))
        return self._flush(notes) if not keys else []

    def _action(self, event: Event, notes: _Rollout) -> list[Message]:
        key = str(event.details.get("key"))
        move = notes.move
        if move is None or key not in move.answers:
            # An answer to a move this process did not see (finished after a restart).
            kind = MessageKind.MITIGATION if notes.incident is not None else MessageKind.PROGRESS
            return [self._moved(notes, kind, event, {}, [event.details], "action/" + key)]
        move.answers[key] = event.details
        return self._flush(notes) if all(a is not None for a in move.answers.values()) else []

    def _flush(self, notes: _Rollout) -> list[Message]:
        """The waiting move as one message, with every answer that has arrived."""
        move, notes.move = notes.move, None
        if move is None:
            return []
        answers = [a for a in move.answers.values() if a is not None]
        key = f"{move.kind.value}/{move.event.details.get('seq')}"
        return [self._moved(notes, move.kind, move.event, move.event.details, answers, key)]

    def _moved(
        self,
        notes: _Rollout,
        kind: MessageKind,
        event: Event,
        move: Mapping[str, JsonValue],
        answers: Sequence[Mapping[str, JsonValue]],
        key: str,
    ) -> Message:
        actor = str(move.get("actor", AUTOMATIC))
        reason = str(move.get("reason") or "")
        why = (notes.symptom or reason) if actor == AUTOMATIC and kind is MessageKind.MITIGATION else reason
        if actor != AUTOMATIC:
            why = f"{reason} (by {actor})" if reason else f"by {actor}"
        incident = notes.incident
        fields = {
            "action": doing(move),
            "why": why or "no reason given",
            "results": operation_results(answers),
            "outcome": outcome(answers),
            "actor": actor,
            "started_at": utc_time(incident.opened_at if incident else event.at),
        }
        data = {**move, "results": list(answers)}
        bake = move.get("bake")
        verify_in = float(bake) if isinstance(bake, int | float) and bake > 0 else None
        return self._message(notes, kind, event, key, fields, data, verify_in)

    # --- endings and pages ------------------------------------------------------------

    def _closing(self, notes: _Rollout, event: Event, incident: _Incident) -> Message:
        details = event.details
        trigger, to, traffic = details.get("trigger"), details.get("to"), details.get("traffic")
        rollout = event.rollout
        if to == "rolled_back":
            what, next_step = "every target rolled back", "find why it breached before shipping again"
        elif to == "promoted":
            what, next_step = "promoted to 100%", "review why it breached"
        elif trigger == "resume":
            what, next_step = f"resumed at {traffic}% by {details.get('actor')}", "watch the rollout"
        else:
            what = f"signals healthy again; holding at {traffic}% for a human"
            next_step = f"resume or roll back {rollout}"
        return self._resolved(notes, event, incident, f"resolved/{details.get('seq')}", what, next_step)

    def _resolved(
        self, notes: _Rollout, event: Event, incident: _Incident, key: str, what: str, next_step: str
    ) -> Message:
        policies = incident.policies
        cause = f"the release tripped {', then '.join(policies)}" if policies else incident.cause or "unknown"
        follow_ups = [*incident.pages, next_step, f"timeline: tidegate audit log {event.rollout}"]
        fields = {
            "resolved_at": utc_time(event.at),
            "started_at": utc_time(incident.opened_at),
            "duration": format_duration(round(max(0.0, event.at - incident.opened_at))),
            "outcome": what,
            "root_cause": cause,
            "follow_ups": "; ".join(follow_ups),
        }
        return self._message(notes, MessageKind.RESOLVED, event, key, fields)

    def _page(self, event: Event, notes: _Rollout) -> Message:
        details = event.details
        target = details.get("target")
        reason = str(details.get("reason") or event.text)
        said = f"{target}: {reason}" if target else reason
        if notes.incident is None:
            notes.incident = _Incident(event.at, f"page/{details.get('seq')}", cause=said)
        notes.incident.pages.append(said)
        fields = {
            "reason": said,
            "target": str(target or ""),
            "started_at": utc_time(notes.incident.opened_at),
        }
        key = f"human/{details.get('seq')}/{target or 'actuation'}"
        return self._message(notes, MessageKind.HUMAN, event, key, fields)

    def _message(
        self,
        notes: _Rollout,
        kind: MessageKind,
        event: Event,
        key: str,
        fields: Mapping[str, str],
        details: Mapping[str, JsonValue] | None = None,
        verify_in: float | None = None,
    ) -> Message:
        common = {
            "rollout": str(event.rollout),
            "time": utc_time(event.at),
            "timestamp": format_timestamp(event.at),
            "state": notes.state,
            "traffic": notes.traffic,
        }
        data = details if details is not None else event.details
        return Message(kind, event.rollout, key, event.at, {**common, **fields}, dict(data), verify_in)


def _streaks(details: Mapping[str, JsonValue], policies: Sequence[str]) -> str:
    """`error-rate@1758467300`: the policies and when their breach streaks began — the same
    for a decision told again, new for a breach that went away and came back."""
    since = _mapping(details.get("since"))
    return ",".join(f"{p}@{since.get(p)}" for p in sorted(policies))


def _strings(value: JsonValue) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _list(value: JsonValue) -> list[JsonValue]:
    return list(value) if isinstance(value, list) else []


def _mapping(value: JsonValue) -> Mapping[str, JsonValue]:
    return value if isinstance(value, Mapping) else {}
