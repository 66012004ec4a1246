"""The Unleash target against a REAL unleash-server (open-source, npm), started once per session.

See tests/unleash_server.py for how it is installed and started. Each test makes its own
feature, so tests share the server but not state. Without Node.js, the npm package or
PostgreSQL these tests skip with the reason — in CI (CI=true) they fail instead.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.actuators.base import AlreadyDone, Applied, Refused
from adapters.actuators.registry import BuildContext, build_actuator, capabilities_of
from adapters.actuators.unleash import Unleash, UnleashSettings, build
from adapters.errors import AuthFailed, ConfigError, Permanent, Precondition
from policies.operations import Op, Operation
from tests.fakes.server import FakeVendor, Reply
from tests.unleash_server import UnleashServer, require_unleash, shared_unleash

ENV = "production"
TARGET = "checkout-flag"


@pytest.fixture(scope="session")
def unleash(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[UnleashServer]:
    require_unleash()
    run_dir = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # xdist: each worker's folder is inside the run's
        run_dir = run_dir.parent
    with shared_unleash(run_dir) as server:
        yield server


@pytest.fixture(scope="session")
def admin(unleash: UnleashServer) -> Iterator[httpx.Client]:
    with unleash.admin() as client:
        yield client


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


@pytest.fixture
def feature(admin: httpx.Client) -> str:
    """A new feature in the default project, off everywhere, with no strategy."""
    name = f"tidegate-{uuid.uuid4().hex[:10]}"
    admin.post("/projects/default/features", json={"name": name}).raise_for_status()
    return name


def actuator(
    unleash: UnleashServer, client: httpx.Client, feature: str, token: str | None = None, **fields: Any
) -> Unleash:
    settings = UnleashSettings.model_validate(
        {"base_url": unleash.url, "feature": feature, "environment": ENV, "token_env": "UNLEASH_TOKEN"}
        | fields
    )
    context = BuildContext(Path("unused"), {"UNLEASH_TOKEN": token or unleash.token}, client)
    return build(TARGET, settings, context, sleep=lambda seconds: None)


def strategies(admin: httpx.Client, feature: str, env: str = ENV) -> list[dict[str, Any]]:
    response = admin.get(f"/projects/default/features/{feature}/environments/{env}/strategies")
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


def add_strategy(admin: httpx.Client, feature: str, rollout: str, **fields: Any) -> str:
    body = {
        "name": "flexibleRollout",
        "constraints": [],
        "parameters": {"rollout": rollout, "groupId": feature},
    }
    response = admin.post(
        f"/projects/default/features/{feature}/environments/{ENV}/strategies", json=body | fields
    )
    response.raise_for_status()
    return str(response.json()["id"])


def traffic(percent: int) -> Operation:
    return Operation(TARGET, Op.SET_TRAFFIC, traffic=percent)


DISABLE = Operation(TARGET, Op.DISABLE)
ENABLE = Operation(TARGET, Op.ENABLE)


# --- set_traffic ------------------------------------------------------------------------------


def test_set_traffic_creates_a_flexible_rollout_whose_rollout_is_a_string_percentage(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    target = actuator(unleash, client, feature)
    assert target.observe().traffic is None  # no strategy yet
    assert isinstance(target.apply(traffic(10), "r1/1/checkout-flag/set_traffic/10"), Applied)
    (strategy,) = strategies(admin, feature)
    assert strategy["name"] == "flexibleRollout"
    assert strategy["parameters"] == {"rollout": "10", "stickiness": "default", "groupId": feature}
    observed = target.observe()
    assert (observed.traffic, observed.enabled) == (10, False)  # a strategy does not switch it on


def test_set_traffic_moves_the_existing_strategy_and_keeps_its_other_parameters(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    strategy_id = add_strategy(admin, feature, "100", title="release")
    admin.patch(
        f"/projects/default/features/{feature}/environments/{ENV}/strategies/{strategy_id}",
        json=[{"op": "replace", "path": "/parameters/stickiness", "value": "sessionId"}],
    ).raise_for_status()
    target = actuator(unleash, client, feature)
    assert target.observe().traffic == 100
    assert isinstance(target.apply(traffic(25), "k"), Applied)
    (strategy,) = strategies(admin, feature)
    assert strategy["id"] == strategy_id
    assert strategy["parameters"] == {"rollout": "25", "stickiness": "sessionId", "groupId": feature}
    assert target.observe().traffic == 25


def test_set_traffic_zero_keeps_the_feature_on_for_no_one(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    target = actuator(unleash, client, feature)
    target.apply(ENABLE, "k1")  # Unleash adds a flexibleRollout at 100 % to an empty environment
    assert target.observe().traffic == 100
    target.apply(traffic(0), "k2")
    assert [s["parameters"]["rollout"] for s in strategies(admin, feature)] == ["0"]
    observed = target.observe()
    assert (observed.traffic, observed.enabled) == (0, True)


def test_strategy_title_says_which_of_several_rollouts_is_moved(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    add_strategy(admin, feature, "100", title="internal users")
    canary = add_strategy(admin, feature, "5", title="canary")
    ambiguous = actuator(unleash, client, feature)
    assert ambiguous.observe().traffic is None
    refused = ambiguous.apply(traffic(20), "k")
    assert isinstance(refused, Refused)
    assert "set strategy_title" in refused.reason
    assert isinstance(
        actuator(unleash, client, feature, strategy_title="canary").apply(traffic(20), "k"), Applied
    )
    rollouts = {s["title"]: s["parameters"]["rollout"] for s in strategies(admin, feature)}
    assert rollouts == {"internal users": "100", "canary": "20"}
    assert canary in {s["id"] for s in strategies(admin, feature)}


def test_a_new_strategy_gets_the_configured_title(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    actuator(unleash, client, feature, strategy_title="tidegate").apply(traffic(15), "k")
    (strategy,) = strategies(admin, feature)
    assert (strategy["title"], strategy["parameters"]["rollout"]) == ("tidegate", "15")


def test_a_disabled_strategy_is_not_the_rollout(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    add_strategy(admin, feature, "50", disabled=True)
    target = actuator(unleash, client, feature)
    assert target.observe().traffic is None
    target.apply(traffic(30), "k")
    assert sorted((s["disabled"], s["parameters"]["rollout"]) for s in strategies(admin, feature)) == [
        (False, "30"),
        (True, "50"),
    ]


# --- on / off ---------------------------------------------------------------------------------------


def test_enable_and_disable_switch_the_feature_in_that_environment_only(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    target = actuator(unleash, client, feature)
    assert isinstance(target.apply(ENABLE, "k1"), Applied)
    environments = {
        e["name"]: e["enabled"]
        for e in admin.get(f"/projects/default/features/{feature}").json()["environments"]
    }
    assert environments == {"development": False, "production": True}
    assert isinstance(target.apply(DISABLE, "k2"), Applied)
    assert target.observe().enabled is False


# --- idempotency ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", [traffic(40), traffic(0), ENABLE, DISABLE], ids=str)
def test_repeating_an_operation_is_already_done(
    unleash: UnleashServer, client: httpx.Client, feature: str, operation: Operation
) -> None:
    target = actuator(unleash, client, feature)
    target.apply(ENABLE if operation.op is Op.DISABLE else DISABLE, "setup")
    target.apply(operation, "k")
    calls = target.http.calls
    assert isinstance(target.apply(operation, "k"), AlreadyDone)
    assert target.http.calls == calls + 1  # the observing GET, no write


def test_crash_between_intent_and_result_is_reconciled_by_observing(
    unleash: UnleashServer, client: httpx.Client, admin: httpx.Client, feature: str
) -> None:
    key = "r1/4/checkout-flag/set_traffic/50"
    assert isinstance(actuator(unleash, client, feature).apply(traffic(50), key), Applied)
    # the controller dies before journaling the result; after the restart a new actuator resumes
    assert isinstance(actuator(unleash, client, feature).apply(traffic(50), key), AlreadyDone)
    assert len(strategies(admin, feature)) == 1


# --- errors ----------------------------------------------------------------------------------------------


def test_a_wrong_token_is_auth_failed_without_retries(
    unleash: UnleashServer, client: httpx.Client, feature: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"*:*.{uuid.uuid4().hex}"
    target = actuator(unleash, client, feature, token=wrong)
    with pytest.raises(AuthFailed, match="401") as raised:
        target.apply(DISABLE, "k")
    assert target.http.calls == 1
    for text in (str(raised.value), caplog.text):
        assert wrong not in text
        assert unleash.token not in text


def test_an_unknown_feature_is_permanent_and_says_so(unleash: UnleashServer, client: httpx.Client) -> None:
    target = actuator(unleash, client, "no-such-feature")
    with pytest.raises(Permanent) as raised:
        target.apply(ENABLE, "k")
    assert 'no feature named "no-such-feature" in project "default"' in str(raised.value)
    assert str(raised.value).startswith(
        f"unleash '{TARGET}': GET /api/admin/projects/default/features/no-such-feature"
    )
    assert target.http.calls == 1


def test_an_unknown_environment_is_permanent(
    unleash: UnleashServer, client: httpx.Client, feature: str
) -> None:
    with pytest.raises(Permanent, match=f"404: Could not find {feature} in staging"):
        actuator(unleash, client, feature, environment="staging").observe()


def test_an_unknown_project_is_permanent(unleash: UnleashServer, client: httpx.Client, feature: str) -> None:
    with pytest.raises(Permanent, match="404"):
        actuator(unleash, client, feature, project="no-such-project").observe()


def test_no_token_value_in_errors_or_logs(
    unleash: UnleashServer, client: httpx.Client, feature: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = actuator(unleash, client, feature)
    target.apply(traffic(35), "k1")
    target.apply(ENABLE, "k2")
    with pytest.raises(Permanent) as raised:
        actuator(unleash, client, "no-such-feature").observe()
    assert unleash.token not in caplog.text
    assert unleash.token not in str(raised.value)
    assert f"unleash {TARGET}: set_traffic(35%) applied (key k1)" in caplog.text


def test_it_is_a_registered_kind_built_from_rollout_settings(
    unleash: UnleashServer, client: httpx.Client, feature: str
) -> None:
    settings = {"base_url": unleash.url, "feature": feature, "environment": ENV}
    target = build_actuator(
        "unleash",
        TARGET,
        settings,
        state_dir=Path("unused"),
        env={"UNLEASH_ADMIN_TOKEN": unleash.token},
        http=client,
    )
    assert isinstance(target.apply(traffic(5), "k"), Applied)
    assert target.observe().traffic == 5


# --- no server needed -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        Operation(TARGET, Op.ROLLBACK, version="v1"),
        Operation(TARGET, Op.RESUME),
        Operation(TARGET, Op.SET_TRAFFIC, traffic=150),  # Unleash itself stores "150" without a word
        Operation(TARGET, Op.SET_TRAFFIC, traffic=-1),
        Operation("another-target", Op.ENABLE),
    ],
    ids=str,
)
def test_what_it_cannot_do_is_refused_before_any_request(client: httpx.Client, operation: Operation) -> None:
    settings = UnleashSettings(base_url="http://127.0.0.1:9", feature="f", environment=ENV, token_env="T")
    target = build(TARGET, settings, BuildContext(Path("unused"), {"T": "*:*.x"}, client))
    assert isinstance(target.apply(operation, "k"), Refused)
    assert target.http.calls == 0


def test_a_missing_token_names_the_variable(client: httpx.Client) -> None:
    settings = UnleashSettings(base_url="http://127.0.0.1:9", feature="f", environment=ENV)
    with pytest.raises(AuthFailed, match="UNLEASH_ADMIN_TOKEN is not set"):
        build(TARGET, settings, BuildContext(Path("unused"), {}, client))


def test_settings_are_checked_with_the_field_named() -> None:
    assert capabilities_of("unleash", {"base_url": "http://u", "feature": "f", "environment": "e"}) == {
        Op.SET_TRAFFIC,
        Op.DISABLE,
        Op.ENABLE,
    }
    with pytest.raises(ConfigError, match="unknown setting 'strategy' \\(did you mean 'strategy_title'"):
        capabilities_of(
            "unleash", {"base_url": "http://u", "feature": "f", "environment": "e", "strategy": "x"}
        )
    with pytest.raises(ConfigError, match=r"environment: field required"):
        capabilities_of("unleash", {"base_url": "http://u", "feature": "f"})


class _ChangeRequests(FakeVendor):
    """Unleash Enterprise with change requests on (not in the open-source server): writes get 403."""

    def __init__(self) -> None:
        super().__init__()
        env = r"/api/admin/projects/default/features/f/environments/production"
        self.route("GET", env, lambda request: Reply(200, {"name": "f", "enabled": False, "strategies": []}))
        self.route(
            "POST",
            env + "/on",
            lambda request: Reply(
                403,
                {
                    "id": str(uuid.uuid4()),
                    "name": "PermissionError",
                    "message": "You need the SKIP_CHANGE_REQUEST permission to perform this.",
                },
            ),
        )
        self.route(
            "POST",
            env + "/strategies",
            lambda request: Reply(
                400,
                {
                    "name": "BadDataError",
                    "message": "Request validation failed: your request body or params contain invalid data.",
                    "details": [{"message": "The `/parameters/rollout` property must be string."}],
                },
            ),
        )


def test_a_change_request_demand_is_a_precondition_and_bad_data_names_the_detail(
    client: httpx.Client,
) -> None:
    with _ChangeRequests() as fake:
        settings = UnleashSettings(base_url=fake.url, feature="f", environment=ENV, token_env="T")
        target = build(TARGET, settings, BuildContext(Path("unused"), {"T": "*:*.x"}, client))
        with pytest.raises(Precondition, match="change requests are enabled here"):
            target.apply(ENABLE, "k")
        with pytest.raises(
            Permanent, match=r"invalid data\. \(The `/parameters/rollout` property must be string\.\)"
        ):
            target.apply(traffic(10), "k")
