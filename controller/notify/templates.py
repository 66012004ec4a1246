"""Message templates: the runbook's comms templates as editable defaults.

A template is Python `str.format` text with named placeholders only, e.g.
`"Mitigating by {action}. ETA for verification {eta}."`. Each message kind has a fixed,
documented set of fields (`FIELDS`, docs/notifications.md); a template is checked when the
configuration loads, so an unknown placeholder, a positional `{}`, an attribute or index
lookup (`{rollout.x}`, `{a[0]}`), a conversion (`{x!r}`) or a stray brace is a configuration
error naming it — never a failure at 3 a.m. when the first rollback is being announced.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping

from controller.notify.messages import Message, MessageKind
from controller.notify.wording import utc_time

COMMON = ("rollout", "time", "timestamp", "state", "traffic")
_MOVE = ("action", "why", "results", "outcome", "actor", "started_at", "eta")
FIELDS: dict[MessageKind, frozenset[str]] = {
    MessageKind.START: frozenset((*COMMON, "symptom", "started_at", "next_update", "decision", "policies")),
    MessageKind.NOTICE: frozenset((*COMMON, "symptom")),
    MessageKind.MITIGATION: frozenset((*COMMON, *_MOVE)),
    MessageKind.PROGRESS: frozenset((*COMMON, *_MOVE)),
    MessageKind.RESOLVED: frozenset(
        (*COMMON, "resolved_at", "started_at", "duration", "outcome", "root_cause", "follow_ups")
    ),
    MessageKind.HUMAN: frozenset((*COMMON, "reason", "target", "started_at")),
}

# Runbook §9 "Comms Templates" (Start / Mitigation / Resolved), with the rollout named, plus
# the three kinds tidegate adds: a page, a `notify` policy's heads-up, and routine progress.
DEFAULTS: dict[MessageKind, str] = {
    MessageKind.START: (
        "[{rollout}] P1 – Investigating. Symptom: {symptom}. Started at {started_at}."
        " Next update in {next_update} min."
    ),
    MessageKind.MITIGATION: (
        "[{rollout}] Mitigating by {action}, because {why}. Results: {results}. ETA for verification {eta}."
    ),
    MessageKind.RESOLVED: (
        "[{rollout}] Resolved at {resolved_at}: {outcome}. Root cause: {root_cause}."
        " Follow-ups: {follow_ups}."
    ),
    MessageKind.HUMAN: (
        "[{rollout}] Needs a human: {reason}. tidegate cannot finish this alone;"
        " the rollout is {state} at {traffic}%."
    ),
    MessageKind.NOTICE: "[{rollout}] Heads-up: {symptom} at {time}. No traffic change.",
    MessageKind.PROGRESS: "[{rollout}] {action}: {results}. Next check at {eta}.",
}


def check(kind: MessageKind, template: str) -> None:
    """ValueError naming what is wrong with `template` for messages of `kind`."""
    allowed = FIELDS[kind]
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:  # "Single '}' encountered in format string"
        raise ValueError(f"{error} (write {{{{ or }}}} for a literal brace)") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not name.isidentifier():
            raise ValueError(f"placeholder {shown}: use a field name ({_choices(allowed)})")
        if name not in allowed:
            raise ValueError(
                f"unknown placeholder {{{name}}} in a {kind.value} template ({_choices(allowed)})"
            )
        if conversion:
            raise ValueError(f"placeholder {shown}: conversions (!{conversion}) are not supported")
        if spec:
            _check_spec(shown, spec)


def _check_spec(shown: str, spec: str) -> None:
    if "{" in spec:
        raise ValueError(f"placeholder {shown}: nested fields are not supported")
    try:
        format("text", spec)  # every field is text: `>20` works, `.2f` does not
    except ValueError:
        raise ValueError(f"placeholder {shown}: {spec!r} is not a format for text") from None


def _choices(allowed: frozenset[str]) -> str:
    return "fields: " + ", ".join(sorted(allowed))


class Templates:
    """One notifier's templates (defaults overridden per kind) and the periods they state."""

    def __init__(
        self, overrides: Mapping[MessageKind, str], *, next_update: float, verification: float
    ) -> None:
        for kind, template in overrides.items():
            check(kind, template)
        self.texts = {**DEFAULTS, **overrides}
        self.next_update = next_update  # seconds: "Next update in N min"
        self.verification = verification  # seconds: the ETA of a move that does not bake

    def render(self, message: Message, escape: Callable[[str], str] = str) -> str:
        """The message in words; `escape` is applied to every field value (not the template)."""
        fields = {
            **message.fields,
            "next_update": str(max(1, round(self.next_update / 60))),
            "eta": utc_time(message.at + (message.verify_in or self.verification)),
        }
        return self.texts[message.kind].format_map({k: escape(v) for k, v in fields.items()})
