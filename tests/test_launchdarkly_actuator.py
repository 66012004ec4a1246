"""The LaunchDarkly target against a loopback fake of the REST API v2 (reference/apis.md §7.1)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.actuators.base import AlreadyDone, Applied, Refused
from adapters.actuators.launchdarkly import LaunchDarkly, LaunchDarklySettings, build
from adapters.actuators.registry import BuildContext, build_actuator, capabilities_of
from adapters.errors import AuthFailed, ConfigError, Permanent, Precondition, RateLimited, Transient
from policies.operations import Op, Operation
from tests.fakes.launchdarkly import FakeLaunchDarkly, error

TOKEN = "api-5e3c1b2a-7d4f-4c0e-9b8a-0123456789ab"
NOW = 1_800_000_000.0  # the fake's and the adapter's clock: rate-limit resets are computed against it
PROJECT, FLAG, ENV = "web", "checkout-v2", "production"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLaunchDarkly]:
    with FakeLaunchDarkly(TOKEN, clock=lambda: NOW) as started:
        assert isinstance(started, FakeLaunchDarkly)
        yield started


@pytest.fixture
def fake(server: FakeLaunchDarkly) -> FakeLaunchDarkly:
    server.reset(TOKEN)
    server.add_flag(PROJECT, FLAG, on=True)
    return server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


class Sleeps(list[float]):
    """A fake sleep: records what the adapter would have waited, never waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def actuator(
    fake: FakeLaunchDarkly,
    client: httpx.Client,
    sleeps: Sleeps | None = None,
    token: str = TOKEN,
    **fields: Any,
) -> LaunchDarkly:
    settings = LaunchDarklySettings.model_validate(
        {"project": PROJECT, "environment": ENV, "flag": FLAG, "base_url": fake.url, "token_env": "LD_TOKEN"}
        | fields
    )
    context = BuildContext(Path("unused"), {"LD_TOKEN": token}, client)
    return build(
        "checkout-flag",
        settings,
        context,
        sleep=sleeps if sleeps is not None else Sleeps(),
        clock=lambda: NOW,
    )


def traffic(percent: int) -> Operation:
    return Operation("checkout-flag", Op.SET_TRAFFIC, traffic=percent)


DISABLE = Operation("checkout-flag", Op.DISABLE)
ENABLE = Operation("checkout-flag", Op.ENABLE)


def rollout(**weights: int) -> dict[str, Any]:
    """A fallthrough rollout, weights given by variation index as `v0=…, v1=…`."""
    return {
        "rollout": {
            "variations": [{"variation": int(k[1:]), "weight": w} for k, w in weights.items()],
        }
    }


def set_fallthrough(fake: FakeLaunchDarkly, fallthrough: dict[str, Any], env: str = ENV) -> None:
    fake.flags[(PROJECT, FLAG)]["environments"][env]["fallthrough"] = fallthrough


# --- observe ------------------------------------------------------------------------------


