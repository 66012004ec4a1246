"""The Supabase Edge Function target against a loopback fake of the Management API.

Every exchange with the fake — the adapter's requests and the fake's answers — is checked
against Supabase's published OpenAPI document (tests/fakes/specs) when each test ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.actuators.base import AlreadyDone, Applied, Refused
from adapters.actuators.registry import BuildContext, build_actuator, capabilities_of
from adapters.actuators.supabase_functions import SupabaseFunction, SupabaseFunctionsSettings, build
from adapters.errors import AuthFailed, ConfigError, Permanent, Precondition, Transient
from adapters.ratelimit import RequestBudget
from policies.operations import Op, Operation
from tests.fakes.clock import FakeClock
from tests.fakes.openapi import OpenApi
from tests.fakes.server import Reply, Request
from tests.fakes.supabase import FakeSupabase, message

TOKEN = "sbp_5f1e0d2c3b4a59687766554433221100aabbccdd"
REF = "abcdefghijklmnopqrst"  # a project ref is exactly 20 lowercase letters
SLUG = "checkout"
V1 = b"ESZIP2\nindex.ts: serve(() => new Response('v1'))"
V2 = b"ESZIP2\nindex.ts: serve(() => new Response('v2 with the bug'))"
SPEC = OpenApi.load("supabase-management-openapi.json", undocumented_ok=frozenset({404}))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)  # 2027-01-15T08:00:00Z


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSupabase]:
    with FakeSupabase(TOKEN) as started:
        assert isinstance(started, FakeSupabase)
        yield started


@pytest.fixture
def fake(server: FakeSupabase, clock: FakeClock) -> Iterator[FakeSupabase]:
    server.reset(clock)
    server.add_function(REF, SLUG, V1)
    yield server
    for request, reply in server.exchanges:  # the contract: both sides, every exchange
        SPEC.check(request, reply)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


@pytest.fixture
def budget(clock: FakeClock) -> RequestBudget:
    return RequestBudget(60, 60.0, clock=clock, sleep=clock.sleep)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def function(
    fake: FakeSupabase,
    client: httpx.Client,
    clock: FakeClock,
    state_dir: Path,
    budget: RequestBudget,
    *,
    token: str = TOKEN,
    **settings: Any,
) -> SupabaseFunction:
    merged = {"project_ref": REF, "function": SLUG, "base_url": fake.url} | settings
    context = BuildContext(state_dir, {"SUPABASE_ACCESS_TOKEN": token}, client)
    model = SupabaseFunctionsSettings.model_validate(merged)
    return build("checkout-fn", model, context, sleep=clock.sleep, clock=clock, budget=budget)


@pytest.fixture
def target(
    fake: FakeSupabase, client: httpx.Client, clock: FakeClock, state_dir: Path, budget: RequestBudget
) -> SupabaseFunction:
    return function(fake, client, clock, state_dir, budget)


def rollback(version: str) -> Operation:
    return Operation("checkout-fn", Op.ROLLBACK, version=version)


def sent(fake: FakeSupabase, method: str) -> list[Request]:
    return [request for request in fake.requests if request.method == method]


# --- capabilities and settings ------------------------------------------------------------


def test_a_function_can_only_be_rolled_back() -> None:
    assert capabilities_of("supabase-functions", {"project_ref": REF, "function": SLUG}) == {Op.ROLLBACK}


def test_a_malformed_project_ref_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError) as raised:
        capabilities_of("supabase-functions", {"project_ref": "ABC", "function": SLUG})
    assert raised.value.path == ("project_ref",)


def test_the_registry_builds_it_and_keeps_bundles_under_the_state_dir(
    fake: FakeSupabase, client: httpx.Client, state_dir: Path
) -> None:
    settings = {"project_ref": REF, "function": SLUG, "base_url": fake.url, "token_env": "SB"}
    built = build_actuator(
        "supabase-functions", "fn", settings, state_dir=state_dir, env={"SB": TOKEN}, http=client
    )
    assert built.observe().version == "1"
    saved = list((state_dir / "supabase-functions" / REF / SLUG / "bundles").iterdir())
    assert [path.read_bytes() for path in saved] == [V1]


def test_a_missing_token_variable_is_named_never_valued(state_dir: Path) -> None:
    with pytest.raises(AuthFailed, match="environment variable SUPABASE_ACCESS_TOKEN is not set"):
        build_actuator(
            "supabase-functions", "fn", {"project_ref": REF, "function": SLUG}, state_dir=state_dir, env={}
        )


# --- observe and save_current -------------------------------------------------------------


def test_observe_saves_a_version_it_has_not_seen_and_names_it_by_its_supabase_number(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    observed = target.observe()
    assert observed.version == "1"
    # updated_at is epoch MILLISECONDS: read as seconds it would be the year 57000-something
    assert observed.detail.startswith(
        "Supabase version 1 (ACTIVE, updated 2027-01-15T08:00:00Z), bundle sha256 "
    )
    assert (
        target.store.path(target.store.carried_by(fake.function(REF, SLUG)["id"], 1) or "").read_bytes() == V1
    )
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == [SLUG, "body", SLUG]
    target.observe()
    assert len(fake.requests) == 4  # a version already saved costs one request


def test_save_current_names_the_deployed_bundle(fake: FakeSupabase, target: SupabaseFunction) -> None:
    saved = target.save_current("v1")
    assert (saved.version, saved.supabase_version, saved.path.read_bytes()) == ("v1", 1, V1)
    assert target.observe().version == "v1"


def test_without_save_on_observe_observe_only_reads_the_function(
    fake: FakeSupabase, client: httpx.Client, clock: FakeClock, state_dir: Path, budget: RequestBudget
) -> None:
    observed = function(fake, client, clock, state_dir, budget, save_on_observe=False).observe()
    assert observed.version == "1"
    assert observed.detail.endswith("bundle not saved")
    assert len(fake.requests) == 1


# --- rollback -----------------------------------------------------------------------------


def test_rollback_redeploys_the_saved_bundle_as_a_new_higher_version(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    target.save_current("v1")
    fake.release(REF, SLUG, V2)  # CI deploys the new release: version 2
    result = target.apply(rollback("v1"), "r1/3/checkout-fn/rollback/v1")
    assert result == Applied("redeployed the saved bundle of v1 as Supabase version 3")
    assert fake.bundle(REF, SLUG) == V1
    assert fake.function(REF, SLUG)["version"] == 3
    (patch,) = sent(fake, "PATCH")
    assert patch.headers["content-type"] == "application/vnd.denoland.eszip"
    assert patch.body == V1
    assert {k: v[0] for k, v in patch.query.items()} == {
        "entrypoint_path": "index.ts",
        "import_map": "false",
        "verify_jwt": "true",
    }
    assert target.observe().version == "v1"


def test_rollback_again_is_already_done_by_content_although_the_number_moved_on(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    target.save_current("v1")
    fake.release(REF, SLUG, V2)
    target.apply(rollback("v1"), "k1")
    result = target.apply(rollback("v1"), "k1")
    assert isinstance(result, AlreadyDone)
    assert "already runs the bundle of v1" in result.detail
    assert len(sent(fake, "PATCH")) == 1
    assert fake.function(REF, SLUG)["version"] == 3


def test_a_crash_after_the_redeploy_finds_it_done_by_content_on_restart(
    fake: FakeSupabase,
    client: httpx.Client,
    clock: FakeClock,
    state_dir: Path,
    budget: RequestBudget,
    target: SupabaseFunction,
) -> None:
    target.save_current("v1")
    fake.release(REF, SLUG, V2)
    target.observe()  # version 2 recorded

    class Crash(Exception):
        pass

    def die(*args: object) -> None:
        raise Crash

    dying = function(fake, client, clock, state_dir, budget)
    dying.store.record = die  # type: ignore[method-assign,assignment]  # killed after the PATCH, before any record
    with pytest.raises(Crash):
        dying.apply(rollback("v1"), "k1")
    assert fake.function(REF, SLUG)["version"] == 3
    restarted = function(fake, client, clock, state_dir, budget)
    assert isinstance(restarted.apply(rollback("v1"), "k1"), AlreadyDone)  # version 3 unknown: hashed
    assert len(sent(fake, "PATCH")) == 1
    assert fake.function(REF, SLUG)["version"] == 3


def test_rollback_to_a_version_never_saved_is_refused_without_a_request(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    result = target.apply(rollback("v0"), "k1")
    assert isinstance(result, Refused)
    assert "no saved bundle for version 'v0'" in result.reason
    assert "save_current()" in result.reason
    assert fake.requests == []


def test_rollback_to_a_supabase_number_that_observe_saved(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    target.observe()  # saves version 1 unnamed
    fake.release(REF, SLUG, V2)
    assert isinstance(target.apply(rollback("1"), "k1"), Applied)
    assert fake.bundle(REF, SLUG) == V1


def test_a_release_deployed_after_a_rollback_is_told_apart_by_content(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    target.save_current("v1")
    fake.release(REF, SLUG, V2)
    target.apply(rollback("v1"), "k1")
    fake.release(REF, SLUG, V2)  # someone deploys the bad release again: version 4
    assert isinstance(target.apply(rollback("v1"), "k2"), Applied)
    assert fake.function(REF, SLUG)["version"] == 5
    assert fake.bundle(REF, SLUG) == V1


def test_a_recreated_function_does_not_inherit_the_old_version_records(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    target.save_current("v1")  # id A, version 1 = V1
    fake.functions.clear()
    fake.add_function(REF, SLUG, V2)  # deleted and created again: id B, version 1 = V2
    assert target.observe().version == "1"  # not "v1": another function's version 1
    assert isinstance(target.apply(rollback("v1"), "k1"), Applied)
    assert fake.bundle(REF, SLUG) == V1


def test_a_corrupt_saved_bundle_is_permanent(fake: FakeSupabase, target: SupabaseFunction) -> None:
    saved = target.save_current("v1")
    fake.release(REF, SLUG, V2)
    saved.path.write_bytes(b"truncated")
    with pytest.raises(Permanent, match="is corrupt"):
        target.apply(rollback("v1"), "k1")
    assert sent(fake, "PATCH") == []


def test_an_operation_it_cannot_do_is_refused_without_a_request(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    result = target.apply(Operation("checkout-fn", Op.SET_TRAFFIC, traffic=50), "k1")
    assert result == Refused("supabase-functions target 'checkout-fn' cannot set_traffic")
    assert fake.requests == []


# --- errors -------------------------------------------------------------------------------


def test_a_bad_token_is_auth_failed_at_once_without_retry(
    fake: FakeSupabase, client: httpx.Client, clock: FakeClock, state_dir: Path, budget: RequestBudget
) -> None:
    with pytest.raises(AuthFailed, match="401: Unauthorized"):
        function(fake, client, clock, state_dir, budget, token="sbp_wrong").observe()
    assert len(fake.requests) == 1


def test_an_unknown_function_is_permanent(
    fake: FakeSupabase, client: httpx.Client, clock: FakeClock, state_dir: Path, budget: RequestBudget
) -> None:
    with pytest.raises(Permanent, match="404: Function not found"):
        function(fake, client, clock, state_dir, budget, function="nope").observe()
    assert len(fake.requests) == 1


def test_a_conflict_on_the_redeploy_is_a_precondition_not_retried(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    target.save_current("v1")
    fake.release(REF, SLUG, V2)
    target.observe()
    fake.inject(Reply(200, fake.function(REF, SLUG)))  # the GET before it, answered as usual
    fake.inject(message(409, "Function is being updated"))  # then the PATCH
    with pytest.raises(Precondition, match="409: Function is being updated"):
        target.apply(rollback("v1"), "k1")
    assert len(sent(fake, "PATCH")) == 1
    assert fake.bundle(REF, SLUG) == V2


def test_server_errors_are_retried_with_backoff(
    fake: FakeSupabase, clock: FakeClock, target: SupabaseFunction
) -> None:
    fake.inject(message(500, "Failed to retrieve function with given slug"), times=2)
    assert target.observe().version == "1"
    assert len(clock.sleeps) == 2


def test_server_errors_that_persist_are_transient_after_capped_attempts(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    fake.inject(message(503, "unavailable"), times=10)
    with pytest.raises(Transient, match="503: unavailable"):
        target.observe()
    assert len(fake.requests) == 4


def test_a_429_blocks_for_the_minute_the_reset_header_says_then_succeeds(
    fake: FakeSupabase, client: httpx.Client, clock: FakeClock, target: SupabaseFunction
) -> None:
    target.observe()  # 3 requests
    for _ in range(58):  # another process of the same user spends the rest of the minute's 60, and one more
        client.get(f"{fake.url}/v1/projects/{REF}/functions", headers={"Authorization": f"Bearer {TOKEN}"})
    assert fake.throttled == 1  # the 61st request went over: the user is blocked for a minute
    started = clock()
    assert target.observe().version == "1"
    assert clock() - started == pytest.approx(60.0)
    assert fake.throttled == 2  # ours was refused once and then waited, not hammered


def test_the_budget_keeps_every_minute_under_60_requests(
    fake: FakeSupabase, target: SupabaseFunction
) -> None:
    for _ in range(200):
        target.observe()
    counted = fake.counted
    assert len(counted) == 3 + 199 and fake.throttled == 0
    assert all(later - earlier >= 60.0 for earlier, later in zip(counted, counted[60:], strict=False))
    assert counted[-1] - counted[0] >= 60.0 * (len(counted) // 60 - 1)


def test_two_functions_of_one_user_share_one_budget(
    fake: FakeSupabase, client: httpx.Client, clock: FakeClock, state_dir: Path, budget: RequestBudget
) -> None:
    fake.add_function(REF, "webhooks", V2)
    first = function(fake, client, clock, state_dir, budget)
    second = function(fake, client, clock, state_dir, budget, function="webhooks")
    for _ in range(70):
        first.observe()
        second.observe()
    assert fake.throttled == 0
    assert all(
        later - earlier >= 60.0 for earlier, later in zip(fake.counted, fake.counted[60:], strict=False)
    )


def test_the_token_never_appears_in_errors_or_logs(
    fake: FakeSupabase, target: SupabaseFunction, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target.save_current("v1")
    fake.release(REF, SLUG, V2)
    target.apply(rollback("v1"), "k1")
    fake.inject(message(400, f"token {TOKEN} is not valid for {REF}"))
    with pytest.raises(Permanent) as raised:
        target.observe()
    assert "***" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert caplog.records
    assert TOKEN not in caplog.text


# --- the fake itself, against the published description ---------------------------------


def test_a_ci_deploy_through_the_documented_multipart_endpoint_bumps_the_version(
    fake: FakeSupabase, client: httpx.Client
) -> None:
    answer = client.post(
        f"{fake.url}/v1/projects/{REF}/functions/deploy",
        params={"slug": SLUG},
        headers={"Authorization": f"Bearer {TOKEN}"},
        files=[
            ("metadata", (None, '{"entrypoint_path": "index.ts", "verify_jwt": false}', "application/json")),
            ("file", ("index.ts", b"serve(() => new Response('v2'))", "application/typescript")),
        ],
    )
    assert answer.status_code == 201
    assert answer.json()["version"] == 2
    assert fake.function(REF, SLUG)["verify_jwt"] is False


def test_the_contract_check_catches_an_undocumented_parameter_and_a_leaked_field() -> None:
    request = Request("GET", f"/v1/projects/{REF}/functions/{SLUG}", {"verbose": ["1"]}, {}, b"")
    assert SPEC.request_problems(request) == [
        "query parameter 'verbose' is not documented",
        "no bearer credential",
    ]
    reply = Reply(
        200, {"id": "x", "slug": SLUG, "name": SLUG, "status": "ACTIVE", "version": 1, "_bundle": "…"}
    )
    problems = SPEC.response_problems(request, reply)
    assert any("created_at" in p for p in problems)
    assert any("_bundle" in p for p in problems)
