"""The `webhook` target against a real receiver on loopback that verifies every signature.

Each operation, already-done on repeat (by Idempotency-Key, by observing first, by 208/409),
each error class, a crash between intent and result finished by the real Reconciler, units
traps in the observed state, and no secret value in errors, logs, journal or audit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adapters.actuators.base import Actuator, AlreadyDone, Applied, Observed, Refused, Result
from adapters.actuators.registry import build_actuator, capabilities_of
from adapters.actuators.webhook import Webhook, WebhookSettings
from adapters.errors import AuthFailed, ConfigError, Permanent, Precondition, RateLimited, Transient
from adapters.http import RetryPolicy
from controller.bootstrap import live_rollout
from controller.core.model import RolloutId, RolloutStatus, State
from controller.runtime import AUTOMATIC, LiveRollout, Reconciler
from controller.spec import load_rollout
from controller.store.base import AuditDraft, RolloutRecord
from controller.store.sqlite import SqliteStore
from policies.evaluator import Evaluator
from policies.operations import Op, Operation
from tests.fakes.server import Reply
from tests.fakes.webhook import FakeReceiver

SIGNING_SECRET = "whsec-7f3a9c1e5b2d8f40"
TOKEN = "tok-51c0ffee-deadbeef-9a8b"
ENV = {"HOOK_SECRET": SIGNING_SECRET, "HOOK_TOKEN": TOKEN}
NOW = 1_790_000_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReceiver]:
    # One receiver for the module, reset before each test: stopping one takes 0.5 s.
    with FakeReceiver(secret=SIGNING_SECRET, token=TOKEN) as fake:
        yield fake


@pytest.fixture
def receiver(server: FakeReceiver) -> FakeReceiver:
    server.forget()
    server.clock = lambda: NOW
    return server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


def webhook(
    receiver: FakeReceiver,
    client: httpx.Client,
    *,
    name: str = "router",
    observe: bool = False,
    env: dict[str, str] | None = None,
    waits: list[float] | None = None,
    **settings: object,
) -> Webhook:
    fields: dict[str, object] = {
        "url": receiver.hook_url(name),
        "secret_env": "HOOK_SECRET",
        "token_env": "HOOK_TOKEN",
    }
    if observe:
        fields["state_url"] = receiver.state_url(name)
    model = WebhookSettings.model_validate(fields | settings)
    sleep = waits.append if waits is not None else _no_sleep
    retry = RetryPolicy(attempts=3)
    return Webhook(
        name, model, client, ENV if env is None else env, clock=lambda: NOW, sleep=sleep, retry=retry
    )


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected retry wait of {seconds}s")


def posts(receiver: FakeReceiver) -> list[dict[str, object]]:
    return [r.json() for r in receiver.requests if r.method == "POST"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- each operation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "field", "value"),
    [
        (Operation("router", Op.SET_TRAFFIC, traffic=10), "traffic", 10),
        (Operation("router", Op.ROLLBACK, version="1.9.0"), "version", "1.9.0"),
        (Operation("router", Op.PAUSE), "paused", True),
        (Operation("router", Op.DISABLE), "enabled", False),
    ],
)
def test_each_operation_is_posted_signed_and_takes_effect(
    receiver: FakeReceiver, client: httpx.Client, operation: Operation, field: str, value: object
) -> None:
    result = webhook(receiver, client).apply(operation, "r1/3/router/op/x")

    assert isinstance(result, Applied)
    assert result.detail == f"{operation.describe()}: done: {operation.op.value}"
    assert getattr(receiver.target("router"), field) == value
    assert posts(receiver) == [
        {
            "target": "router",
            "operation": operation.op.value,
            "traffic": operation.traffic,
            "version": operation.version,
            "key": "r1/3/router/op/x",
            "sent_at": "2026-09-21T14:13:20Z",
        }
    ]


def test_resume_and_enable_undo_pause_and_disable(receiver: FakeReceiver, client: httpx.Client) -> None:
    target = webhook(receiver, client)
    for op, key in [(Op.PAUSE, "k1"), (Op.DISABLE, "k2"), (Op.RESUME, "k3"), (Op.ENABLE, "k4")]:
        assert isinstance(target.apply(Operation("router", op), key), Applied)
    state = receiver.target("router")
    assert (state.paused, state.enabled) == (False, True)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_raw_body(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    webhook(receiver, client).apply(Operation("router", Op.SET_TRAFFIC, traffic=50), "key-1")

    request = receiver.requests[-1]
    assert request.headers["x-tidegate-timestamp"] == str(int(NOW))
    signed = f"{int(NOW)}.".encode() + request.body
    digest = hmac.new(SIGNING_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert request.headers["x-tidegate-signature"] == f"sha256={digest}"
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert (
        request.body == json.dumps(json.loads(request.body), sort_keys=True, separators=(",", ":")).encode()
    )


def test_a_receiver_with_another_secret_rejects_the_signature_as_auth_failed(client: httpx.Client) -> None:
    with FakeReceiver(secret="another-secret") as other:
        target = webhook(other, client, token_env=None)
        with pytest.raises(AuthFailed, match="bad signature"):
            target.apply(Operation("router", Op.PAUSE), "k")
        assert len(other.requests) == 1  # never retried


def test_a_replayed_request_with_an_old_timestamp_is_rejected(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    receiver.clock = lambda: NOW + 3600  # the same signed request, an hour later

    with pytest.raises(AuthFailed, match="signature timestamp too old"):
        webhook(receiver, client).apply(Operation("router", Op.PAUSE), "k")


def test_without_secret_env_or_token_env_nothing_is_signed_or_authorised(client: httpx.Client) -> None:
    with FakeReceiver() as open_receiver:
        target = webhook(open_receiver, client, secret_env=None, token_env=None, env={})
        assert isinstance(target.apply(Operation("router", Op.PAUSE), "k"), Applied)
        headers = open_receiver.requests[0].headers
    assert not {"x-tidegate-signature", "x-tidegate-timestamp", "authorization"} & set(headers)


def test_the_url_is_used_exactly_as_written(client: httpx.Client) -> None:
    with FakeReceiver() as open_receiver:
        open_receiver.route("POST", r"/deploy/hook/", lambda request: Reply(204))
        settings = WebhookSettings(url=f"{open_receiver.url}/deploy/hook/?team=web&env=prod")
        target = Webhook("router", settings, client, {}, clock=lambda: NOW)
        assert isinstance(target.apply(Operation("router", Op.PAUSE), "k"), Applied)
        request = open_receiver.requests[0]
    assert (request.path, request.query) == ("/deploy/hook/", {"team": ["web"], "env": ["prod"]})


# --- already done ---------------------------------------------------------------------------


def test_the_same_key_again_is_already_done_and_applied_once(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    target = webhook(receiver, client)
    operation = Operation("router", Op.SET_TRAFFIC, traffic=10)

    first, second = target.apply(operation, "k"), target.apply(operation, "k")

    assert isinstance(first, Applied)
    assert second == AlreadyDone("receiver answered 208: set_traffic(10%): already processed")
    assert len(receiver.applied) == 1


def test_observing_first_sends_nothing_when_the_target_is_already_there(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    receiver.target("router").version = "1.9.0"

    result = webhook(receiver, client, observe=True).apply(
        Operation("router", Op.ROLLBACK, version="1.9.0"), "k"
    )

    assert result == AlreadyDone("already rollback(to 1.9.0) (observed)")
    assert posts(receiver) == []


@pytest.mark.parametrize("status", [208, 409])
def test_a_receiver_answering_208_or_409_means_already_done(
    receiver: FakeReceiver, client: httpx.Client, status: int
) -> None:
    receiver.inject(Reply(status, {"detail": "seen this key"}))

    result = webhook(receiver, client).apply(Operation("router", Op.PAUSE), "k")

    assert result == AlreadyDone(f"receiver answered {status}: pause: seen this key")


def test_a_lost_answer_is_retried_with_the_same_key_and_lands_once(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    receiver.lose_answers = 1
    waits: list[float] = []

    result = webhook(receiver, client, waits=waits).apply(Operation("router", Op.DISABLE), "k")

    assert isinstance(result, AlreadyDone)
    assert len(receiver.applied) == 1
    assert [r.headers["idempotency-key"] for r in receiver.requests] == ["k", "k"]
    assert len(waits) == 1


# --- observe ----------------------------------------------------------------------------------


def test_observe_reads_the_state_url(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.target("router").traffic = 50

    observed = webhook(receiver, client, observe=True).observe()

    assert observed == Observed(version="2.0.0", traffic=50, paused=False, enabled=True)
    assert receiver.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_without_a_state_url_observe_knows_nothing_and_asks_nobody(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    observed = webhook(receiver, client).observe()

    assert (observed.version, observed.traffic, observed.paused, observed.enabled) == (None,) * 4
    assert "no state_url" in observed.detail
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"traffic": 0.5}, "traffic: input should be a valid integer, got a number with a fractional part"),
        ({"traffic": 150}, "traffic: input should be less than or equal to 100"),
        ({"paused": "yes"}, "paused: input should be a valid boolean"),
        (["not", "an", "object"], "input should be an object"),
    ],
)
def test_a_state_in_the_wrong_units_or_shape_is_a_permanent_error(
    receiver: FakeReceiver, client: httpx.Client, body: object, complaint: str
) -> None:
    receiver.inject(Reply(200, body))

    with pytest.raises(Permanent, match="webhook router: GET /hooks/router/state answered") as raised:
        webhook(receiver, client, observe=True).observe()

    assert complaint in str(raised.value)


def test_a_whole_percentage_written_as_a_float_is_read(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.inject(Reply(200, {"traffic": 50.0}))

    assert webhook(receiver, client, observe=True).observe().traffic == 50


# --- refused before any request ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (Operation("router", Op.SET_TRAFFIC, traffic=10), "webhook router cannot set_traffic"),
        (Operation("other", Op.ROLLBACK, version="1"), "operation for target 'other' sent to 'router'"),
        (Operation("router", Op.ROLLBACK), "rollback needs the version"),
    ],
)
def test_an_operation_it_cannot_send_is_refused_without_a_request(
    receiver: FakeReceiver, client: httpx.Client, operation: Operation, reason: str
) -> None:
    target = webhook(receiver, client, capabilities=["rollback", "pause"])

    result = target.apply(operation, "k")

    assert isinstance(result, Refused)
    assert reason in result.reason
    assert receiver.requests == []


# --- each error class -----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [(401, AuthFailed), (403, AuthFailed)])
def test_refused_credentials_escalate_after_one_request(
    receiver: FakeReceiver, client: httpx.Client, status: int, error: type[Exception]
) -> None:
    receiver.inject(Reply(status, {"message": "revoked"}), times=5)

    with pytest.raises(error, match=rf"webhook router: POST /hooks/router → {status}: revoked"):
        webhook(receiver, client).apply(Operation("router", Op.PAUSE), "k")

    assert len(receiver.requests) == 1


def test_a_wrong_token_is_auth_failed(receiver: FakeReceiver, client: httpx.Client) -> None:
    target = webhook(receiver, client, env={**ENV, "HOOK_TOKEN": "tok-wrong"})

    with pytest.raises(AuthFailed, match="token not allowed"):
        target.apply(Operation("router", Op.PAUSE), "k")


@pytest.mark.parametrize("variable", ["HOOK_SECRET", "HOOK_TOKEN"])
def test_a_missing_credential_is_auth_failed_naming_the_variable_before_any_request(
    receiver: FakeReceiver, client: httpx.Client, variable: str
) -> None:
    env = {k: v for k, v in ENV.items() if k != variable}

    with pytest.raises(AuthFailed, match=f"environment variable {variable} is not set"):
        webhook(receiver, client, env=env).apply(Operation("router", Op.PAUSE), "k")

    assert receiver.requests == []


@pytest.mark.parametrize("status", [412, 423])
def test_a_failed_precondition_is_a_precondition(
    receiver: FakeReceiver, client: httpx.Client, status: int
) -> None:
    receiver.inject(Reply(status, {"message": "deploy freeze"}))

    with pytest.raises(Precondition, match="deploy freeze"):
        webhook(receiver, client).apply(Operation("router", Op.PAUSE), "k")


def test_a_rate_limit_is_waited_out_as_the_receiver_asks(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    receiver.inject(Reply(429, {"message": "slow down"}, {"Retry-After": "4"}))
    waits: list[float] = []

    result = webhook(receiver, client, waits=waits).apply(Operation("router", Op.PAUSE), "k")

    assert isinstance(result, Applied)
    assert waits == [4.0]


def test_rate_limited_to_the_cap_is_rate_limited(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.inject(Reply(429, {"message": "slow down"}, {"Retry-After": "4"}), times=3)

    with pytest.raises(RateLimited):
        webhook(receiver, client, waits=[]).apply(Operation("router", Op.PAUSE), "k")


def test_server_errors_are_retried_then_transient(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.inject(Reply(502, {"message": "bad gateway"}), times=3)
    waits: list[float] = []

    with pytest.raises(Transient, match="502: bad gateway"):
        webhook(receiver, client, waits=waits).apply(Operation("router", Op.PAUSE), "k")

    assert (len(receiver.requests), len(waits)) == (3, 2)
    assert receiver.applied == []


def test_a_slow_receiver_times_out_as_transient(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.inject(Reply(200, delay=1.0), times=3)

    with pytest.raises(Transient, match="timed out"):
        webhook(receiver, client, waits=[], timeout=0.2).apply(Operation("router", Op.PAUSE), "k")


def test_an_unreachable_receiver_is_transient(client: httpx.Client) -> None:
    settings = WebhookSettings(url=f"http://127.0.0.1:{closed_port()}/hook")
    target = Webhook("router", settings, client, {}, sleep=lambda s: None, retry=RetryPolicy(attempts=2))

    with pytest.raises(Transient, match="webhook router: POST /hook failed"):
        target.apply(Operation("router", Op.PAUSE), "k")


def test_a_bad_request_is_permanent(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.inject(Reply(422, {"message": "unknown operation"}))

    with pytest.raises(Permanent, match="422: unknown operation"):
        webhook(receiver, client).apply(Operation("router", Op.PAUSE), "k")


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_echoed_by_the_receiver_are_redacted(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.inject(Reply(400, {"message": f"bad request: token={TOKEN} secret={SIGNING_SECRET}"}))

    with pytest.raises(Permanent) as raised:
        webhook(receiver, client).apply(Operation("router", Op.PAUSE), "k")

    assert str(raised.value) == "webhook router: POST /hooks/router → 400: bad request: token=*** secret=***"


def test_an_applied_detail_echoing_a_secret_is_redacted(receiver: FakeReceiver, client: httpx.Client) -> None:
    receiver.inject(Reply(200, {"detail": f"ok, {TOKEN}"}))

    result = webhook(receiver, client).apply(Operation("router", Op.PAUSE), "k")

    assert result == Applied("pause: ok, ***")


# --- through the real Reconciler: journal, crash, recovery ------------------------------------


class Crash(BaseException):
    """The process dying right after the receiver applied the operation: no result journaled."""


@dataclass
class DiesAfterLanding:
    inner: Actuator

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self.inner.capabilities

    def observe(self) -> Observed:
        return self.inner.observe()

    def apply(self, operation: Operation, key: str) -> Result:
        self.inner.apply(operation, key)
        raise Crash


@dataclass
class World:
    folder: Path
    store: SqliteStore
    rollout: LiveRollout

    def reload(self) -> LiveRollout:
        record = self.store.get_rollout(self.rollout.id)
        assert record is not None
        spec = load_rollout(str(self.folder / "rollout.yaml"))
        return live_rollout(record, spec, self.rollout.evaluator, self.folder)

    def intents(self) -> dict[str, str | None]:
        return {i.operation.target: i.outcome for i in self.store.intents(self.rollout.id)}


@pytest.fixture
def world(
    tmp_path: Path, receiver: FakeReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., World]]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    receiver.clock = time.time  # the composition root builds webhooks on the real clock
    stores: list[SqliteStore] = []

    def make(*, observe: bool) -> World:
        targets = ""
        for name in ("edge", "billing"):
            settings = {
                "url": receiver.hook_url(name),
                "secret_env": "HOOK_SECRET",
                "token_env": "HOOK_TOKEN",
            }
            if observe:
                settings["state_url"] = receiver.state_url(name)
            targets += f"  - name: {name}\n    kind: webhook\n    settings: {json.dumps(settings)}\n"
        (tmp_path / "rollout.yaml").write_text(
            'apiVersion: tidegate/v1\nkind: Rollout\nmetadata: {name: shop}\nversion: "2.0.0"\n'
            'previousVersion: "1.9.0"\npolicies: [library:runbook]\ntargets:\n' + targets,
            encoding="utf-8",
        )
        spec = load_rollout(str(tmp_path / "rollout.yaml"))
        store = SqliteStore(tmp_path / "state.db")
        stores.append(store)
        status = RolloutStatus(State.PROGRESSING, 100, 2, NOW)
        record = RolloutRecord(RolloutId("shop-1"), spec.name, spec.model_dump_json(), status, NOW)
        store.create_rollout(record, AuditDraft(NOW, AUTOMATIC, "created", record.id, {}))
        rollout = live_rollout(record, spec, Evaluator([], start=NOW, kinds={}), tmp_path)
        return World(tmp_path, store, rollout)

    yield make
    for store in stores:
        store.close()


@pytest.mark.parametrize("observe", [False, True], ids=["by-idempotency-key", "by-observing"])
def test_a_crash_between_intent_and_result_is_finished_without_applying_twice(
    world: Callable[..., World], receiver: FakeReceiver, observe: bool
) -> None:
    w = world(observe=observe)
    w.rollout.actuators["edge"] = DiesAfterLanding(w.rollout.actuators["edge"])
    with pytest.raises(Crash):
        Reconciler(w.store, attempts=1).manual(
            w.rollout, "rollback", NOW, actor="alice", reason="bad release"
        )
    assert w.store.unfinished_intents(w.rollout.id) != []

    restarted = w.reload()
    Reconciler(w.store, attempts=1).recover(restarted, NOW + 30)

    assert w.intents()["edge"] == "already_done"
    assert restarted.status.state is State.ROLLED_BACK
    assert [p["target"] for p in receiver.applied].count("edge") == 1
    assert receiver.target("edge").version == "1.9.0"
    assert receiver.target("billing").version == "1.9.0"


def test_no_secret_reaches_the_journal_the_audit_log_or_the_logs(
    world: Callable[..., World],
    receiver: FakeReceiver,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    w = world(observe=False)
    receiver.answers["billing"] = lambda request: Reply(
        400, {"message": f"refusing {request.headers.get('authorization')} {SIGNING_SECRET}"}
    )

    Reconciler(w.store, attempts=1).manual(w.rollout, "rollback", NOW, actor="alice", reason="bad release")

    assert w.intents() == {"edge": "applied", "billing": "failed"}
    journal = " ".join(f"{i.detail}" for i in w.store.intents(w.rollout.id))
    audit = " ".join(e.payload_json for e in w.store.audit_log(w.rollout.id))
    assert "refusing Bearer *** ***" in journal
    raw = (tmp_path / "state.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("state.db-*"))
    for value in (TOKEN, SIGNING_SECRET):
        assert value not in journal
        assert value not in audit
        assert value not in caplog.text
        assert value.encode() not in raw


# --- settings ---------------------------------------------------------------------------------


def test_the_registry_builds_it_and_reads_capabilities_from_settings(tmp_path: Path) -> None:
    settings = {"url": "https://hooks.example.com/t", "capabilities": ["rollback", "pause"]}

    actuator = build_actuator("webhook", "router", settings, state_dir=tmp_path, env={})

    assert isinstance(actuator, Webhook)
    assert actuator.capabilities == capabilities_of("webhook", settings) == {Op.ROLLBACK, Op.PAUSE}
    assert capabilities_of("webhook", {"url": "http://x"}) == frozenset(Op)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"url": "https://x", "secret": "abc"}, "unknown setting 'secret' (did you mean 'secret_env'?"),
        ({"url": "ftp://x"}, "url: "),
        ({}, "url: field required"),
        ({"url": "https://x", "token_env": "my token"}, "token_env: "),
        ({"url": "https://x", "capabilities": []}, "capabilities: "),
        ({"url": "https://x", "capabilities": ["halt"]}, "capabilities[0]: expected 'set_traffic'"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_field(settings: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        capabilities_of("webhook", settings)
    assert complaint in str(raised.value)


def test_it_names_the_variables_its_credentials_come_from() -> None:
    settings = WebhookSettings(url="https://x", secret_env="A_SECRET", token_env="A_TOKEN")
    assert settings.secret_variables() == ("A_SECRET", "A_TOKEN")
    assert WebhookSettings(url="https://x").secret_variables() == ()


def test_a_retry_long_after_the_first_attempt_is_signed_afresh(
    receiver: FakeReceiver, client: httpx.Client
) -> None:
    """The first attempt meets a 503; the retry goes out 10 minutes later, past the
    receiver's replay tolerance. Signed once, the retry would be rejected as a replay."""
    now = [NOW]

    def wait(seconds: float) -> None:
        now[0] += 600.0  # a long backoff (or Retry-After): the signed timestamp ages

    receiver.clock = lambda: now[0]
    receiver.inject(Reply(503, {"message": "busy"}), times=1)
    target = Webhook(
        "router",
        WebhookSettings.model_validate(
            {"url": receiver.hook_url("router"), "secret_env": "HOOK_SECRET", "token_env": "HOOK_TOKEN"}
        ),
        client,
        ENV,
        clock=lambda: now[0],
        sleep=wait,
        retry=RetryPolicy(attempts=3),
    )

    result = target.apply(Operation("router", Op.PAUSE), "k")

    assert isinstance(result, Applied), result
    stamps = [r.headers["x-tidegate-timestamp"] for r in receiver.requests if r.method == "POST"]
    assert stamps == [str(int(NOW)), str(int(NOW + 600))]
    assert [p["key"] for p in posts(receiver)] == ["k", "k"]  # the same operation, the same key
