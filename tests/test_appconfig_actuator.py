"""The AppConfig target with real boto3 calls against moto's server plus the deployments fake.

moto (started here on a free loopback port) holds the applications, configuration profiles
and hosted configuration versions; tests/fakes/appconfig.py serves environments, strategies
and deployments — which moto 5.2.5 does not implement — and forwards the rest to moto.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from moto.server import ThreadedMotoServer

from adapters.actuators.appconfig import AppConfig, AppConfigSettings, build
from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused
from adapters.actuators.registry import BuildContext, build_actuator, capabilities_of
from adapters.aws import translate
from adapters.errors import AuthFailed, Permanent, Precondition, RateLimited, Transient
from adapters.http import RetryPolicy
from controller.core.plan import Intent, TargetView, plan
from policies.operations import Op, Operation
from tests.fakes.appconfig import FakeAppConfig, aws_error
from tests.fakes.clock import FakeClock

ACCESS_KEY, SECRET_KEY = "AKIDTIDEGATETEST0001", "tIdEgAtE/sEcReT+kEy/0123456789abcdefghij"
ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "eu-west-1"}
MINUTE = 60.0
FLAGS = {
    "flags": {"checkout_v2": {"name": "checkout_v2"}},
    "values": {"checkout_v2": {"enabled": True}},
    "version": "1",
}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(moto_url: str, clock: FakeClock) -> Iterator[FakeAppConfig]:
    with FakeAppConfig(moto_url, clock=clock, access_keys={ACCESS_KEY}) as server:
        assert isinstance(server, FakeAppConfig)
        yield server


def admin(fake: FakeAppConfig) -> Any:
    """A plain boto3 client for setting the scene, through the same endpoint."""
    return boto3.client(
        "appconfig",
        endpoint_url=fake.url,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )


@dataclass
class Scene:
    app: str
    env: str
    profile: str
    aws: Any

    def version(self, content: dict[str, Any]) -> str:
        created = self.aws.create_hosted_configuration_version(
            ApplicationId=self.app,
            ConfigurationProfileId=self.profile,
            Content=json.dumps(content).encode(),
            ContentType="application/json",
        )
        return str(created["VersionNumber"])

    def deploy(self, version: str, strategy: str = "AppConfig.AllAtOnce", profile: str | None = None) -> int:
        started = self.aws.start_deployment(
            ApplicationId=self.app,
            EnvironmentId=self.env,
            DeploymentStrategyId=strategy,
            ConfigurationProfileId=profile or self.profile,
            ConfigurationVersion=version,
        )
        return int(started["DeploymentNumber"])

    def states(self, fake: FakeAppConfig) -> list[tuple[int, str, str]]:
        return [
            (d["DeploymentNumber"], d["ConfigurationVersion"], d["State"])
            for d in fake.deployments(self.app, self.env)
        ]


@pytest.fixture
def scene(fake: FakeAppConfig, clock: FakeClock) -> Scene:
    """Versions 1 and 2 deployed and complete; version 3 deploying (Linear 20 % every 6 min) at 20 %."""
    aws = admin(fake)
    app = aws.create_application(Name="shop")["Id"]
    profile = aws.create_configuration_profile(
        ApplicationId=app, Name="checkout", LocationUri="hosted", Type="AWS.AppConfig.FeatureFlags"
    )["Id"]
    env = aws.create_environment(ApplicationId=app, Name="production")["Id"]
    scene = Scene(app, env, profile, aws)
    for n in (1, 2, 3):
        scene.version(FLAGS | {"values": {"checkout_v2": {"enabled": True}, "release": {"n": n}}})
    for version in ("1", "2"):
        scene.deploy(version)
        clock.advance(11 * MINUTE)
    scene.deploy("3", "AppConfig.Linear20PercentEvery6Minutes")
    fake.started.clear()  # the scene's own deployments are not what a test asserts on
    return scene


def actuator(
    fake: FakeAppConfig,
    scene: Scene,
    clock: FakeClock,
    *,
    env: dict[str, str] | None = None,
    retry: RetryPolicy | None = None,
    **fields: Any,
) -> AppConfig:
    settings = AppConfigSettings.model_validate(
        {
            "application": scene.app,
            "environment": scene.env,
            "configuration_profile": scene.profile,
            "endpoint_url": fake.url,
        }
        | fields
    )
    context = BuildContext(Path("unused"), ENV if env is None else env, None)
    return build("checkout-config", settings, context, sleep=clock.sleep, clock=clock, retry=retry)


@pytest.fixture
def config(fake: FakeAppConfig, scene: Scene, clock: FakeClock) -> AppConfig:
    return actuator(fake, scene, clock)


def rollback(to: str) -> Operation:
    return Operation("checkout-config", Op.ROLLBACK, version=to)


DISABLE, ENABLE = Operation("checkout-config", Op.DISABLE), Operation("checkout-config", Op.ENABLE)


def allow_revert(fake: FakeAppConfig) -> list[str | None]:
    return [r.headers.get("allow-revert") for r in fake.stopped]


# --- observe ------------------------------------------------------------------------------


def test_observe_reports_the_deploying_version_and_its_percentage(
    config: AppConfig, clock: FakeClock
) -> None:
    assert config.observe() == Observed(
        version="3", traffic=20, detail="deployment #3 of version 3 DEPLOYING 20%"
    )
    clock.advance(13 * MINUTE)
    assert config.observe().traffic == 60
    clock.advance(60 * MINUTE)
    assert config.observe() == Observed(
        version="3", traffic=100, detail="deployment #3 of version 3 COMPLETE 100%"
    )


def test_an_alarm_rollback_is_observed_and_a_rollback_then_has_nothing_to_do(
    config: AppConfig, fake: FakeAppConfig, scene: Scene
) -> None:
    fake.alarm(scene.app, scene.env)
    assert config.observe().version == "2"
    assert config.apply(rollback("2"), "k1") == AlreadyDone(
        "version 2 is deployed (deployment #2 of version 2 COMPLETE 100%)"
    )
    assert fake.started == [] and fake.stopped == []


def test_moto_itself_still_lacks_deployments_which_is_why_the_fake_serves_them(moto_url: str) -> None:
    client = boto3.client(
        "appconfig",
        endpoint_url=moto_url,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )
    app = client.create_application(Name="probe")["Id"]
    with pytest.raises(client.exceptions.ClientError) as raised:
        client.list_deployments(ApplicationId=app, EnvironmentId="env0001")
    assert (
        raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    )  # when this fails, drop the fake's part


def test_percentage_complete_is_a_float_percentage_rounded_for_traffic(
    fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    clock.advance(74 * 3600)
    eighths = scene.aws.create_deployment_strategy(
        Name="eighths",
        DeploymentDurationInMinutes=8,
        GrowthFactor=12.5,
        FinalBakeTimeInMinutes=0,
        ReplicateTo="NONE",
    )["Id"]
    scene.deploy("1", eighths)
    config = actuator(fake, scene, clock)
    assert config.observe() == Observed(
        version="1", traffic=12, detail="deployment #4 of version 1 DEPLOYING 12.5%"
    )
    clock.advance(3 * MINUTE)  # durations are minutes: one step of 12.5 % a minute
    assert config.observe().traffic == 50


# --- rollback -----------------------------------------------------------------------------


def test_rollback_during_the_deployment_stops_it_with_allow_revert(
    config: AppConfig, fake: FakeAppConfig, scene: Scene
) -> None:
    assert config.apply(rollback("2"), "k1") == Applied(
        "stopped deployment #3 of version 3 DEPLOYING 20% with Allow-Revert: version 2 is back"
    )
    assert allow_revert(fake) == ["true"]
    assert scene.states(fake)[-1] == (3, "3", "ROLLED_BACK")
    assert config.observe().version == "2"
    assert config.apply(rollback("2"), "k1") == AlreadyDone(
        "version 2 is deployed (deployment #2 of version 2 COMPLETE 100%)"
    )
    assert len(fake.stopped) == 1 and fake.started == []


def test_rollback_within_72_hours_of_completion_reverts_the_deployment(
    config: AppConfig, fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    clock.advance(71 * 3600)
    assert config.apply(rollback("2"), "k1") == Applied(
        "stopped deployment #3 of version 3 COMPLETE 100% with Allow-Revert: version 2 is back"
    )
    assert scene.states(fake)[-1] == (3, "3", "REVERTED")
    assert config.observe().version == "2"


def test_rollback_after_72_hours_deploys_the_previous_version_again(
    config: AppConfig, fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    clock.advance(74 * 3600)
    assert config.apply(rollback("2"), "rollout-7/12/checkout-config/rollback/2") == Applied(
        "started deployment #4 of version 2 (AppConfig.AllAtOnce)"
    )
    body = fake.started[-1].json()
    assert body["ConfigurationVersion"] == "2" and body["DeploymentStrategyId"] == "AppConfig.AllAtOnce"
    assert body["LatestDeploymentNumber"] == 3  # no silent overwrite of a deployment started meanwhile
    assert "rollout-7/12/checkout-config/rollback/2" in body["Description"]
    assert fake.stopped == []
    assert config.observe() == Observed(
        version="2", traffic=100, detail="deployment #4 of version 2 BAKING 100%"
    )


def test_rollback_further_back_stops_the_deployment_then_deploys_the_older_version(
    config: AppConfig, fake: FakeAppConfig, scene: Scene
) -> None:
    assert config.apply(rollback("1"), "k1") == Applied(
        "started deployment #4 of version 1 (AppConfig.AllAtOnce)"
    )
    assert scene.states(fake)[-2:] == [(3, "3", "ROLLED_BACK"), (4, "1", "BAKING")]


def test_the_rollback_strategy_is_configurable(fake: FakeAppConfig, scene: Scene, clock: FakeClock) -> None:
    quick = scene.aws.create_deployment_strategy(
        Name="rollback",
        DeploymentDurationInMinutes=0,
        GrowthFactor=100,
        FinalBakeTimeInMinutes=0,
        ReplicateTo="NONE",
    )["Id"]
    clock.advance(74 * 3600)
    config = actuator(fake, scene, clock, deployment_strategy=quick)
    config.apply(rollback("1"), "k1")
    assert config.observe() == Observed(
        version="1", traffic=100, detail="deployment #4 of version 1 COMPLETE 100%"
    )


def test_another_deployment_in_the_environment_is_a_conflict_and_a_precondition(
    fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    clock.advance(74 * 3600)
    other = scene.aws.create_configuration_profile(
        ApplicationId=scene.app, Name="banner", LocationUri="hosted"
    )["Id"]
    scene.aws.create_hosted_configuration_version(
        ApplicationId=scene.app, ConfigurationProfileId=other, Content=b"{}", ContentType="application/json"
    )
    scene.deploy("1", "AppConfig.Linear20PercentEvery6Minutes", profile=other)
    with pytest.raises(
        Precondition, match=r"start_deployment → 409 ConflictException: Deployment #4 is already in progress"
    ):
        actuator(fake, scene, clock).apply(rollback("2"), "k1")


def test_a_rollback_to_a_version_that_does_not_exist_is_permanent(
    config: AppConfig, scene: Scene, clock: FakeClock
) -> None:
    clock.advance(74 * 3600)
    with pytest.raises(Permanent, match="start_deployment → 404 ResourceNotFoundException"):
        config.apply(rollback("9"), "k1")


# --- crash between intent and result --------------------------------------------------------


def test_a_new_instance_after_a_lost_start_reply_finds_the_rollback_under_way(
    fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    clock.advance(74 * 3600)
    fake.lose_next_start_reply = True  # AppConfig started it; the answer never arrived
    with pytest.raises(Transient):
        actuator(fake, scene, clock, retry=RetryPolicy(attempts=1)).apply(rollback("2"), "k1")
    restarted = actuator(fake, scene, clock)
    assert restarted.apply(rollback("2"), "k1") == AlreadyDone(
        "version 2 is deployed (deployment #4 of version 2 BAKING 100%)"
    )
    assert len(fake.started) == 1


# --- feature flag off / on ------------------------------------------------------------------


def test_disable_deploys_a_new_hosted_version_with_the_flag_off(
    fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    clock.advance(60 * MINUTE)  # version 3 complete
    config = actuator(fake, scene, clock, flag="checkout_v2")
    assert config.observe().enabled is True
    assert config.apply(DISABLE, "k1") == Applied("flag checkout_v2 off: version 4 in deployment #4")
    stored = scene.aws.get_hosted_configuration_version(
        ApplicationId=scene.app, ConfigurationProfileId=scene.profile, VersionNumber=4
    )
    content = json.loads(stored["Content"].read())
    assert content["values"] == {
        "checkout_v2": {"enabled": False},
        "release": {"n": 3},
    }  # nothing else changed
    assert config.observe() == Observed(
        version="4", traffic=100, enabled=False, detail="deployment #4 of version 4 BAKING 100%"
    )
    assert config.apply(DISABLE, "k1") == AlreadyDone("flag checkout_v2 is off in version 4")
    clock.advance(11 * MINUTE)
    assert config.apply(ENABLE, "k2") == Applied("flag checkout_v2 on: version 5 in deployment #5")
    assert config.observe().enabled is True


def test_flags_are_capabilities_only_with_a_flag_setting(config: AppConfig, fake: FakeAppConfig) -> None:
    base = {"application": "a", "environment": "e", "configuration_profile": "p"}
    assert capabilities_of("appconfig", base) == {Op.ROLLBACK}
    assert capabilities_of("appconfig", base | {"flag": "checkout_v2"}) == {
        Op.ROLLBACK,
        Op.DISABLE,
        Op.ENABLE,
    }
    result = config.apply(DISABLE, "k1")
    assert result == Refused(
        "appconfig cannot disable without a `flag` setting (a hosted feature-flag profile)"
    )


def test_a_flag_the_configuration_does_not_have_is_refused(
    fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    config = actuator(fake, scene, clock, flag="no_such_flag")
    assert config.apply(DISABLE, "k1") == Refused("appconfig: version 3 has no flag 'no_such_flag'")


# --- what AppConfig cannot do ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (Operation("checkout-config", Op.SET_TRAFFIC, traffic=50), "grows by its deployment strategy"),
        (Operation("checkout-config", Op.PAUSE), "StopDeployment rolls back instead"),
        (Operation("checkout-config", Op.ROLLBACK), "needs the configuration version"),
        (Operation("web", Op.ROLLBACK, version="2"), "sent to 'checkout-config'"),
    ],
)
def test_what_appconfig_cannot_do_is_refused_without_a_call(
    config: AppConfig, fake: FakeAppConfig, operation: Operation, reason: str
) -> None:
    fake.requests.clear()
    result = config.apply(operation, "k1")
    assert isinstance(result, Refused) and reason in result.reason
    assert fake.requests == []


def test_the_planner_rolls_appconfig_back_by_api() -> None:
    capabilities = capabilities_of(
        "appconfig", {"application": "a", "environment": "e", "configuration_profile": "p"}
    )
    target = plan(
        Intent.ROLLBACK, 0, "2", [TargetView("checkout-config", "appconfig", capabilities)]
    ).targets[0]
    assert target.operations == (rollback("2"),) and target.manual is None
    advance = plan(
        Intent.ADVANCE, 10, "2", [TargetView("checkout-config", "appconfig", capabilities)]
    ).targets[0]
    assert advance.operations == ()  # the deployment strategy ramps, not tidegate


# --- errors -----------------------------------------------------------------------------------


def test_an_unknown_access_key_is_auth_failed_and_not_retried(
    fake: FakeAppConfig, scene: Scene, clock: FakeClock
) -> None:
    fake.requests.clear()
    config = actuator(fake, scene, clock, env=ENV | {"AWS_ACCESS_KEY_ID": "AKIDSTRANGER"})
    with pytest.raises(AuthFailed, match="403 UnrecognizedClientException: The security token included"):
        config.observe()
    assert len(fake.requests) == 1 and clock.sleeps == []


def test_no_credentials_at_all_is_auth_failed() -> None:
    assert isinstance(translate(NoCredentialsError(), "list_deployments"), AuthFailed)


def test_an_unknown_environment_is_404_permanent(fake: FakeAppConfig, scene: Scene, clock: FakeClock) -> None:
    config = actuator(fake, scene, clock, environment="env9999")
    with pytest.raises(
        Permanent, match="list_deployments → 404 ResourceNotFoundException: Environment env9999"
    ):
        config.observe()


def test_5xx_is_retried_with_backoff(config: AppConfig, fake: FakeAppConfig, clock: FakeClock) -> None:
    config.observe()
    fake.inject(aws_error(500, "InternalServerException", "Something went wrong."), times=2)
    assert config.apply(rollback("2"), "k1") == Applied(
        "stopped deployment #3 of version 3 DEPLOYING 20% with Allow-Revert: version 2 is back"
    )
    assert len(clock.sleeps) == 2 and all(0 < s <= 8 for s in clock.sleeps)


def test_5xx_every_time_is_transient(config: AppConfig, fake: FakeAppConfig) -> None:
    config.observe()
    fake.inject(aws_error(503, "ServiceUnavailable", "Unavailable"), times=10)
    with pytest.raises(Transient, match="list_deployments → 503 ServiceUnavailable"):
        config.observe()


def test_429_honours_retry_after(config: AppConfig, fake: FakeAppConfig, clock: FakeClock) -> None:
    config.observe()
    limited = aws_error(429, "TooManyRequestsException", "Rate exceeded")
    limited.headers["Retry-After"] = "3"
    fake.inject(limited)
    assert config.observe().version == "3"
    assert clock.sleeps == [3.0]


def test_throttling_every_time_is_rate_limited(config: AppConfig, fake: FakeAppConfig) -> None:
    config.observe()
    fake.inject(aws_error(400, "ThrottlingException", "Rate exceeded"), times=10)
    with pytest.raises(RateLimited, match="400 ThrottlingException: Rate exceeded"):
        config.observe()


def test_an_unreachable_endpoint_is_transient(scene: Scene, fake: FakeAppConfig, clock: FakeClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    config = actuator(fake, scene, clock, endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(Transient, match="Could not connect to the endpoint URL"):
        config.observe()
    assert len(clock.sleeps) == 3
    assert isinstance(translate(EndpointConnectionError(endpoint_url="http://x"), "op"), Transient)


# --- secrets -----------------------------------------------------------------------------------


def test_no_secret_key_or_session_token_reaches_an_error_or_a_log(
    fake: FakeAppConfig, scene: Scene, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # botocore logs request headers and response bodies at DEBUG
    token = "FwoGZXIvYXdzEBYaDtidegateSessionTokenValue0123456789"
    config = actuator(fake, scene, clock, env=ENV | {"AWS_SESSION_TOKEN": token})
    config.observe()
    assert "X-Amz-Security-Token" in caplog.text  # botocore did log the headers
    fake.inject(aws_error(403, "AccessDeniedException", f"User with secret {SECRET_KEY} is not authorized"))
    with pytest.raises(AuthFailed) as raised:
        config.apply(rollback("2"), "k1")
    assert "***" in str(raised.value)
    fake.inject(aws_error(409, "ConflictException", f"busy {SECRET_KEY}"))
    with pytest.raises(Precondition) as conflict:
        config.apply(rollback("2"), "k1")
    for text in (str(raised.value), str(conflict.value), caplog.text):
        assert SECRET_KEY not in text and token not in text


# --- settings -------------------------------------------------------------------------------------


def test_the_registry_builds_it_with_the_given_environment(
    fake: FakeAppConfig, scene: Scene, tmp_path: Path
) -> None:
    settings = {
        "application": scene.app,
        "environment": scene.env,
        "configuration_profile": scene.profile,
        "endpoint_url": fake.url,
    }
    config = build_actuator("appconfig", "checkout-config", settings, state_dir=tmp_path, env=ENV)
    assert config.capabilities == {Op.ROLLBACK}
    assert config.observe().version == "3"
