"""The `webhook` notifier: JSON with the message's fields and text, signed exactly like
tidegate's generic incoming webhooks, so a receiver verifies it with
`adapters.sources.webhooks.verify_generic` — replay guard included, which is why every retry
is signed anew (in a later second, with a new timestamp)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.sources.webhooks import ReplayGuard, WebhookError, verify_generic
from controller.notify import Dispatcher, WebhookSpec, build_dispatcher
from controller.runtime import Reconciler
from tests.fakes.clock import FakeClock
from tests.fakes.server import FakeVendor, Reply, Request
from tests.notify_helpers import START, shop

SECRET = "whsec-notify-0123456789"


class Receiver(FakeVendor):
    """A receiver as docs/notifications.md suggests writing one: verify (replay guard and all)
    with verify_generic, then process; `fail_next` makes processing fail with a 500 after the
    signature was checked and remembered — the hard case for a retry."""

    def __init__(self, clock: FakeClock, secret: str | None = SECRET) -> None:
        super().__init__()
        self.clock, self.secret = clock, secret
        self.guard = ReplayGuard()
        self.accepted: list[dict[str, Any]] = []
        self.fail_next = 0
        self.route("POST", r"/hooks/tidegate", self.hook)

    def hook(self, request: Request) -> Reply:
        if self.secret is not None:
            try:
                (event,) = verify_generic(
                    request.headers, request.body, self.secret, self.clock(), self.guard
                )
            except WebhookError as error:
                return Reply(401, {"message": str(error)})
            assert event.id == request.json()["id"] and event.signal == "tidegate"
        if self.fail_next:
            self.fail_next -= 1
            return Reply(500, {"message": "database unavailable"})
        self.accepted.append(request.json())
        return Reply(204)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def receiver(clock: FakeClock) -> Iterator[Receiver]:
    with Receiver(clock) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def dispatcher_for(url: str, client: httpx.Client, clock: FakeClock, **fields: Any) -> Dispatcher:
    spec = WebhookSpec.model_validate(
        {"kind": "webhook", "name": "bridge", "url": f"{url}/hooks/tidegate", "secret_env": "BRIDGE_SECRET"}
        | fields
    )
    return build_dispatcher([spec], {"BRIDGE_SECRET": SECRET}, client, sleep=clock.sleep, clock=clock)


def roll_back(folder: Path, dispatcher: Dispatcher) -> None:
    with shop(folder) as world:
        world.tick(Reconciler(world.store, dispatcher, backoff=0.001), 1, errors=1.0)
    dispatcher.close(timeout=10)


def test_every_delivery_verifies_with_verify_generic_and_carries_the_message_as_data(
    receiver: Receiver, client: httpx.Client, clock: FakeClock, tmp_path: Path
) -> None:
    dispatcher = dispatcher_for(receiver.url, client, clock)
    roll_back(tmp_path, dispatcher)

    assert [body["kind"] for body in receiver.accepted] == ["start", "mitigation", "resolved"]
    start, mitigation, resolved = receiver.accepted
    assert start["id"] == start["rollout"] + "/" + "start/errors@" + str(START + 60)
    assert start["timestamp"] == "2026-09-21T14:14:20Z"
    assert start["text"].startswith("[shop-1] P1 – Investigating. Symptom: errors (errors > 0.5, now 1).")
    assert start["fields"]["symptom"] == "errors (errors > 0.5, now 1)"
    assert start["details"]["values"] == {"errors": 1.0}
    assert mitigation["details"]["to"] == "rolling_back"
    assert [r["outcome"] for r in mitigation["details"]["results"]] == ["applied", "applied"]
    assert resolved["fields"]["outcome"] == "every target rolled back"
    for request in receiver.requests:
        assert request.headers["idempotency-key"] == json.loads(request.body)["id"]
    assert dispatcher.counters()["bridge"].sent == 3


def test_a_retry_is_signed_anew_so_a_receiver_that_remembers_signatures_accepts_it(
    receiver: Receiver, client: httpx.Client, clock: FakeClock, tmp_path: Path
) -> None:
    receiver.fail_next = 1  # the start's first delivery: verified (signature remembered), then a 500
    dispatcher = dispatcher_for(receiver.url, client, clock)
    roll_back(tmp_path, dispatcher)

    assert [body["kind"] for body in receiver.accepted] == ["start", "mitigation", "resolved"]
    first, retry = receiver.requests[:2]
    assert json.loads(first.body)["id"] == json.loads(retry.body)["id"]  # the same message …
    assert first.headers["x-tidegate-signature"] != retry.headers["x-tidegate-signature"]  # … signed anew
    assert int(retry.headers["x-tidegate-timestamp"]) > int(first.headers["x-tidegate-timestamp"])
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 1.0
    assert dispatcher.counters()["bridge"].sent == 3


def test_a_receiver_refusing_the_signature_is_a_failure_at_once(
    client: httpx.Client, clock: FakeClock, tmp_path: Path
) -> None:
    with Receiver(clock, secret="another-secret-entirely") as receiver:
        dispatcher = dispatcher_for(receiver.url, client, clock)
        roll_back(tmp_path, dispatcher)
        assert len(receiver.requests) == 3  # 401: not retried
    assert dispatcher.counters()["bridge"].failed == 3
    assert clock.sleeps == []


def test_without_secret_env_deliveries_are_not_signed(
    client: httpx.Client, clock: FakeClock, tmp_path: Path
) -> None:
    with Receiver(clock, secret=None) as receiver:
        spec = WebhookSpec.model_validate(
            {"kind": "webhook", "name": "bridge", "url": f"{receiver.url}/hooks/tidegate", "on": ["resolved"]}
        )
        dispatcher = build_dispatcher([spec], {}, client, sleep=clock.sleep, clock=clock)
        roll_back(tmp_path, dispatcher)
        (request,) = receiver.requests
    assert "x-tidegate-signature" not in request.headers
    assert json.loads(request.body)["kind"] == "resolved"


def test_the_signing_secret_never_appears_in_a_log_record(
    receiver: Receiver,
    client: httpx.Client,
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    receiver.inject(Reply(400, {"message": f"we echo what you sent: {SECRET}"}))
    dispatcher = dispatcher_for(receiver.url, client, clock)
    roll_back(tmp_path, dispatcher)
    assert dispatcher.counters()["bridge"].failed == 1
    logged = [r.getMessage() for r in caplog.records]
    assert any("we echo what you sent: ***" in text for text in logged), logged
    assert not any(SECRET in text for text in logged)
