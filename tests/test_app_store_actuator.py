"""The App Store Connect target against a loopback fake of the phased-release API (reference/apis.md §5)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.actuators.app_store import AppStore, AppStoreSettings, build
from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused
from adapters.actuators.registry import BuildContext, build_actuator, capabilities_of
from adapters.errors import AuthFailed, ConfigError, Permanent, Precondition, RateLimited, Transient
from adapters.http import RetryPolicy
from controller.core.plan import Intent, TargetView, plan
from policies.operations import ManualStep, Op, Operation
from tests.fakes.app_store import DAY, FakeAppStore, apple_error, spec_problems
from tests.fakes.clock import FakeClock

ISSUER, KEY_ID, VERSION_ID = "57246542-96fe-1a63-e053-0824d011072a", "2X9R4HXF34", "vers-240"
PAUSE, RESUME = Operation("ios-app", Op.PAUSE), Operation("ios-app", Op.RESUME)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(key: ec.EllipticCurvePrivateKey, clock: FakeClock) -> Iterator[FakeAppStore]:
    with FakeAppStore(key.public_key(), issuer_id=ISSUER, key_id=KEY_ID, clock=clock) as server:
        assert isinstance(server, FakeAppStore)
        server.add_version(VERSION_ID, phased="ACTIVE", day=3)
        yield server
    assert server.violations == []  # nothing the adapter sent or the fake answered broke Apple's schemas


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


def actuator(
    fake: FakeAppStore,
    client: httpx.Client,
    clock: FakeClock,
    key: ec.EllipticCurvePrivateKey,
    *,
    retry: RetryPolicy | None = None,
    env: dict[str, str] | None = None,
    **fields: Any,
) -> AppStore:
    settings = AppStoreSettings.model_validate(
        {"issuer_id": ISSUER, "key_id": KEY_ID, "private_key_env": "ASC_KEY", "base_url": fake.url}
        | ({"app_store_version_id": VERSION_ID} if "app_id" not in fields else {})
        | fields
    )
    context = BuildContext(Path("unused"), {"ASC_KEY": _pem(key)} if env is None else env, client)
    return build("ios-app", settings, context, sleep=clock.sleep, clock=clock, retry=retry)


@pytest.fixture
def ios(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> AppStore:
    return actuator(fake, client, clock, key)


def patches(fake: FakeAppStore) -> list[Any]:
    return [request.json() for request in fake.patches]


# --- observe ------------------------------------------------------------------------------


def test_observe_reads_state_and_day_from_the_versions_phased_release(
    ios: AppStore, fake: FakeAppStore
) -> None:
    observed = ios.observe()
    assert observed == Observed(
        traffic=5, paused=False, detail="phased release ACTIVE on day 3 (5%), paused 0 of 30 days"
    )
    assert [r.path for r in fake.requests] == [
        f"/v1/appStoreVersions/{VERSION_ID}/appStoreVersionPhasedRelease"
    ]


@pytest.mark.parametrize(("day", "percent"), [(1, 1), (2, 2), (3, 5), (4, 10), (5, 20), (6, 50), (7, 100)])
def test_traffic_is_apples_fixed_ladder_for_the_current_day(
    fake: FakeAppStore,
    client: httpx.Client,
    clock: FakeClock,
    key: ec.EllipticCurvePrivateKey,
    day: int,
    percent: int,
) -> None:
    fake.add_version(VERSION_ID, phased="ACTIVE", day=day)
    fake.releases[f"pr-{VERSION_ID}"].active_before = (day - 1) * DAY
    assert actuator(fake, client, clock, key).observe().traffic == percent


def test_the_day_counter_moves_with_time_only_while_active(ios: AppStore, clock: FakeClock) -> None:
    assert ios.apply(PAUSE, "k1") == Applied("phased release PAUSED on day 3 (5%)")
    clock.advance(4 * DAY)
    assert (ios.observe().traffic, ios.observe().paused) == (5, True)
    ios.apply(RESUME, "k2")
    clock.advance(2 * DAY)
    assert ios.observe().traffic == 20  # day 5
    clock.advance(3 * DAY)
    assert ios.observe() == Observed(
        traffic=100, paused=False, detail="phased release COMPLETE on day 7 (100%), paused 4 of 30 days"
    )


def test_version_is_found_by_app_id_and_version_string(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    fake.add_version("vers-239", version="2.3.9", phased=None)
    ios = actuator(fake, client, clock, key, app_id="1234567890", version="2.4.0")
    assert ios.observe().version == "2.4.0"
    assert ios.observe().traffic == 5
    listing = fake.requests[0]
    assert listing.path == "/v1/apps/1234567890/appStoreVersions"
    assert listing.query["filter[versionString]"] == ["2.4.0"]
    assert listing.query["filter[platform]"] == ["IOS"]
    assert sum(r.path.endswith("/appStoreVersions") for r in fake.requests) == 1  # the id is remembered


def test_an_unknown_version_string_is_a_permanent_error(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    ios = actuator(fake, client, clock, key, app_id="1234567890", version="9.9.9")
    with pytest.raises(Permanent, match=r"app 1234567890 has no IOS version '9\.9\.9'"):
        ios.observe()


def test_a_version_without_phased_release_is_observed_as_such_and_cannot_be_paused(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    fake.add_version("vers-250", phased=None)
    ios = actuator(fake, client, clock, key, app_store_version_id="vers-250")
    assert ios.observe().paused is None
    result = ios.apply(PAUSE, "k1")
    assert isinstance(result, Refused)
    assert "no phased release" in result.reason
    assert fake.patches == []


# --- pause / resume -------------------------------------------------------------------------


def test_pause_sends_a_json_api_patch_of_the_phased_release(ios: AppStore, fake: FakeAppStore) -> None:
    assert ios.apply(PAUSE, "k1") == Applied("phased release PAUSED on day 3 (5%)")
    assert patches(fake) == [
        {
            "data": {
                "type": "appStoreVersionPhasedReleases",
                "id": f"pr-{VERSION_ID}",
                "attributes": {"phasedReleaseState": "PAUSED"},
            }
        }
    ]
    assert fake.patches[0].path == f"/v1/appStoreVersionPhasedReleases/pr-{VERSION_ID}"
    assert fake.patches[0].headers["content-type"] == "application/json"
    assert spec_problems("AppStoreVersionPhasedReleaseUpdateRequest", patches(fake)[0]) == []
    assert fake.release_of(VERSION_ID).state == "PAUSED"


def test_pause_twice_is_already_done_without_a_second_patch(ios: AppStore, fake: FakeAppStore) -> None:
    ios.apply(PAUSE, "k1")
    assert ios.apply(PAUSE, "k1") == AlreadyDone("already phased release PAUSED on day 3 (5%)")
    assert len(fake.patches) == 1


def test_resume_sets_the_phased_release_active_again(ios: AppStore, fake: FakeAppStore) -> None:
    ios.apply(PAUSE, "k1")
    assert ios.apply(RESUME, "k2") == Applied("phased release ACTIVE on day 3 (5%)")
    assert ios.apply(RESUME, "k2") == AlreadyDone("already phased release ACTIVE on day 3 (5%)")
    assert [p["data"]["attributes"]["phasedReleaseState"] for p in patches(fake)] == ["PAUSED", "ACTIVE"]


def test_resuming_a_release_that_is_not_paused_is_already_done(ios: AppStore, fake: FakeAppStore) -> None:
    assert isinstance(ios.apply(RESUME, "k1"), AlreadyDone)
    assert fake.patches == []


@pytest.mark.parametrize(
    ("state", "reason"),
    [("COMPLETE", "is COMPLETE (everyone has the update)"), ("INACTIVE", "has not started (INACTIVE)")],
)
def test_pausing_a_release_that_is_complete_or_not_started_is_refused_without_asking_apple(
    fake: FakeAppStore,
    client: httpx.Client,
    clock: FakeClock,
    key: ec.EllipticCurvePrivateKey,
    state: str,
    reason: str,
) -> None:
    fake.add_version(VERSION_ID, phased=state, day=7)
    result = actuator(fake, client, clock, key).apply(PAUSE, "k1")
    assert isinstance(result, Refused)
    assert reason in result.reason
    assert fake.patches == []


def test_the_30_day_pause_budget_resumes_the_release_and_then_refuses_a_new_pause(
    ios: AppStore, fake: FakeAppStore, clock: FakeClock
) -> None:
    ios.apply(PAUSE, "k1")
    clock.advance(31 * DAY)
    assert ios.observe() == Observed(
        traffic=10, paused=False, detail="phased release ACTIVE on day 4 (10%), paused 30 of 30 days"
    )
    result = ios.apply(PAUSE, "k2")
    assert result == Refused("app-store: the 30-day pause budget of this phased release is used up")
    assert len(fake.patches) == 1


def test_the_fake_refuses_a_pause_past_the_budget_with_apples_409_state_error(
    ios: AppStore, fake: FakeAppStore, client: httpx.Client
) -> None:
    ios.observe()  # a valid token to reuse
    token = fake.requests[0].headers["authorization"]
    fake.releases[f"pr-{VERSION_ID}"].paused_before = 30 * DAY
    body = {
        "data": {
            "type": "appStoreVersionPhasedReleases",
            "id": f"pr-{VERSION_ID}",
            "attributes": {"phasedReleaseState": "PAUSED"},
        }
    }
    answer = client.patch(
        f"{fake.url}/v1/appStoreVersionPhasedReleases/pr-{VERSION_ID}",
        json=body,
        headers={"Authorization": token},
    )
    assert answer.status_code == 409
    assert answer.json()["errors"][0]["code"] == "STATE_ERROR"
    assert "maximum of 30 days" in answer.json()["errors"][0]["detail"]


# --- what App Store Connect cannot do ----------------------------------------------------


def test_capabilities_are_pause_and_resume_only() -> None:
    settings = {"issuer_id": ISSUER, "key_id": KEY_ID, "private_key_env": "K", "app_store_version_id": "v"}
    assert capabilities_of("app-store", settings) == {Op.PAUSE, Op.RESUME}


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (Operation("ios-app", Op.ROLLBACK, version="2.3.9"), "app-store cannot roll back by API"),
        (Operation("ios-app", Op.SET_TRAFFIC, traffic=100), "Apple's 7-day ladder is fixed"),
        (Operation("ios-app", Op.DISABLE), "app-store cannot disable"),
        (Operation("web", Op.PAUSE), "operation for target 'web' sent to 'ios-app'"),
    ],
)
def test_what_apple_cannot_do_is_refused_without_a_request(
    ios: AppStore, fake: FakeAppStore, operation: Operation, reason: str
) -> None:
    result = ios.apply(operation, "k1")
    assert isinstance(result, Refused)
    assert reason in result.reason
    assert fake.requests == []


def test_the_plan_for_a_rollback_pauses_and_pages_a_human(ios: AppStore) -> None:
    target = TargetView("ios-app", "app-store", ios.capabilities)
    rollback = plan(Intent.ROLLBACK, 0, "2.3.9", [target]).targets[0]
    assert rollback.operations == (PAUSE,)
    assert rollback.manual == ManualStep(
        "ios-app", "app-store cannot roll back by API: ship 2.3.9 (or a fix) by hand"
    )
    promote = plan(Intent.PROMOTE, 100, "2.3.9", [target]).targets[0]
    assert promote.operations == (
        RESUME,
    )  # Apple's ladder finishes on its own; COMPLETE stays a human's call
    advance = plan(Intent.ADVANCE, 10, "2.3.9", [target]).targets[0]
    assert advance.operations == ()


# --- auth -------------------------------------------------------------------------------


def test_every_request_carries_an_es256_jwt_for_the_api_key(
    ios: AppStore, fake: FakeAppStore, key: ec.EllipticCurvePrivateKey, clock: FakeClock
) -> None:
    ios.apply(PAUSE, "k1")
    tokens = {r.headers["authorization"].removeprefix("Bearer ") for r in fake.requests}
    assert len(tokens) == 1 and len(fake.tokens) == 2
    token = tokens.pop()
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(
        token,
        key.public_key(),
        algorithms=["ES256"],
        audience="appstoreconnect-v1",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == ISSUER and claims["iat"] == int(clock())
    assert 0 < claims["exp"] - claims["iat"] <= 20 * 60


def test_the_token_is_reused_until_a_minute_before_it_expires(
    ios: AppStore, fake: FakeAppStore, clock: FakeClock
) -> None:
    ios.observe()
    clock.advance(13 * 60)
    ios.observe()
    clock.advance(60)
    ios.observe()
    issued = [claims["iat"] for _, claims in fake.tokens]
    assert issued[0] == issued[1] != issued[2]


def test_a_token_signed_with_another_key_is_refused_401_and_not_retried(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock
) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    ios = actuator(fake, client, clock, stranger)
    with pytest.raises(AuthFailed, match=r"app-store: GET .* → 401: The bearer token is invalid"):
        ios.apply(PAUSE, "k1")
    assert len(fake.requests) == 1
    assert clock.sleeps == []


def test_a_403_is_auth_failed_and_not_retried(ios: AppStore, fake: FakeAppStore) -> None:
    fake.inject(
        apple_error(
            403, "FORBIDDEN_ERROR", "This request is forbidden", "The API key's role may not do this."
        )
    )
    with pytest.raises(AuthFailed, match="role may not do this"):
        ios.apply(PAUSE, "k1")
    assert len(fake.requests) == 1


def test_a_missing_key_variable_is_auth_failed_naming_the_variable(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    ios = actuator(fake, client, clock, key, env={})
    with pytest.raises(AuthFailed, match="environment variable ASC_KEY is not set"):
        ios.apply(PAUSE, "k1")
    assert fake.requests == []


def test_a_key_that_is_not_p256_pem_is_auth_failed_without_echoing_it(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    wrong = _pem(ec.generate_private_key(ec.SECP384R1()))
    for value in ("not a key at all", wrong):
        with pytest.raises(AuthFailed) as raised:
            actuator(fake, client, clock, key, env={"ASC_KEY": value}).observe()
        assert (
            str(raised.value) == "app-store: ASC_KEY does not hold an EC P-256 private key in PEM form (.p8)"
        )


def test_a_key_with_escaped_newlines_from_an_env_file_works(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    escaped = _pem(key).replace("\n", "\\n")
    assert actuator(fake, client, clock, key, env={"ASC_KEY": escaped}).observe().traffic == 5


# --- errors ------------------------------------------------------------------------------


def test_an_unknown_version_id_is_404_permanent(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    ios = actuator(fake, client, clock, key, app_store_version_id="nope")
    with pytest.raises(
        Permanent, match="→ 404: There is no resource of type 'appStoreVersions' with id 'nope'"
    ):
        ios.apply(PAUSE, "k1")
    assert len(fake.requests) == 1


def test_a_409_state_error_is_a_precondition(ios: AppStore, fake: FakeAppStore) -> None:
    ios.observe()
    fake.inject(apple_error(409, "STATE_ERROR", "State error", "The version is being replaced."), times=1)
    with pytest.raises(Precondition, match="The version is being replaced"):
        ios.observe()


def test_5xx_is_retried_with_backoff_until_it_succeeds(
    ios: AppStore, fake: FakeAppStore, clock: FakeClock
) -> None:
    fake.inject(apple_error(503, "SERVICE_UNAVAILABLE", "Unavailable", "Try again."), times=2)
    assert ios.apply(PAUSE, "k1") == Applied("phased release PAUSED on day 3 (5%)")
    assert len(clock.sleeps) == 2
    assert all(0 < wait <= 8 for wait in clock.sleeps)


def test_5xx_every_time_gives_up_as_transient(ios: AppStore, fake: FakeAppStore, clock: FakeClock) -> None:
    fake.inject(apple_error(500, "UNEXPECTED_ERROR", "An unexpected error occurred.", "Oops."), times=10)
    with pytest.raises(Transient, match="→ 500"):
        ios.apply(PAUSE, "k1")
    assert len(fake.requests) == 4  # RetryPolicy's capped attempts


def test_429_without_retry_after_backs_off_with_jitter(
    ios: AppStore, fake: FakeAppStore, clock: FakeClock
) -> None:
    fake.inject(fake.rate_limited())
    assert isinstance(ios.apply(PAUSE, "k1"), Applied)
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 0.25


def test_429_with_retry_after_is_honoured(ios: AppStore, fake: FakeAppStore, clock: FakeClock) -> None:
    limited = fake.rate_limited()
    limited.headers["Retry-After"] = "7"
    fake.inject(limited)
    assert isinstance(ios.apply(PAUSE, "k1"), Applied)
    assert clock.sleeps == [7.0]


def test_429_every_time_is_rate_limited(ios: AppStore, fake: FakeAppStore) -> None:
    fake.inject(fake.rate_limited(), times=10)
    with pytest.raises(RateLimited, match="→ 429: We've received too many requests"):
        ios.observe()


def test_the_fake_answers_get_instance_with_403_as_apple_does(
    fake: FakeAppStore, client: httpx.Client, ios: AppStore
) -> None:
    ios.observe()  # a valid token to reuse
    token = fake.requests[0].headers["authorization"]
    answer = client.get(
        f"{fake.url}/v1/appStoreVersionPhasedReleases/pr-{VERSION_ID}", headers={"Authorization": token}
    )
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["code"] == "FORBIDDEN_ERROR"
    assert spec_problems("ErrorResponse", answer.json()) == []
    assert answer.headers["X-Rate-Limit"].startswith("user-hour-lim:3500;user-hour-rem:")


def test_the_fake_refuses_read_only_attributes_with_a_pointer(
    fake: FakeAppStore, client: httpx.Client, ios: AppStore
) -> None:
    ios.observe()
    token = fake.requests[0].headers["authorization"]
    body = {
        "data": {
            "type": "appStoreVersionPhasedReleases",
            "id": f"pr-{VERSION_ID}",
            "attributes": {"currentDayNumber": 7},
        }
    }
    answer = client.patch(
        f"{fake.url}/v1/appStoreVersionPhasedReleases/pr-{VERSION_ID}",
        json=body,
        headers={"Authorization": token},
    )
    assert answer.status_code == 409
    assert answer.json()["errors"][0]["source"] == {"pointer": "/data"}
    fake.violations.clear()  # the off-contract body was ours, on purpose


# --- crash between intent and result -------------------------------------------------------


def test_a_new_instance_after_a_crash_finds_the_pause_already_done(
    fake: FakeAppStore, client: httpx.Client, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    fake.lose_next_patch_reply = True  # Apple applied it; the answer never arrived
    first = actuator(fake, client, clock, key, retry=RetryPolicy(attempts=1))
    with pytest.raises(Transient):
        first.apply(PAUSE, "rollout-1/7/ios-app/pause")
    assert fake.release_of(VERSION_ID).state == "PAUSED"
    restarted = actuator(fake, client, clock, key)
    assert restarted.apply(PAUSE, "rollout-1/7/ios-app/pause") == AlreadyDone(
        "already phased release PAUSED on day 3 (5%)"
    )
    assert len(fake.patches) == 1


# --- secrets -----------------------------------------------------------------------------


def test_no_key_or_token_reaches_an_error_or_a_log(
    fake: FakeAppStore,
    client: httpx.Client,
    clock: FakeClock,
    key: ec.EllipticCurvePrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pem = _pem(key)
    ios = actuator(fake, client, clock, key)
    ios.apply(PAUSE, "k1")
    token = fake.requests[-1].headers["authorization"].removeprefix("Bearer ")
    messages = []
    fake.inject(apple_error(401, "NOT_AUTHORIZED", "Unauthorized", f"Token {token} is not valid."))
    fake.inject(apple_error(409, "STATE_ERROR", "State", f"Bearer {token}"))
    fake.inject(apple_error(500, "UNEXPECTED_ERROR", "Oops", f"{token}"), times=4)
    for _ in range(3):
        with pytest.raises((AuthFailed, Precondition, Transient)) as raised:
            ios.apply(RESUME, "k2")
        messages.append(str(raised.value))
    assert all("***" in message for message in messages)
    lines = [line for line in pem.splitlines() if "PRIVATE KEY" not in line]
    for text in [*messages, caplog.text]:
        assert token not in text
        assert not any(line in text for line in lines)


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "naming",
    [
        {},
        {"app_store_version_id": "v", "app_id": "1", "version": "2.4.0"},
        {"app_id": "1"},
        {"version": "2.4.0"},
    ],
)
def test_the_version_is_named_one_way_exactly(naming: dict[str, str]) -> None:
    settings = {"issuer_id": ISSUER, "key_id": KEY_ID, "private_key_env": "K"} | naming
    with pytest.raises(
        ConfigError, match="name the version by app_store_version_id, or by app_id and version"
    ):
        capabilities_of("app-store", settings)


def test_the_registry_builds_it_with_the_shared_client_and_environment(
    fake: FakeAppStore,
    client: httpx.Client,
    key: ec.EllipticCurvePrivateKey,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    clock.now = time.time()  # built by the registry, the adapter signs with the real clock
    fake.add_version(VERSION_ID, phased="ACTIVE", day=3)
    settings = {
        "issuer_id": ISSUER,
        "key_id": KEY_ID,
        "private_key_env": "ASC_KEY",
        "app_store_version_id": VERSION_ID,
        "base_url": fake.url,
    }
    ios = build_actuator(
        "app-store", "ios-app", settings, state_dir=tmp_path, env={"ASC_KEY": _pem(key)}, http=client
    )
    assert ios.capabilities == {Op.PAUSE, Op.RESUME}
    assert ios.observe().traffic == 5
    assert AppStoreSettings.model_validate(settings).secret_variables() == ("ASC_KEY",)
