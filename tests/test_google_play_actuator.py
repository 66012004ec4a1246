"""The Google Play target against a loopback fake of the Android Publisher API (reference/apis.md §6)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused
from adapters.actuators.google_play import (
    Change,
    GooglePlay,
    GooglePlaySettings,
    Release,
    TrackState,
    build,
    plan_change,
)
from adapters.actuators.registry import BuildContext, build_actuator, capabilities_of
from adapters.errors import AuthFailed, Permanent, Precondition, RateLimited, Transient
from adapters.http import RetryPolicy
from controller.core.plan import Intent, TargetView, plan
from policies.operations import Op, Operation
from tests.fakes.clock import FakeClock
from tests.fakes.google_play import FakeGooglePlay, google_error, schema_problems

PACKAGE, EMAIL, KEY_ID = "com.example.shop", "tidegate@shop-ci.iam.gserviceaccount.com", "3f1c0ffee"
APP = f"/androidpublisher/v3/applications/{PACKAGE}"
NEW = {"name": "2.4.0", "versionCodes": ["124"], "status": "inProgress", "userFraction": 0.1}
OLD = {"name": "2.3.9", "versionCodes": ["123"], "status": "completed"}
OLDER = {"name": "2.3.8", "versionCodes": ["122"], "status": "completed"}


def traffic(percent: int) -> Operation:
    return Operation("android-app", Op.SET_TRAFFIC, traffic=percent)


def rollback(to: str) -> Operation:
    return Operation("android-app", Op.ROLLBACK, version=to)


PAUSE, RESUME = Operation("android-app", Op.PAUSE), Operation("android-app", Op.RESUME)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account(key: rsa.RSAPrivateKey) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "shop-ci",
            "private_key_id": KEY_ID,
            "private_key": _pem(key),
            "client_email": EMAIL,
            "client_id": "1234567890",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(key: rsa.RSAPrivateKey, clock: FakeClock) -> Iterator[FakeGooglePlay]:
    with FakeGooglePlay(clock=clock) as server:
        assert isinstance(server, FakeGooglePlay)
        server.add_account(EMAIL, key.public_key(), KEY_ID, {PACKAGE})
        server.add_app(PACKAGE, {"122", "123", "124", "125"}, production=[NEW, OLD], beta=[])
        server.apps[PACKAGE].history["production"] = [OLDER]
        yield server
    assert server.violations == []  # every track body we sent matched the discovery schema


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


def actuator(
    fake: FakeGooglePlay,
    client: httpx.Client,
    clock: FakeClock,
    key: rsa.RSAPrivateKey,
    *,
    env: dict[str, str] | None = None,
    retry: RetryPolicy | None = None,
    **fields: Any,
) -> GooglePlay:
    settings = GooglePlaySettings.model_validate(
        {
            "package_name": PACKAGE,
            "service_account_env": "PLAY_KEY",
            "token_uri": f"{fake.url}/token",
            "base_url": fake.url,
        }
        | fields
    )
    context = BuildContext(Path("unused"), {"PLAY_KEY": service_account(key)} if env is None else env, client)
    return build("android-app", settings, context, sleep=clock.sleep, clock=clock, retry=retry)


@pytest.fixture
def android(
    fake: FakeGooglePlay, client: httpx.Client, clock: FakeClock, key: rsa.RSAPrivateKey
) -> GooglePlay:
    return actuator(fake, client, clock, key)


def api_calls(fake: FakeGooglePlay) -> list[str]:
    return [f"{r.method} {r.path.removeprefix(APP)}" for r in fake.requests if r.path != "/token"]


def production(fake: FakeGooglePlay) -> list[dict[str, Any]]:
    return fake.releases(PACKAGE)


# --- observe ------------------------------------------------------------------------------


def test_observe_reads_the_track_in_an_edit_it_then_deletes(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    assert android.observe() == Observed(
        version="2.4.0",
        traffic=10,
        paused=False,
        detail="production: 2.4.0 inProgress 10%; 2.3.9 completed",
    )
    edit = next(iter(fake.edits))
    assert api_calls(fake) == ["POST /edits", f"GET /edits/{edit}/tracks/production", f"DELETE /edits/{edit}"]
    assert fake.open_edits(PACKAGE) == [] and fake.commits == []


def test_a_halted_release_is_observed_as_paused_with_the_completed_release_serving(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.apps[PACKAGE].tracks["production"] = [NEW | {"status": "halted"}, OLD]
    assert android.observe() == Observed(
        version="2.3.9", traffic=0, paused=True, detail="production: 2.4.0 halted 10%; 2.3.9 completed"
    )


# --- set_traffic: userFraction --------------------------------------------------------------


def test_set_traffic_is_one_edit_transaction_insert_get_update_commit(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    assert android.apply(traffic(50), "k1") == Applied("2.4.0 inProgress 50%")
    edit = next(iter(fake.edits))
    assert api_calls(fake) == [
        "POST /edits",
        f"GET /edits/{edit}/tracks/production",
        f"PUT /edits/{edit}/tracks/production",
        f"POST /edits/{edit}:commit",
    ]
    assert fake.track_updates == [{"track": "production", "releases": [NEW | {"userFraction": 0.5}, OLD]}]
    assert schema_problems("Track", fake.track_updates[0]) == []
    assert production(fake) == [NEW | {"userFraction": 0.5}, OLD]


def test_set_traffic_to_the_current_fraction_is_already_done_without_a_commit(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    assert android.apply(traffic(10), "k1") == AlreadyDone("already 2.4.0 inProgress 10%")
    assert fake.commits == [] and fake.open_edits(PACKAGE) == []
    android.apply(traffic(50), "k2")
    assert android.apply(traffic(50), "k2") == AlreadyDone("already 2.4.0 inProgress 50%")
    assert len(fake.commits) == 1


@pytest.mark.parametrize(("percent", "fraction"), [(1, 0.01), (5, 0.05), (33, 0.33), (99, 0.99)])
def test_percent_becomes_a_user_fraction_between_0_and_1(
    android: GooglePlay, fake: FakeGooglePlay, percent: int, fraction: float
) -> None:
    android.apply(traffic(percent), "k1")
    assert production(fake)[0]["userFraction"] == pytest.approx(fraction)
    assert android.observe().traffic == percent


def test_a_fraction_play_reports_is_read_back_as_a_whole_percent(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.apps[PACKAGE].tracks["production"] = [NEW | {"userFraction": 0.333}, OLD]
    assert android.observe().traffic == 33


def test_100_percent_completes_the_release_and_supersedes_the_previous_one(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    assert android.apply(traffic(100), "k1") == Applied("completed 2.4.0 (100%)")
    assert fake.track_updates[-1] == {
        "track": "production",
        "releases": [_without_fraction(NEW, "completed")],
    }
    assert "userFraction" not in production(fake)[0]
    assert android.observe() == Observed(
        version="2.4.0", traffic=100, paused=False, detail="production: 2.4.0 completed"
    )
    assert android.apply(traffic(100), "k1") == AlreadyDone("already completed: 2.4.0 completed")


def test_0_percent_halts_since_a_fraction_must_stay_above_0(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    assert android.apply(traffic(0), "k1") == Applied("halted 2.4.0 inProgress 10%")
    assert production(fake)[0] == NEW | {"status": "halted"}


def test_a_draft_release_starts_its_staged_rollout_with_set_traffic(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    draft = {"name": "2.5.0", "versionCodes": ["125"], "status": "draft"}
    fake.apps[PACKAGE].tracks["production"] = [draft, OLD]
    assert android.observe().traffic == 0
    assert android.apply(traffic(10), "k1") == Applied("2.5.0 inProgress 10%")
    assert production(fake) == [draft | {"status": "inProgress", "userFraction": 0.1}, OLD]


def test_nothing_to_roll_out_is_refused(android: GooglePlay, fake: FakeGooglePlay) -> None:
    fake.apps[PACKAGE].tracks["production"] = [OLD]
    result = android.apply(traffic(10), "k1")
    assert result == Refused(
        "google-play: no release to roll out on production: upload it (as a draft) first"
    )
    assert fake.commits == []


def test_other_release_fields_are_sent_back_untouched(android: GooglePlay, fake: FakeGooglePlay) -> None:
    notes = {"releaseNotes": [{"language": "en-US", "text": "Faster checkout"}], "inAppUpdatePriority": 3}
    fake.apps[PACKAGE].tracks["production"] = [NEW | notes, OLD]
    android.apply(traffic(50), "k1")
    assert production(fake)[0] == NEW | notes | {"userFraction": 0.5}


# --- pause / resume ---------------------------------------------------------------------------


def test_pause_halts_and_keeps_the_fraction_then_resume_continues_it(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    android.apply(traffic(50), "k0")
    assert android.apply(PAUSE, "k1") == Applied("halted 2.4.0 inProgress 50%")
    assert production(fake)[0] == NEW | {"status": "halted", "userFraction": 0.5}
    assert android.apply(PAUSE, "k1") == AlreadyDone("already halted: 2.4.0 halted 50%")
    assert android.apply(RESUME, "k2") == Applied("resumed 2.4.0 at 50%")
    assert production(fake)[0] == NEW | {"userFraction": 0.5}
    assert android.apply(RESUME, "k2") == AlreadyDone("already rolling out: 2.4.0 inProgress 50%")
    assert len(fake.commits) == 3


def test_pause_with_nothing_being_rolled_out_has_nothing_to_do(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.apps[PACKAGE].tracks["production"] = [OLD]
    assert android.apply(PAUSE, "k1") == AlreadyDone(
        "nothing is being rolled out on production (2.3.9 completed): nothing to pause"
    )
    assert fake.commits == []


# --- rollback: halt + the previous completed release ----------------------------------------


def test_rollback_during_a_staged_rollout_halts_it_so_new_users_get_the_completed_release(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    result = android.apply(rollback("2.3.9"), "k1")
    assert result == Applied(
        "halted 2.4.0 inProgress 10% (users who installed it keep it: Play cannot downgrade);"
        " new users get 2.3.9"
    )
    assert production(fake) == [NEW | {"status": "halted"}, OLD]
    assert android.observe().version == "2.3.9"
    assert android.apply(rollback("2.3.9"), "k1") == AlreadyDone("new users already get 2.3.9")
    assert android.apply(rollback("123"), "k1") == AlreadyDone(
        "new users already get 2.3.9"
    )  # by versionCode
    assert len(fake.commits) == 1


def test_rollback_after_completion_halts_the_completed_release_and_play_serves_the_previous_again(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    android.apply(traffic(100), "k1")
    result = android.apply(rollback("2.3.9"), "k2")
    assert isinstance(result, Applied)
    assert result.detail.endswith("; new users get 2.3.9")
    assert production(fake) == [_without_fraction(NEW, "halted"), OLD]
    assert android.observe() == Observed(
        version="2.3.9", traffic=0, paused=True, detail="production: 2.4.0 halted; 2.3.9 completed"
    )
    assert android.apply(RESUME, "k3") == Applied("resumed 2.4.0 to completed")
    assert production(fake) == [_without_fraction(NEW, "completed")]


def test_rollback_to_a_version_play_does_not_serve_after_halting_is_refused_so_a_human_is_paged(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    android.apply(traffic(100), "k1")
    result = android.apply(rollback("2.3.5"), "k2")
    assert isinstance(result, Refused)
    assert "but Play now serves 2.3.9, not 2.3.5" in result.reason
    assert "as a new build with a higher versionCode" in result.reason
    assert production(fake)[0]["status"] == "halted"  # the bleeding is stopped all the same


def test_rollback_with_the_new_release_already_halted_never_halts_the_older_one_too(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.apps[PACKAGE].tracks["production"] = [NEW | {"status": "halted"}, OLD]
    result = android.apply(rollback("2.3.5"), "k1")
    assert result == Refused(
        "google-play: 2.4.0 halted 10% is not served to new users; Play serves 2.3.9, not 2.3.5:"
        " ship 2.3.5's code as a new build with a higher versionCode"
    )
    assert fake.commits == [] and production(fake) == [NEW | {"status": "halted"}, OLD]


def test_the_fake_refuses_a_percentage_where_a_fraction_belongs(
    android: GooglePlay, fake: FakeGooglePlay, client: httpx.Client
) -> None:
    android.observe()
    bearer = {"Authorization": next(r for r in fake.requests if r.path != "/token").headers["authorization"]}
    edit = client.post(f"{fake.url}{APP}/edits", json={}, headers=bearer).json()["id"]
    body = {"track": "production", "releases": [NEW | {"userFraction": 10}, OLD]}  # 10 %, not 0.1
    answer = client.put(f"{fake.url}{APP}/edits/{edit}/tracks/production", json=body, headers=bearer)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "userFraction must be in (0, 1), got 10."
    typo = {"track": "production", "releases": [OLD | {"userfraction": 0.1}]}
    answer = client.put(f"{fake.url}{APP}/edits/{edit}/tracks/production", json=typo, headers=bearer)
    assert answer.status_code == 400 and "'userfraction' was unexpected" in answer.json()["error"]["message"]
    fake.violations.clear()  # the off-contract body was ours, on purpose


def test_the_first_release_on_a_track_cannot_be_halted_once_completed(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.apps[PACKAGE].tracks["production"] = [OLD]
    fake.apps[PACKAGE].history["production"] = []
    with pytest.raises(Permanent, match="→ 400: The first release on a track cannot be halted"):
        android.apply(rollback("2.3.8"), "k1")
    assert fake.open_edits(PACKAGE) == []  # the failed edit was discarded


def test_the_planner_rolls_google_play_back_by_api_without_paging() -> None:
    settings = {"package_name": PACKAGE, "service_account_env": "K"}
    capabilities = capabilities_of("google-play", settings)
    assert capabilities == {Op.SET_TRAFFIC, Op.PAUSE, Op.RESUME, Op.ROLLBACK}
    target = plan(
        Intent.ROLLBACK, 0, "2.3.9", [TargetView("android-app", "google-play", capabilities)]
    ).targets[0]
    assert target.operations == (rollback("2.3.9"),) and target.manual is None


# --- never two edits at once ----------------------------------------------------------------


def test_concurrent_operations_on_one_app_take_turns_so_no_edit_is_invalidated(
    fake: FakeGooglePlay, client: httpx.Client, clock: FakeClock, key: rsa.RSAPrivateKey
) -> None:
    fake.apps[PACKAGE].tracks["beta"] = [{"name": "2.5.0", "versionCodes": ["125"], "status": "draft"}]
    fake.slow_track_reads = 0.02  # a wide window between reading the track and updating it
    targets = [actuator(fake, client, clock, key), actuator(fake, client, clock, key, track="beta")]
    results: list[Any] = []

    def step(n: int) -> None:
        results.append(targets[n % 2].apply(traffic(10 * (n + 2)), f"k{n}"))

    threads = [threading.Thread(target=step, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and all(isinstance(r, Applied) for r in results)
    assert (fake.edits_invalidated, fake.stale_edit_uses) == (0, 0)
    assert len(fake.commits) == 6


def test_the_fake_invalidates_an_open_edit_when_the_same_user_inserts_another(
    android: GooglePlay, fake: FakeGooglePlay, client: httpx.Client
) -> None:
    android.observe()
    bearer = {"Authorization": next(r for r in fake.requests if r.path != "/token").headers["authorization"]}
    first = client.post(f"{fake.url}{APP}/edits", json={}, headers=bearer).json()["id"]
    client.post(f"{fake.url}{APP}/edits", json={}, headers=bearer)
    answer = client.get(f"{fake.url}{APP}/edits/{first}/tracks/production", headers=bearer)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "This Edit has been deleted."
    assert fake.edits_invalidated == 1


def test_an_edit_invalidated_by_a_console_change_is_started_over_never_taken_for_success(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.console_changes_after_reads = 1
    assert android.apply(traffic(50), "k1") == Applied("2.4.0 inProgress 50%")
    assert fake.stale_edit_uses == 1 and len(fake.commits) == 1
    assert production(fake)[0]["userFraction"] == 0.5


def test_an_edit_invalidated_every_time_gives_up_as_a_precondition(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.console_changes_after_reads = 10
    with pytest.raises(Precondition, match=r"invalidated 3 times in a row .*This Edit has been deleted"):
        android.apply(traffic(50), "k1")
    assert fake.commits == []


def test_a_409_concurrent_update_starts_a_new_edit(android: GooglePlay, fake: FakeGooglePlay) -> None:
    android.observe()
    fake.inject(
        google_error(409, "ABORTED", "concurrentUpdate", "The edit was concurrently modified."), times=1
    )
    assert android.apply(traffic(50), "k1") == Applied("2.4.0 inProgress 50%")


def test_409_on_every_edit_is_a_precondition(android: GooglePlay, fake: FakeGooglePlay) -> None:
    conflict = google_error(409, "ABORTED", "concurrentUpdate", "The edit was concurrently modified.")
    fake.track_read_faults.extend([conflict] * 3)
    with pytest.raises(Precondition, match="→ 409: The edit was concurrently modified"):
        android.apply(traffic(50), "k1")
    assert fake.commits == [] and len(fake.edits) == 3


# --- crash between intent and result ----------------------------------------------------------


def test_a_new_instance_after_a_lost_commit_reply_finds_the_change_already_done(
    fake: FakeGooglePlay, client: httpx.Client, clock: FakeClock, key: rsa.RSAPrivateKey
) -> None:
    fake.lose_next_commit_reply = True  # Play committed; the answer never arrived
    first = actuator(fake, client, clock, key, retry=RetryPolicy(attempts=1))
    with pytest.raises(Transient):
        first.apply(traffic(50), "rollout-1/4/android-app/set_traffic/50")
    restarted = actuator(fake, client, clock, key)
    assert restarted.apply(traffic(50), "rollout-1/4/android-app/set_traffic/50") == AlreadyDone(
        "already 2.4.0 inProgress 50%"
    )
    assert len(fake.commits) == 1


def test_a_crash_before_commit_leaves_nothing_live_and_the_restart_applies_it(
    fake: FakeGooglePlay, client: httpx.Client, clock: FakeClock, key: rsa.RSAPrivateKey
) -> None:
    dying = actuator(fake, client, clock, key)
    dying.observe()
    bearer = {"Authorization": next(r for r in fake.requests if r.path != "/token").headers["authorization"]}
    orphan = client.post(f"{fake.url}{APP}/edits", json={}, headers=bearer).json()["id"]
    body = {"track": "production", "releases": [NEW | {"userFraction": 0.5}, OLD]}
    assert client.put(
        f"{fake.url}{APP}/edits/{orphan}/tracks/production", json=body, headers=bearer
    ).is_success
    assert production(fake)[0]["userFraction"] == 0.1  # uncommitted: nothing changed for users
    assert actuator(fake, client, clock, key).apply(traffic(50), "k1") == Applied("2.4.0 inProgress 50%")
    assert fake.edits[orphan].state == "deleted"


# --- auth -------------------------------------------------------------------------------------


def test_the_token_comes_from_an_rs256_jwt_bearer_grant_and_is_reused(
    android: GooglePlay, fake: FakeGooglePlay, key: rsa.RSAPrivateKey, clock: FakeClock
) -> None:
    android.observe()
    android.apply(traffic(50), "k1")
    grants = [r for r in fake.requests if r.path == "/token"]
    assert len(grants) == 1
    assert grants[0].headers["content-type"] == "application/x-www-form-urlencoded"
    header, claims = fake.assertions[0]
    assert header == {"alg": "RS256", "kid": KEY_ID, "typ": "JWT"}
    assert claims["iss"] == EMAIL and claims["aud"] == f"{fake.url}/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/androidpublisher"
    assert claims["exp"] - claims["iat"] <= 3600
    assert all(
        r.headers["authorization"].startswith("Bearer ya29.fake-")
        for r in fake.requests
        if r.path != "/token"
    )
    clock.advance(3600)
    android.observe()
    assert len([r for r in fake.requests if r.path == "/token"]) == 2


def test_a_key_google_does_not_know_is_an_invalid_grant_auth_failure_not_retried(
    fake: FakeGooglePlay, client: httpx.Client, clock: FakeClock
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    android = actuator(fake, client, clock, stranger)
    with pytest.raises(AuthFailed, match=r"google oauth: POST  → 400: Invalid JWT Signature\."):
        android.apply(traffic(50), "k1")
    assert len(fake.requests) == 1 and clock.sleeps == []


def test_a_revoked_token_is_auth_failed_once_and_then_replaced(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    android.observe()
    fake.tokens.clear()
    with pytest.raises(AuthFailed, match="→ 401: Invalid Credentials"):
        android.observe()
    assert android.observe().traffic == 10  # a new token was asked for


def test_an_account_without_access_to_the_app_is_auth_failed_with_403(
    android: GooglePlay, fake: FakeGooglePlay
) -> None:
    fake.access[EMAIL] = set()
    with pytest.raises(AuthFailed, match="→ 403: The caller does not have permission"):
        android.apply(PAUSE, "k1")
    assert len(api_calls(fake)) == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "environment variable PLAY_KEY is not set"),
        ({"PLAY_KEY": "{not json"}, "PLAY_KEY does not hold a Google service-account JSON key"),
        (
            {"PLAY_KEY": json.dumps({"client_email": EMAIL, "private_key": "-----BEGIN nonsense"})},
            "not an RSA",
        ),
    ],
)
def test_a_missing_or_broken_key_is_auth_failed_without_quoting_it(
    fake: FakeGooglePlay,
    client: httpx.Client,
    clock: FakeClock,
    key: rsa.RSAPrivateKey,
    env: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(AuthFailed, match=message) as raised:
        actuator(fake, client, clock, key, env=env).observe()
    assert "nonsense" not in str(raised.value) and "{not json" not in str(raised.value)
    assert fake.requests == []


# --- errors -----------------------------------------------------------------------------------


def test_an_unknown_package_is_404_permanent(
    fake: FakeGooglePlay, client: httpx.Client, clock: FakeClock, key: rsa.RSAPrivateKey
) -> None:
    fake.access[EMAIL].add("com.example.gone")
    with pytest.raises(Permanent, match=r"→ 404: Package not found: com\.example\.gone"):
        actuator(fake, client, clock, key, package_name="com.example.gone").observe()


def test_5xx_is_retried_with_backoff(android: GooglePlay, fake: FakeGooglePlay, clock: FakeClock) -> None:
    android.observe()
    fake.inject(
        google_error(503, "UNAVAILABLE", "backendError", "The service is currently unavailable."), times=2
    )
    assert android.apply(traffic(50), "k1") == Applied("2.4.0 inProgress 50%")
    assert len(clock.sleeps) == 2


def test_5xx_every_time_is_transient(android: GooglePlay, fake: FakeGooglePlay) -> None:
    android.observe()
    fake.inject(google_error(500, "INTERNAL", "backendError", "Internal error encountered."), times=20)
    with pytest.raises(Transient, match="→ 500: Internal error encountered"):
        android.apply(traffic(50), "k1")


def test_429_resource_exhausted_honours_retry_after(
    android: GooglePlay, fake: FakeGooglePlay, clock: FakeClock
) -> None:
    android.observe()
    exhausted = google_error(429, "RESOURCE_EXHAUSTED", "rateLimitExceeded", "Quota exceeded.")
    exhausted.headers["Retry-After"] = "5"
    fake.inject(exhausted)
    assert android.apply(traffic(50), "k1") == Applied("2.4.0 inProgress 50%")
    assert clock.sleeps == [5.0]


def test_429_every_time_is_rate_limited(android: GooglePlay, fake: FakeGooglePlay) -> None:
    android.observe()
    fake.inject(google_error(429, "RESOURCE_EXHAUSTED", "rateLimitExceeded", "Quota exceeded."), times=20)
    with pytest.raises(RateLimited, match="→ 429: Quota exceeded"):
        android.observe()


@pytest.mark.parametrize(
    "operation",
    [
        Operation("android-app", Op.DISABLE),
        traffic(101),
        Operation("android-app", Op.ROLLBACK),
        Operation("web", Op.PAUSE),
    ],
)
def test_malformed_or_unsupported_operations_are_refused_without_a_request(
    android: GooglePlay, fake: FakeGooglePlay, operation: Operation
) -> None:
    assert isinstance(android.apply(operation, "k1"), Refused)
    assert fake.requests == []


# --- secrets ----------------------------------------------------------------------------------


def test_no_key_assertion_or_token_reaches_an_error_or_a_log(
    android: GooglePlay, fake: FakeGooglePlay, key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    android.apply(traffic(50), "k1")
    token = (
        next(r for r in fake.requests if r.path != "/token").headers["authorization"].removeprefix("Bearer ")
    )
    assertion = fake.requests[0].body.decode()
    key_lines = [line for line in _pem(key).splitlines() if "PRIVATE KEY" not in line]
    fake.inject(google_error(401, "UNAUTHENTICATED", "authError", f"Invalid Credentials: {token}"))
    fake.inject(google_error(409, "ABORTED", "concurrentUpdate", f"{key_lines[3]}"), times=3)
    fake.inject(google_error(500, "INTERNAL", "backendError", f"Bearer {token}"), times=4)
    messages = []
    for _ in range(3):
        with pytest.raises((AuthFailed, Precondition, Transient)) as raised:
            android.apply(traffic(60), "k2")
        messages.append(str(raised.value))
    assert all("***" in message for message in messages), messages
    for text in [*messages, caplog.text]:
        assert token not in text and assertion not in text
        assert not any(line in text for line in key_lines)


# --- settings -----------------------------------------------------------------------------------


def test_the_registry_builds_it_with_the_shared_client_and_environment(
    fake: FakeGooglePlay, client: httpx.Client, key: rsa.RSAPrivateKey, clock: FakeClock, tmp_path: Path
) -> None:
    clock.now = time.time()  # built by the registry, the adapter signs with the real clock
    settings = {"package_name": PACKAGE, "service_account_env": "PLAY_KEY", "token_uri": f"{fake.url}/token"}
    android = build_actuator(
        "google-play",
        "android-app",
        settings | {"base_url": fake.url},
        state_dir=tmp_path,
        env={"PLAY_KEY": service_account(key)},
        http=client,
    )
    assert android.observe().traffic == 10
    assert GooglePlaySettings.model_validate(settings).secret_variables() == ("PLAY_KEY",)


def test_plan_change_is_pure_and_maps_every_operation() -> None:
    state = TrackState("production", (Release(NEW), Release(OLD)))
    assert plan_change(traffic(10), state) == AlreadyDone("already 2.4.0 inProgress 10%")
    assert plan_change(traffic(20), state) == Change(
        [NEW | {"userFraction": 0.2}, OLD], "2.4.0 inProgress 20%"
    )
    assert plan_change(PAUSE, state) == Change(
        [NEW | {"status": "halted"}, OLD], "halted 2.4.0 inProgress 10%"
    )
    halted = Change(
        [NEW | {"status": "halted"}, OLD],
        "halted 2.4.0 inProgress 10% (users who installed it keep it: Play cannot downgrade)",
        verify="2.3.9",
    )
    assert plan_change(rollback("2.3.9"), state) == halted


def _without_fraction(release: dict[str, Any], status: str) -> dict[str, Any]:
    return {k: v for k, v in release.items() if k != "userFraction"} | {"status": status}
