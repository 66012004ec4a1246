"""What people are told, composed from real Reconciler runs: the runbook's Start / Mitigation /
Resolved, a page as "needs a human", a `notify` policy's heads-up — each kind rendered with
every field its templates may use (docs/notifications.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.core.model import RolloutId
from controller.notify import DEFAULTS, FIELDS, Composer, Message, MessageKind, Templates
from controller.runtime import Event, Reconciler
from tests.notify_helpers import START, Shop, demo, shop, target

RENDER_TIME = {"next_update", "eta"}  # filled by each notifier's Templates, not the Composer
TEMPLATES = Templates({}, next_update=900, verification=900)


def composing() -> tuple[list[Message], Callable[[Event], None]]:
    composer, messages = Composer(), []

    def observe(event: Event) -> None:
        messages.extend(composer.compose(event))

    return messages, observe


def texts(messages: list[Message]) -> list[str]:
    return [TEMPLATES.render(m) for m in messages]


def test_every_kind_carries_exactly_its_documented_fields_and_renders_them_all(tmp_path: Path) -> None:
    messages, observe = composing()
    with demo(tmp_path / "demo", observe):
        pass
    (tmp_path / "shop").mkdir()
    with shop(tmp_path / "shop") as world:
        world.tick(Reconciler(world.store, observe, backoff=0.001), 1, db=0.95)
    kinds = {m.kind for m in messages}
    assert kinds == set(MessageKind)
    for message in messages:
        assert set(message.fields) | RENDER_TIME >= FIELDS[message.kind], message.kind
        assert set(message.fields) - RENDER_TIME <= FIELDS[message.kind], message.kind
        everything = " ".join("{" + name + "}" for name in sorted(FIELDS[message.kind]))
        rendered = Templates({message.kind: everything}, next_update=900, verification=900).render(message)
        assert "{" not in rendered
        assert all(value in rendered for value in message.fields.values())


def test_a_notify_policy_gives_a_heads_up_without_opening_an_incident(tmp_path: Path) -> None:
    messages, observe = composing()
    with shop(tmp_path) as world:
        reconciler = Reconciler(world.store, observe, backoff=0.001)
        world.tick(reconciler, 1, db=0.95)
        world.tick(reconciler, 2, db=0.1)
    assert texts(messages) == ["[shop-1] Heads-up: db (db > 0.8, now 0.95) at 14:14 UTC. No traffic change."]


def test_a_breach_that_goes_away_before_anything_changed_resolves_itself(tmp_path: Path) -> None:
    messages, observe = composing()
    with shop(tmp_path) as world:
        reconciler = Reconciler(world.store, observe, backoff=0.001)
        for minute in (1, 2, 3):
            world.tick(reconciler, minute, queue=500.0)
        world.tick(reconciler, 4, queue=20.0)
    assert texts(messages) == [
        "[shop-1] P1 – Investigating. Symptom: queue (queue > 100, now 500). Started at 14:14 UTC."
        " Next update in 15 min.",
        "[shop-1] Resolved at 14:17 UTC: signals healthy again, no traffic changed (100%)."
        " Root cause: the release tripped queue. Follow-ups: watch the rollout; it carries on;"
        " timeline: tidegate audit log shop-1.",
    ]


def step_down_then_recover(world: Shop, reconciler: Reconciler) -> None:
    world.tick(reconciler, 1, latency=3.0)  # step down to 50%, bake 20m
    for minute in range(2, 23):
        world.tick(reconciler, minute)  # healthy; after the bake: hold for a human


def test_recovering_while_stepping_down_resolves_and_asks_a_human_to_resume_or_roll_back(
    tmp_path: Path,
) -> None:
    messages, observe = composing()
    with shop(tmp_path) as world:
        step_down_then_recover(world, Reconciler(world.store, observe, backoff=0.001))
        assert world.rollout.status.state.value == "paused"
    assert [m.kind for m in messages] == [MessageKind.START, MessageKind.MITIGATION, MessageKind.RESOLVED]
    mitigation, resolved = texts(messages)[1:]
    assert mitigation == (
        "[shop-1] Mitigating by stepping traffic down from 100% to 50%, because latency (latency > 1, now 3)."
        " Results: flag: set_traffic(50%) → applied; web: set_traffic(50%) → applied."
        " ETA for verification 14:34 UTC."  # 14:14 + the 20m bake of the 50% down step
    )
    assert resolved.startswith(
        "[shop-1] Resolved at 14:34 UTC: signals healthy again; holding at 50% for a human."
    )
    assert "Follow-ups: resume or roll back shop-1;" in resolved


def test_a_manual_rollback_is_a_mitigation_by_that_person_and_its_reason_the_root_cause(
    tmp_path: Path,
) -> None:
    messages, observe = composing()
    with shop(tmp_path) as world:
        reconciler = Reconciler(world.store, observe, backoff=0.001)
        world.tick(reconciler, 1)
        reconciler.manual(world.rollout, "rollback", START + 90, "alice", "support reports failed payments")
    mitigation, resolved = texts(messages)
    assert mitigation.startswith(
        "[shop-1] Mitigating by rolling back to the previous version,"
        " because support reports failed payments (by alice). Results: flag: disable → applied;"
    )
    assert mitigation.endswith("ETA for verification 14:29 UTC.")  # no bake: the 15m verification period
    assert "Root cause: support reports failed payments (by alice)." in resolved


def test_a_failed_actuation_is_a_mitigation_with_the_failure_and_a_call_for_a_human(tmp_path: Path) -> None:
    messages, observe = composing()
    with shop(tmp_path, target("flag", "launchdarkly", fail_always=True), target("web", "vercel")) as world:
        world.tick(Reconciler(world.store, observe, attempts=2, backoff=0.001), 1, errors=1.0)
        assert world.rollout.status.state.value == "failed"
    assert [m.kind for m in messages] == [MessageKind.START, MessageKind.MITIGATION, MessageKind.HUMAN]
    _, mitigation, human = messages
    assert mitigation.fields["outcome"] == "1 of 2 targets done; failed: flag"
    assert "flag: disable → failed (gave up after 2 attempts: " in mitigation.fields["results"]
    assert TEMPLATES.render(human).startswith(
        "[shop-1] Needs a human: actuation failed after retries: flag: gave up after 2 attempts"
    )
    assert TEMPLATES.render(human).endswith("tidegate cannot finish this alone; the rollout is failed at 0%.")


@pytest.mark.parametrize("kind", list(MessageKind))
def test_each_default_template_is_valid_for_its_kind(kind: MessageKind) -> None:
    Templates({kind: DEFAULTS[kind]}, next_update=60, verification=60)


def test_a_forgotten_rollout_has_no_incident_left_to_resolve(tmp_path: Path) -> None:
    """The service calls forget() when a rollout's lease moves to another replica: that
    replica tells the rest of the story, this one must not resolve what it no longer watches."""
    composer, messages = Composer(), []
    with shop(tmp_path) as world:
        reconciler = Reconciler(
            world.store, lambda event: messages.extend(composer.compose(event)), backoff=0.001
        )
        world.tick(reconciler, 1, queue=500.0)
        composer.forget(world.rollout.id)
        world.tick(reconciler, 2, queue=0.0)
    assert [m.kind for m in messages] == [MessageKind.START]


def test_a_rollback_on_missing_data_says_the_moves_reason_not_a_stale_symptom() -> None:
    """`on_no_data: breach`: the decision's cause has no value, so no rule *breaches* — no
    Start; the rollback itself opens the incident and its reason is the why and the cause."""
    composer, rollout = Composer(), RolloutId("shop-1")
    decision = {
        "decision": "rollback",
        "policies": ["kpi"],
        "breaching": [],
        "state": "progressing",
        "traffic": 100,
    }
    move = {
        "seq": 4,
        "trigger": "rollback",
        "from": "progressing",
        "to": "rolling_back",
        "traffic": 0,
        "previous_traffic": 100,
        "actor": "tidegate",
        "reason": "rollback: kpi",
        "bake": None,
        "operations": [{"target": "flag", "operation": "disable", "key": "shop-1/4/flag/disable/"}],
    }
    answer = {"target": "flag", "operation": "disable", "outcome": "applied", "key": "shop-1/4/flag/disable/"}
    done = {"seq": 5, "trigger": "complete", "to": "rolled_back", "traffic": 0, "actor": "tidegate"}
    messages = [
        m
        for details, kind in (
            (decision, "decision"),
            (move, "transition"),
            (answer, "action"),
            (done, "transition"),
        )
        for m in composer.compose(Event(START, kind, rollout, "", details))
    ]
    assert [m.kind for m in messages] == [MessageKind.MITIGATION, MessageKind.RESOLVED]
    assert messages[0].fields["why"] == "rollback: kpi"
    assert messages[1].fields["root_cause"] == "rollback: kpi"
