"""The Dispatcher: a notifier that hangs or fails never slows a rollback; the same message is
sent once within the dedupe window; a full queue drops its oldest message, counted; close()
flushes and then gives up on a receiver that will not answer."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.core.model import RolloutId, State
from controller.notify import Dispatcher, SlackSpec, WebhookSpec, build_dispatcher
from controller.runtime import Event, Reconciler
from tests.fakes.server import FakeVendor, Reply, Request
from tests.fakes.slack import FakeSlack
from tests.notify_helpers import demo, shop


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def webhook(name: str, url: str, **fields: Any) -> WebhookSpec:
    return WebhookSpec.model_validate({"kind": "webhook", "name": name, "url": url} | fields)


def test_a_hanging_and_a_failing_receiver_do_not_slow_the_rollback_and_close_gives_up_on_time(
    client: httpx.Client, tmp_path: Path
) -> None:
    with FakeVendor() as hung, FakeVendor() as broken:
        hung.inject(Reply(200, {}, delay=5.0), times=100)  # answers long after our 2 s timeout
        broken.inject(Reply(500, {"message": "down"}), times=100)
        dispatcher = build_dispatcher(  # real waits between retries, real timeouts
            [webhook("hung", f"{hung.url}/hook", timeout="2s"), webhook("broken", f"{broken.url}/hook")],
            {},
            client,
        )
        with shop(tmp_path) as world:
            began = time.monotonic()
            world.tick(Reconciler(world.store, dispatcher, backoff=0.001), 1, errors=1.0)
            took = time.monotonic() - began
            assert world.rollout.status.state is State.ROLLED_BACK

        closing = time.monotonic()
        dispatcher.close(timeout=1.0)
        closed_in = time.monotonic() - closing

    # Waiting on either receiver would cost at least its 2 s timeout (or the 1 s retry wait).
    assert took < 1.0, f"the rollback took {took:.2f}s with its notifiers down"
    assert closed_in < 2.0, f"close() took {closed_in:.2f}s"
    counters = dispatcher.counters()
    assert counters["hung"].sent == counters["broken"].sent == 0
    assert counters["hung"].pending == counters["broken"].pending == 0
    assert counters["broken"].dropped >= 1  # start, mitigation, resolved: not all attempted to the end
    assert len(hung.requests) >= 1 and len(broken.requests) >= 1


def test_the_same_messages_told_again_are_sent_once_and_again_after_the_window(
    client: httpx.Client, tmp_path: Path
) -> None:
    events: list[Event] = []
    with demo(tmp_path, events.append):
        pass
    with FakeSlack() as slack:
        url = slack.hook()
        spec = SlackSpec.model_validate({"kind": "slack", "name": "ops", "webhook_url_env": "URL"})
        dispatcher = build_dispatcher([spec], {"URL": url}, client, dedupe_window=4 * 3600)
        for event in events:
            dispatcher(event)
        first = dispatcher.deduplicated
        for event in events:  # the whole rollout told again (replayed after a restart)
            dispatcher(event)
        told_again = dispatcher.deduplicated - first
        for event in events:  # …and again five hours later: past the window, news again
            dispatcher(dataclasses.replace(event, at=event.at + 5 * 3600))
        dispatcher.close(timeout=10)
        texts = slack.texts(url)

    assert first == 0 and told_again == 8  # 3 progress (not wanted by `ops`) + 5 wanted
    kinds = ["P1", "Mitigating", "Needs", "Mitigating", "Resolved"]
    assert [t.split(" ", 2)[1] for t in texts] == kinds + kinds
    assert texts[5:] != texts[:5]  # the same story, five hours later


def test_a_rollout_reloaded_after_a_restart_does_not_announce_its_incident_twice(
    client: httpx.Client, tmp_path: Path
) -> None:
    with FakeSlack() as slack:
        url = slack.hook()
        spec = SlackSpec.model_validate({"kind": "slack", "name": "ops", "webhook_url_env": "URL"})
        dispatcher = build_dispatcher([spec], {"URL": url}, client)
        with shop(tmp_path) as world:
            reconciler = Reconciler(world.store, dispatcher, backoff=0.001)
            world.tick(reconciler, 1, queue=500.0)  # a hold-level breach: investigating
            world.reload()  # its verdict forgotten: the next tick tells the decision again
            world.tick(reconciler, 2, queue=500.0)
            world.tick(reconciler, 3, queue=0.0)
        dispatcher.close(timeout=10)
        texts = slack.texts(url)
    assert [t.split(" ", 2)[1] for t in texts] == ["P1", "Resolved"], texts
    assert "signals healthy again, no traffic changed (100%)" in texts[1]


class Gate(FakeVendor):
    """A receiver that holds its first request until released."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived, self.release = threading.Event(), threading.Event()
        self.kinds: list[str] = []
        self.route("POST", r"/hook", self.hook)

    def hook(self, request: Request) -> Reply:
        self.arrived.set()
        self.release.wait(10)
        self.kinds.append(request.json()["kind"])
        return Reply(204)


def test_a_full_queue_drops_its_oldest_message_with_a_counted_warning(
    client: httpx.Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Gate() as gate:
        dispatcher = build_dispatcher([webhook("slow", f"{gate.url}/hook", queue=1)], {}, client)
        with shop(tmp_path) as world:
            reconciler = Reconciler(world.store, dispatcher, backoff=0.001)
            world.tick(reconciler, 1, queue=500.0)  # start: taken by the worker, held by the receiver
            assert gate.arrived.wait(5)
            world.tick(reconciler, 2, errors=1.0)  # mitigation, then resolved pushes it out
            waiting = dispatcher.counters()["slow"]
            assert (waiting.dropped, waiting.pending) == (1, 1)
            gate.release.set()
        dispatcher.close(timeout=10)
    assert gate.kinds == ["start", "resolved"]
    counters = dispatcher.counters()["slow"]
    assert (counters.sent, counters.dropped, counters.failed, counters.pending) == (2, 1, 0, 0)
    (warning,) = [  # (a worker of an earlier test may still be logging its give-up: not ours)
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("notifier slow:")
    ]
    assert (
        "queue full (1), dropped the oldest message (mitigation for shop-1); 1 dropped so far"
        in warning.getMessage()
    )


def test_an_event_the_notifications_cannot_handle_never_raises_into_the_reconciler(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeSlack() as slack:
        url = slack.hook()
        spec = SlackSpec.model_validate(
            {"kind": "slack", "name": "ops", "webhook_url_env": "URL", "on": ["notice"]}
        )
        dispatcher: Dispatcher = build_dispatcher([spec], {"URL": url}, client)
        notice = {
            "decision": "notify",
            "policies": ["db"],
            "breaching": ["db"],
            "state": "progressing",
            "traffic": 50,
        }
        dispatcher(Event(math.nan, "decision", RolloutId("r-1"), "notify (db)", notice))  # no time to print
        dispatcher(Event(1_790_000_000.0, "decision", RolloutId("r-2"), "notify (db)", notice))
        dispatcher.close(timeout=10)
        texts = slack.texts(url)
    assert texts == ["[r-2] Heads-up: db at 14:13 UTC. No traffic change."]
    assert any("could not handle a decision event for r-1" in r.getMessage() for r in caplog.records)
