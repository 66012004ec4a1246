"""The runtime's events carry their facts as data (`Event.details`), so notifiers and the API
never parse the timeline's text: a real step-down, rollback and failed actuation."""

from __future__ import annotations

from pathlib import Path

from controller.runtime import Event, Reconciler
from tests.notify_helpers import START, shop, target


def test_a_decision_names_its_policies_with_the_values_conditions_and_streak_starts(tmp_path: Path) -> None:
    events: list[Event] = []
    with shop(tmp_path) as world:
        world.tick(Reconciler(world.store, events.append, backoff=0.001), 1, latency=3.5)
    (decision,) = [e for e in events if e.kind == "decision"]
    assert decision.details == {
        "decision": "step_down",
        "policies": ["latency"],
        "breaching": ["latency"],
        "no_data": [],
        "values": {"latency": 3.5},
        "conditions": {"latency": "latency > 1"},
        "since": {"latency": START + 60},
        "state": "progressing",
        "traffic": 100,
        "seq": 0,
    }


def test_a_transition_and_its_actions_share_the_journal_keys(tmp_path: Path) -> None:
    events: list[Event] = []
    with shop(tmp_path) as world:
        world.tick(Reconciler(world.store, events.append, backoff=0.001), 1, latency=3.5)
    (move,) = [e for e in events if e.kind == "transition"]
    actions = [e for e in events if e.kind == "action"]
    assert {k: move.details[k] for k in ("seq", "trigger", "from", "to", "traffic", "previous_traffic")} == {
        "seq": 1,
        "trigger": "step_down",
        "from": "progressing",
        "to": "stepping_down",
        "traffic": 50,
        "previous_traffic": 100,
    }
    assert (move.details["actor"], move.details["reason"], move.details["bake"]) == (
        "tidegate",
        "step_down: latency",
        1200.0,  # the 50% down step bakes 20m
    )
    planned = move.details["operations"]
    assert isinstance(planned, list)
    assert sorted(str(op["key"]) for op in planned) == sorted(str(a.details["key"]) for a in actions)
    assert {a.details["target"]: a.details["outcome"] for a in actions} == {
        "flag": "applied",
        "web": "applied",
    }


def test_a_failed_actuation_pages_with_the_reason_as_data(tmp_path: Path) -> None:
    events: list[Event] = []
    with shop(tmp_path, target("flag", "launchdarkly", fail_always=True)) as world:
        world.tick(Reconciler(world.store, events.append, attempts=2, backoff=0.001), 1, errors=1.0)
    (page,) = [e for e in events if e.kind == "page"]
    assert page.details["target"] is None and page.details["seq"] == 2
    assert str(page.details["reason"]).startswith(
        "actuation failed after retries: flag: gave up after 2 attempts"
    )
    (action,) = [e for e in events if e.kind == "action"]
    assert action.details["outcome"] == "failed"