def test_observe_reads_traffic_from_fallthrough_weights_in_thousandths(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    set_fallthrough(fake, rollout(v0=12_500, v1=87_500))
    observed = actuator(fake, client).observe()
    assert (observed.traffic, observed.enabled) == (12, True)
    assert "variation 0: 12.5%" in observed.detail
    assert "variation 1: 87.5%" in observed.detail
    assert fake.requests[-1].query == {"env": [ENV]}


def test_a_fixed_fallthrough_variation_is_all_or_nothing(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    set_fallthrough(fake, {"variation": 0})
    assert actuator(fake, client).observe().traffic == 100
    set_fallthrough(fake, {"variation": 1})
    assert actuator(fake, client).observe().traffic == 0


def test_observe_reports_a_flag_that_is_off(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    fake.flags[(PROJECT, FLAG)]["environments"][ENV]["on"] = False
    assert actuator(fake, client).observe().enabled is False


# --- set_traffic ----------------------------------------------------------------------------


def test_fifty_percent_is_sent_as_fifty_thousand_thousandths(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    result = actuator(fake, client).apply(traffic(50), "r1/3/checkout-flag/set_traffic/50")
    assert isinstance(result, Applied)
    (patch,) = fake.patches
    assert patch.headers["content-type"] == "application/json; domain-model=launchdarkly.semanticpatch"
    body = patch.json()
    new_id, old_id = fake.variation_id(PROJECT, FLAG, 0), fake.variation_id(PROJECT, FLAG, 1)
    assert body["environmentKey"] == ENV
    assert body["instructions"] == [
        {"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": {new_id: 50_000, old_id: 50_000}}
    ]
    assert "r1/3/checkout-flag/set_traffic/50" in body["comment"]
    assert actuator(fake, client).observe().traffic == 50


def test_set_traffic_writes_a_rollout_the_sdks_read_as_that_percentage(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    actuator(fake, client).apply(traffic(10), "k")
    weights = {
        v["variation"]: v["weight"]
        for v in fake.environment(PROJECT, FLAG, ENV)["fallthrough"]["rollout"]["variations"]
    }
    assert weights == {0: 10_000, 1: 90_000}


def test_set_traffic_zero_falls_through_to_the_previous_variation(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    set_fallthrough(fake, rollout(v0=50_000, v1=50_000))
    assert isinstance(actuator(fake, client).apply(traffic(0), "k"), Applied)
    observed = actuator(fake, client).observe()
    assert observed.traffic == 0
    assert "variation 1: 100%" in observed.detail


def test_variations_may_be_named_by_id(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    fake.add_flag(PROJECT, FLAG, values=["control", "treatment-a", "treatment-b"], on=True)
    new_id, old_id = fake.variation_id(PROJECT, FLAG, 2), fake.variation_id(PROJECT, FLAG, 0)
    target = actuator(fake, client, new_variation=new_id, old_variation=old_id)
    target.apply(traffic(25), "k")
    assert fake.patches[-1].json()["instructions"][0]["rolloutWeights"] == {new_id: 25_000, old_id: 75_000}
    assert target.observe().traffic == 25


def test_a_variation_the_flag_does_not_have_is_a_permanent_error_listing_the_ones_it_has(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    with pytest.raises(Permanent) as raised:
        actuator(fake, client, new_variation=5, old_variation=1).observe()
    message = str(raised.value)
    assert "new_variation 5 is not a variation of the flag" in message
    assert fake.variation_id(PROJECT, FLAG, 0) in message


def test_a_third_variation_in_the_rollout_is_not_the_requested_split(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    fake.add_flag(PROJECT, FLAG, values=["a", "b", "c"], on=True)
    set_fallthrough(fake, rollout(v0=10_000, v1=80_000, v2=10_000))
    result = actuator(fake, client).apply(traffic(10), "k")
    assert isinstance(result, Applied)
    assert actuator(fake, client).observe().detail.endswith("variation 0: 10%, variation 1: 90%")


# --- on / off ---------------------------------------------------------------------------------


def test_disable_turns_the_flag_off(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    assert isinstance(actuator(fake, client).apply(DISABLE, "k"), Applied)
    assert fake.patches[-1].json()["instructions"] == [{"kind": "turnFlagOff"}]
    assert fake.environment(PROJECT, FLAG, ENV)["on"] is False
    assert fake.environment(PROJECT, FLAG, "staging")["on"] is True  # other environments untouched


def test_enable_turns_the_flag_on(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    fake.flags[(PROJECT, FLAG)]["environments"][ENV]["on"] = False
    assert isinstance(actuator(fake, client).apply(ENABLE, "k"), Applied)
    assert fake.patches[-1].json()["instructions"] == [{"kind": "turnFlagOn"}]
    assert actuator(fake, client).observe().enabled is True


# --- idempotency: observe first ------------------------------------------------------------------


@pytest.mark.parametrize("operation", [traffic(30), traffic(0), traffic(100), DISABLE, ENABLE])
def test_repeating_an_operation_is_already_done_without_a_write(
    fake: FakeLaunchDarkly, client: httpx.Client, operation: Operation
) -> None:
    target = actuator(fake, client)
    target.apply(operation, "k")
    writes = len(fake.patches)
    assert isinstance(target.apply(operation, "k"), AlreadyDone)
    assert len(fake.patches) == writes


def test_a_fixed_variation_already_is_a_hundred_percent_rollout(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    set_fallthrough(fake, {"variation": 0})
    assert isinstance(actuator(fake, client).apply(traffic(100), "k"), AlreadyDone)
    assert fake.patches == []


def test_crash_between_intent_and_result_is_reconciled_by_observing(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    key = "r1/7/checkout-flag/set_traffic/50"
    assert isinstance(actuator(fake, client).apply(traffic(50), key), Applied)
    # The process dies before journaling the result; the restarted controller builds a new
    # actuator and resumes the unfinished intent with the same key.
    resumed = actuator(fake, client).apply(traffic(50), key)
    assert isinstance(resumed, AlreadyDone)
    assert len(fake.patches) == 1


# --- refusals without a call --------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        Operation("checkout-flag", Op.ROLLBACK, version="v1"),
        Operation("checkout-flag", Op.PAUSE),
        Operation("checkout-flag", Op.SET_TRAFFIC, traffic=101),
        Operation("checkout-flag", Op.SET_TRAFFIC),
        Operation("other-flag", Op.DISABLE),
    ],
)
def test_what_it_cannot_do_is_refused_before_any_request(
    fake: FakeLaunchDarkly, client: httpx.Client, operation: Operation
) -> None:
    assert isinstance(actuator(fake, client).apply(operation, "k"), Refused)
    assert fake.requests == []


# --- errors -------------------------------------------------------------------------------------


def test_a_wrong_token_is_auth_failed_at_once(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    target = actuator(fake, client, token="api-wrong")
    with pytest.raises(AuthFailed, match="401"):
        target.observe()
    assert target.http.calls == 1


def test_a_bearer_prefix_is_refused_as_launchdarkly_does(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    target = actuator(fake, client, token=f"Bearer {TOKEN}")
    with pytest.raises(AuthFailed):
        target.observe()
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_the_token_is_sent_raw(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    actuator(fake, client).observe()
    assert fake.requests[-1].headers["authorization"] == TOKEN


def test_a_read_only_token_is_auth_failed_on_write(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    fake.tokens["api-reader"] = "reader"
    target = actuator(fake, client, token="api-reader")
    with pytest.raises(AuthFailed, match="403"):
        target.apply(DISABLE, "k")
    assert target.http.calls == 2  # the observing GET, then one PATCH: never retried


def test_a_missing_token_names_the_variable_not_a_value(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    settings = LaunchDarklySettings(project=PROJECT, environment=ENV, flag=FLAG, base_url=fake.url)
    with pytest.raises(AuthFailed, match="LAUNCHDARKLY_ACCESS_TOKEN is not set"):
        build("checkout-flag", settings, BuildContext(Path("unused"), {}, client))


def test_a_conflict_is_a_precondition_and_not_retried(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    target = actuator(fake, client)
    fake.inject_on_patch(error(409, "conflict", "The flag was modified concurrently"))
    with pytest.raises(Precondition, match="409: The flag was modified concurrently"):
        target.apply(DISABLE, "k")
    assert target.http.calls == 2  # the observing GET and one PATCH


def test_an_environment_requiring_approvals_is_a_precondition(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    fake.approvals.add(ENV)
    with pytest.raises(Precondition, match="approvals may be required"):
        actuator(fake, client).apply(DISABLE, "k")


def test_an_unknown_flag_is_permanent(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    with pytest.raises(Permanent, match="404"):
        actuator(fake, client, flag="no-such-flag").observe()


def test_an_environment_the_flag_lacks_is_permanent(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    with pytest.raises(Permanent, match="the flag has no environment 'prod'"):
        actuator(fake, client, environment="prod").observe()


def test_a_rate_limit_waits_until_the_reset_epoch_in_milliseconds(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    sleeps = Sleeps()
    fake.inject_on_patch(fake.rate_limited(reset_in=7.5))
    result = actuator(fake, client, sleeps).apply(traffic(20), "k")
    assert isinstance(result, Applied)
    assert sleeps == pytest.approx([7.5])
    assert fake.environment(PROJECT, FLAG, ENV)["fallthrough"]["rollout"]["variations"][0]["weight"] == 20_000


def test_an_ip_rate_limit_honours_retry_after_seconds(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    sleeps = Sleeps()
    fake.inject(error(429, "rate_limited", "slow down", {"Retry-After": "3"}))
    actuator(fake, client, sleeps).observe()
    assert sleeps == [3.0]


def test_rate_limited_past_the_attempts_surfaces_as_rate_limited(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    sleeps = Sleeps()
    fake.inject(fake.rate_limited(reset_in=2.0), times=10)
    target = actuator(fake, client, sleeps)
    with pytest.raises(RateLimited) as raised:
        target.observe()
    assert raised.value.retry_after == pytest.approx(2.0)
    assert target.http.calls == 4
    assert sleeps == pytest.approx([2.0] * 3)


def test_a_server_error_is_retried_then_transient(fake: FakeLaunchDarkly, client: httpx.Client) -> None:
    fake.inject(error(503, "service_unavailable", "try later"), times=10)
    target = actuator(fake, client)
    with pytest.raises(Transient, match="503"):
        target.observe()
    assert target.http.calls == 4


def test_a_rejected_semantic_patch_is_permanent_with_launchdarkly_s_message(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    fake.inject_on_patch(error(400, "invalid_request", "rollout weights must sum to 100000"))
    target = actuator(fake, client)
    with pytest.raises(Permanent, match="400: rollout weights must sum to 100000"):
        target.apply(traffic(20), "k")
    assert target.http.calls == 2


def test_no_token_value_in_errors_or_logs(
    fake: FakeLaunchDarkly, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "api-leaky-9f8e7d6c"
    errors: list[str] = []
    with pytest.raises(AuthFailed) as raised:  # the fake echoes the token it got, as some vendors do
        actuator(fake, client, token=wrong).observe()
    errors.append(str(raised.value))
    fake.inject(error(500, "internal", f"boom for {TOKEN}"), times=4)  # every attempt
    with pytest.raises(Transient) as transient:
        actuator(fake, client).observe()
    errors.append(str(transient.value))
    actuator(fake, client).apply(traffic(40), "k")
    for text in [*errors, caplog.text]:
        assert TOKEN not in text
        assert wrong not in text
    assert "***" in errors[0]
    assert "launchdarkly checkout-flag: set_traffic(40%) applied (key k)" in caplog.text


# --- settings and registry ------------------------------------------------------------------------


def test_it_is_a_registered_kind_built_from_rollout_settings(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    settings = {"project": PROJECT, "environment": ENV, "flag": FLAG, "base_url": fake.url}
    target = build_actuator(
        "launchdarkly",
        "checkout-flag",
        settings,
        state_dir=Path("unused"),
        env={"LAUNCHDARKLY_ACCESS_TOKEN": TOKEN},
        http=client,
    )
    assert target.capabilities == {Op.SET_TRAFFIC, Op.DISABLE, Op.ENABLE}
    assert isinstance(target.apply(traffic(10), "k"), Applied)
    assert capabilities_of("launchdarkly", settings) == {Op.SET_TRAFFIC, Op.DISABLE, Op.ENABLE}


def test_a_misspelled_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'enviroment' \\(did you mean 'environment'"):
        capabilities_of("launchdarkly", {"project": "p", "enviroment": "e", "flag": "f"})


def test_the_same_variation_for_new_and_old_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="new_variation and old_variation are both 0"):
        capabilities_of("launchdarkly", {"project": "p", "environment": "e", "flag": "f", "old_variation": 0})


def test_settings_name_their_secret_variable() -> None:
    settings = LaunchDarklySettings(project="p", environment="e", flag="f", token_env="LD_TOKEN")
    assert settings.secret_variables() == ("LD_TOKEN",)


def test_json_patch_with_a_stale_version_is_a_conflict_in_the_fake(
    fake: FakeLaunchDarkly, client: httpx.Client
) -> None:
    # The fake's JSON Patch path (apis.md: optimistic concurrency with a `test` of /_version).
    body = json.dumps(
        [
            {"op": "test", "path": "/_version", "value": 0},
            {"op": "replace", "path": f"/environments/{ENV}/on", "value": False},
        ]
    )
    response = client.patch(
        f"{fake.url}/api/v2/flags/{PROJECT}/{FLAG}",
        content=body,
        headers={"Authorization": TOKEN, "Content-Type": "application/json"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert fake.environment(PROJECT, FLAG, ENV)["on"] is True
