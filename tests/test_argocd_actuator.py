"""The Argo CD target against a loopback Argo CD: auto-sync off, exact history id, operation polling.

Every exchange of every test is checked against Argo CD's published swagger (autouse fixture):
the actuator's request bodies and the fake's answers alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.actuators.argocd import AUTO_SYNC_OFF, AUTO_SYNC_REFUSAL, IN_PROGRESS, ArgoCD, ArgoCDSettings
from adapters.actuators.base import AlreadyDone, Applied, Refused
from adapters.actuators.registry import build_actuator, capabilities_of
from adapters.errors import AuthFailed, ConfigError, Permanent, Precondition, Transient
from adapters.http import RetryPolicy
from policies.operations import Op, Operation
from tests.fakes.argocd import FakeArgoCD, grpc_error
from tests.fakes.clock import FakeClock
from tests.fakes.server import Reply, Request
from tests.fakes.swagger import Swagger

TOKEN = "argocd-token-0123456789"
APP = "checkout"


def sha(n: int) -> str:
    return hashlib.sha1(str(n).encode()).hexdigest()


V1, V2, V3 = sha(1), sha(2), sha(3)  # V3 is the bad release, V2 the one to go back to


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeArgoCD]:
    with FakeArgoCD([TOKEN], readers=["reader-token-42"], clock=clock) as server:
        assert isinstance(server, FakeArgoCD)
        server.add_app(APP, [V1, V2, V3])  # history ids 3, 4, 5; auto-sync on
        yield server
        _check_against_swagger(server)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


def _check_against_swagger(fake: FakeArgoCD) -> None:
    spec = Swagger.load("argocd-swagger.json")
    for request, reply in fake.exchanges:
        if request.method == "PATCH":
            spec.check("applicationApplicationPatchRequest", request.json())
            spec.check_merge_patch("v1alpha1Application", json.loads(request.json()["patch"]))
        if request.path.endswith("/rollback"):
            spec.check("applicationApplicationRollbackRequest", request.json())
        spec.check("v1alpha1Application" if reply.status == 200 else "runtimeError", reply.body)


def _argocd(
    fake: FakeArgoCD,
    client: httpx.Client,
    clock: FakeClock,
    env: dict[str, str] | None = None,
    **settings: object,
) -> ArgoCD:
    values = {"server": fake.url, "application": APP, "project": "default", "wait_timeout": "1m"} | settings
    return ArgoCD(
        APP,
        ArgoCDSettings.model_validate(values),
        client,
        {"ARGOCD_TOKEN": TOKEN} if env is None else env,
        sleep=clock.sleep,
        clock=clock,
        retry=RetryPolicy(attempts=3, initial=0.5),
    )


def rollback(version: str) -> Operation:
    return Operation(APP, Op.ROLLBACK, version=version)


def _rollback_ids(fake: FakeArgoCD) -> list[int]:
    return [request.json()["id"] for request in fake.rollbacks()]


def _head(fake: FakeArgoCD) -> tuple[int, str]:
    entry = fake.app(APP)["status"]["history"][-1]
    return entry["id"], entry["revision"]


# -- rollback -------------------------------------------------------------------------------


def test_rollback_switches_auto_sync_off_then_rolls_back_to_the_exact_history_id(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    result = _argocd(fake, client, clock).apply(rollback(V2), "k1")

    assert result == Applied(f"rolled back to history id 4 (revision {V2}); {AUTO_SYNC_OFF}")
    assert fake.patches() == [{"spec": {"syncPolicy": {"automated": {"enabled": False}}}}]
    assert _rollback_ids(fake) == [4]
    methods = [r.method for r, _ in fake.exchanges]
    assert methods.index("PATCH") < methods.index("POST")
    assert _head(fake) == (6, V2)  # a rollback appends a new entry with the next id
    assert fake.app(APP)["spec"]["syncPolicy"]["automated"] == {
        "prune": True,
        "selfHeal": True,
        "enabled": False,
    }


def test_the_result_says_auto_sync_is_off_and_re_enabling_is_a_humans_call(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    result = _argocd(fake, client, clock).apply(rollback(V2), "k1")
    assert isinstance(result, Applied)
    assert "auto-sync is now OFF; re-enable it by hand once the fix is in git" in result.detail


def test_completion_is_read_from_the_cleared_operation_not_the_stale_phase(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.queued_polls, fake.running_polls = 3, 4  # the old Succeeded phase lingers for 3 polls
    result = _argocd(fake, client, clock, poll_interval="2s").apply(rollback(V2), "k1")
    assert isinstance(result, Applied)
    assert _head(fake) == (6, V2)
    assert clock.sleeps == [2.0] * 7


def test_rolling_back_again_is_already_done_without_a_second_operation(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    argocd = _argocd(fake, client, clock)
    argocd.apply(rollback(V2), "k1")
    again = argocd.apply(rollback(V2), "k1")
    assert again == AlreadyDone(f"already at history id 6 (revision {V2}); {AUTO_SYNC_OFF}")
    assert _rollback_ids(fake) == [4]
    assert fake.history_ids(APP) == [3, 4, 5, 6]


class _Killed(BaseException):
    """The process dies (SIGKILL) while it waits: nothing after this line runs."""


def _dies(seconds: float) -> None:
    raise _Killed


def test_crash_after_the_rollback_started_new_instance_waits_for_it_and_reports_already_done(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    doomed = _argocd(fake, client, clock)
    doomed._sleep = _dies  # dies at its first poll, after POST rollback and before any result
    with pytest.raises(_Killed):
        doomed.apply(rollback(V2), "k1")
    assert _rollback_ids(fake) == [4]

    result = _argocd(fake, client, clock).apply(rollback(V2), "k1")

    assert result == AlreadyDone(
        f"a rollback already in flight finished at history id 6 (revision {V2}); {AUTO_SYNC_OFF}"
    )
    assert _rollback_ids(fake) == [4]  # never initiated twice (a second POST would be a 412 anyway)


def test_crash_after_the_rollback_finished_new_instance_reports_already_done(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    _argocd(fake, client, clock).apply(rollback(V2), "k1")
    result = _argocd(fake, client, clock).apply(rollback(V2), "k1")
    assert isinstance(result, AlreadyDone)
    assert AUTO_SYNC_OFF in result.detail
    assert _rollback_ids(fake) == [4]


def test_an_auto_sync_of_the_bad_release_in_flight_is_waited_for_then_rolled_back(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.apps.clear()
    fake.add_app(APP, [V1, V2], git=V3)  # live is V2, git moved to V3, auto-sync is deploying it
    fake.start_sync(APP, V3)

    result = _argocd(fake, client, clock).apply(rollback(V2), "k1")

    assert result == Applied(f"rolled back to history id 4 (revision {V2}); {AUTO_SYNC_OFF}")
    assert [(e["id"], e["revision"]) for e in fake.app(APP)["status"]["history"]] == [
        (3, V1),
        (4, V2),
        (5, V3),
        (6, V2),
    ]


def test_another_operation_running_past_the_wait_timeout_is_a_precondition(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.running_polls = 10_000
    fake.start_sync(APP, V3, automated=False)  # a human's sync
    with pytest.raises(Precondition, match=IN_PROGRESS):
        _argocd(fake, client, clock, wait_timeout="30s").apply(rollback(V2), "k1")
    assert fake.rollbacks() == []
    assert fake.patches() == [{"spec": {"syncPolicy": {"automated": {"enabled": False}}}}]
    assert 30 <= clock.slept <= 35


class _RacingArgoCD(FakeArgoCD):
    """Someone starts a sync between tidegate's PATCH and its POST rollback."""

    def patch_app(self, request: Request) -> Reply:
        reply = super().patch_app(request)
        self.start_sync(APP, V3, automated=False)
        return reply


def test_a_412_operation_in_progress_on_post_is_waited_out_and_retried_once(
    client: httpx.Client, clock: FakeClock
) -> None:
    with _RacingArgoCD([TOKEN], clock=clock) as racing:
        assert isinstance(racing, _RacingArgoCD)
        racing.add_app(APP, [V1, V2, V3])
        result = _argocd(racing, client, clock).apply(rollback(V2), "k1")
        refusals = [reply.body["message"] for _, reply in racing.exchanges if reply.status == 412]
        assert refusals == [IN_PROGRESS]
        assert isinstance(result, Applied)
        assert _head(racing) == (7, V2)  # the other sync landed as 6, the rollback as 7
        _check_against_swagger(racing)


def test_rollback_still_running_at_the_deadline_is_transient_and_the_retry_resumes_waiting(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.running_polls = 10_000
    argocd = _argocd(fake, client, clock, wait_timeout="20s")
    with pytest.raises(Transient, match="rollback still running"):
        argocd.apply(rollback(V2), "k1")
    fake.running_polls = 0  # the controller finally gets to it
    result = argocd.apply(rollback(V2), "k1")
    assert isinstance(result, AlreadyDone)
    assert _rollback_ids(fake) == [4]


def test_a_rollback_that_fails_in_argo_cd_is_permanent_and_still_says_auto_sync_is_off(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.outcome = "Failed"
    with pytest.raises(Permanent) as raised:
        _argocd(fake, client, clock).apply(rollback(V2), "k1")
    assert "ended Failed: one or more objects failed" in str(raised.value)
    assert AUTO_SYNC_OFF in str(raised.value)
    assert _head(fake) == (5, V3)


# -- version → history entry ----------------------------------------------------------------


def test_a_release_name_maps_to_its_revision_through_settings(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    argocd = _argocd(fake, client, clock, revisions={"2.3.9": V2, "2.4.0": V3})
    assert argocd.observe().version == "2.4.0"
    assert isinstance(argocd.apply(rollback("2.3.9"), "k1"), Applied)
    assert _rollback_ids(fake) == [4]
    assert argocd.observe().version == "2.3.9"


def test_an_abbreviated_sha_matches_the_full_revision(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    assert isinstance(_argocd(fake, client, clock).apply(rollback(V2[:8]), "k1"), Applied)
    assert _rollback_ids(fake) == [4]


def test_a_tag_pinned_app_matches_the_tag_recorded_as_target_revision(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.apps.clear()
    fake.add_app(APP, [V1, V2, V3], pinned={V1: "v2.3.8", V2: "v2.3.9", V3: "v2.4.0"})
    argocd = _argocd(fake, client, clock)
    assert isinstance(argocd.apply(rollback("v2.3.9"), "k1"), Applied)
    assert _rollback_ids(fake) == [4]
    assert isinstance(argocd.apply(rollback("v2.3.9"), "k1"), AlreadyDone)


def test_the_newest_entry_with_the_revision_wins(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.apps.clear()
    fake.add_app(APP, [V2, V1, V2, V3], first_id=10)  # ids 10..13
    _argocd(fake, client, clock).apply(rollback(V2), "k1")
    assert _rollback_ids(fake) == [12]


def test_a_version_not_in_history_is_refused_and_nothing_is_touched(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    result = _argocd(fake, client, clock).apply(rollback("2.3.9"), "k1")
    assert isinstance(result, Refused)
    assert "no history entry for 2.3.9" in result.reason
    assert f"4: {V2}" in result.reason and "settings.revisions" in result.reason
    assert fake.patches() == [] and fake.rollbacks() == []


# -- auto-sync that will not stay off -------------------------------------------------------


def test_a_server_that_ignores_automated_enabled_gets_automated_removed(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.honours_enabled = False
    result = _argocd(fake, client, clock).apply(rollback(V2), "k1")
    assert isinstance(result, Applied)
    assert fake.patches() == [
        {"spec": {"syncPolicy": {"automated": {"enabled": False}}}},
        {"spec": {"syncPolicy": {"automated": None}}},
    ]
    assert "automated" not in fake.app(APP)["spec"]["syncPolicy"]


def test_auto_sync_switched_back_on_behind_our_back_is_a_precondition_naming_the_parent_app(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.parent_reenables = True
    with pytest.raises(Precondition) as raised:
        _argocd(fake, client, clock).apply(rollback(V2), "k1")
    message = str(raised.value)
    assert "412" in message and AUTO_SYNC_REFUSAL in message and "app-of-apps" in message
    assert _head(fake) == (5, V3)


# -- pause / resume -------------------------------------------------------------------------


def test_pause_switches_auto_sync_off_once(fake: FakeArgoCD, client: httpx.Client, clock: FakeClock) -> None:
    argocd = _argocd(fake, client, clock)
    assert isinstance(argocd.apply(Operation(APP, Op.PAUSE), "k1"), Applied)
    assert isinstance(argocd.apply(Operation(APP, Op.PAUSE), "k1"), AlreadyDone)
    assert argocd.observe().paused is True
    assert len(fake.patches()) == 1


def test_resume_switches_auto_sync_back_on_keeping_prune_and_self_heal(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    argocd = _argocd(fake, client, clock)
    argocd.apply(Operation(APP, Op.PAUSE), "k1")
    assert isinstance(argocd.apply(Operation(APP, Op.RESUME), "k2"), Applied)
    assert isinstance(argocd.apply(Operation(APP, Op.RESUME), "k2"), AlreadyDone)
    assert fake.app(APP)["spec"]["syncPolicy"]["automated"] == {
        "prune": True,
        "selfHeal": True,
        "enabled": True,
    }
    assert argocd.observe().paused is False


def test_resume_after_a_rollback_says_it_redeploys_git_head(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    argocd = _argocd(fake, client, clock)
    argocd.apply(rollback(V2), "k1")
    result = argocd.apply(Operation(APP, Op.RESUME), "k2")
    assert isinstance(result, Applied)
    assert V3 in result.detail and "undoes a rollback" in result.detail
    assert fake.app(APP)["operation"]["sync"]["revision"] == V3  # Argo CD re-syncs HEAD at once


def test_a_manual_sync_app_is_left_as_it_is_by_pause_resume_and_rollback(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.apps.clear()
    fake.add_app(APP, [V1, V2, V3], auto_sync=None)
    argocd = _argocd(fake, client, clock)
    assert argocd.apply(Operation(APP, Op.PAUSE), "k1") == AlreadyDone(
        "auto-sync is not configured (manual sync): Argo CD applies nothing on its own"
    )
    assert isinstance(argocd.apply(Operation(APP, Op.RESUME), "k2"), AlreadyDone)
    assert isinstance(argocd.apply(rollback(V2), "k3"), Applied)
    assert fake.patches() == []


def test_observe_reports_the_deployed_revision_and_auto_sync(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    observed = _argocd(fake, client, clock).observe()
    assert (observed.version, observed.paused, observed.traffic) == (V3, False, None)
    assert observed.detail == f"history id 5 (revision {V3}); auto-sync on; git at {V3}"


def test_unsupported_or_misaddressed_operations_are_refused_without_a_call(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    argocd = _argocd(fake, client, clock)
    assert isinstance(argocd.apply(Operation(APP, Op.SET_TRAFFIC, traffic=50), "k"), Refused)
    assert isinstance(argocd.apply(Operation("web", Op.PAUSE), "k"), Refused)
    assert isinstance(argocd.apply(Operation(APP, Op.ROLLBACK), "k"), Refused)
    assert fake.requests == []


# -- errors ---------------------------------------------------------------------------------


def test_a_refused_token_is_auth_failed_at_once_without_retries(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(AuthFailed, match="401: invalid session"):
        _argocd(fake, client, clock, env={"ARGOCD_TOKEN": "revoked-token"}).apply(rollback(V2), "k1")
    assert len(fake.requests) == 1


def test_a_missing_token_variable_is_auth_failed_naming_it(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(AuthFailed, match="environment variable ARGOCD_TOKEN is not set"):
        _argocd(fake, client, clock, env={}).observe()
    assert fake.requests == []


def test_unknown_app_without_project_is_a_403_and_the_error_says_to_set_project(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(AuthFailed) as raised:
        _argocd(fake, client, clock, application="nope", project=None).observe()
    assert "403: permission denied" in str(raised.value) and "set project" in str(raised.value)


def test_unknown_app_with_project_is_a_permanent_404(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(Permanent, match=r'404: applications\.argoproj\.io "nope" not found'):
        _argocd(fake, client, clock, application="nope").observe()


def test_a_read_only_token_is_auth_failed_when_it_tries_to_change_the_app(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    argocd = _argocd(fake, client, clock, env={"ARGOCD_TOKEN": "reader-token-42"})
    with pytest.raises(AuthFailed, match="403: permission denied: applications, sync"):
        argocd.apply(Operation(APP, Op.PAUSE), "k1")


def test_server_errors_are_retried(fake: FakeArgoCD, client: httpx.Client, clock: FakeClock) -> None:
    fake.inject(Reply(503, {"error": "upstream", "code": 14, "message": "upstream connect error"}), times=2)
    assert isinstance(_argocd(fake, client, clock).apply(rollback(V2), "k1"), Applied)


def test_server_errors_past_the_attempts_are_transient(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.inject(Reply(500, {"error": "boom", "code": 13, "message": "boom"}), times=3)
    with pytest.raises(Transient, match="500: boom"):
        _argocd(fake, client, clock).observe()


def test_429_waits_as_long_as_retry_after_says(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock
) -> None:
    fake.inject(Reply(429, {"error": "slow down", "code": 8, "message": "slow down"}, {"Retry-After": "7"}))
    assert isinstance(_argocd(fake, client, clock).apply(rollback(V2), "k1"), Applied)
    assert clock.sleeps[0] == 7.0


def test_no_token_in_errors_or_logs(
    fake: FakeArgoCD, client: httpx.Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []
    fake.inject(Reply(500, {"error": f"echo {TOKEN}", "code": 13, "message": f"echo {TOKEN}"}), times=3)
    for action in (
        lambda: _argocd(fake, client, clock).observe(),
        lambda: _argocd(fake, client, clock, application="nope", project=None).observe(),
        lambda: _argocd(fake, client, clock, env={"ARGOCD_TOKEN": "wrong-" + TOKEN}).observe(),
    ):
        with pytest.raises((Transient, AuthFailed)) as raised:
            action()
        errors.append(raised.value)
    _argocd(fake, client, clock).apply(rollback(V2), "k1")
    assert errors and all(TOKEN not in str(error) for error in errors)
    assert "***" in str(errors[0])
    assert TOKEN not in caplog.text
    assert "rollback to history id 4" in caplog.text


# -- the fake follows the documented server ------------------------------------------------


def _call(fake: FakeArgoCD, method: str, path: str, body: object = None, **headers: str) -> httpx.Response:
    auth = headers or {"Authorization": f"Bearer {TOKEN}"}
    return httpx.request(method, fake.url + path, json=body, headers=auth)


def test_fake_refuses_rollback_while_auto_sync_is_on_with_grpc_code_9(fake: FakeArgoCD) -> None:
    answer = _call(fake, "POST", f"/api/v1/applications/{APP}/rollback", {"name": APP, "id": 4})
    assert answer.status_code == 412
    assert answer.json() == {
        "error": AUTO_SYNC_REFUSAL,
        "code": 9,
        "message": AUTO_SYNC_REFUSAL,
        "details": [],
    }


def test_fake_refuses_a_second_rollback_while_one_is_in_progress_and_unknown_ids(fake: FakeArgoCD) -> None:
    fake.app(APP)["spec"]["syncPolicy"]["automated"]["enabled"] = False
    path = f"/api/v1/applications/{APP}/rollback"
    assert _call(fake, "POST", path, {"name": APP, "id": 99}).json()["message"] == (
        f"application argocd/{APP} does not have deployment with id 99"
    )
    assert _call(fake, "POST", path, {"name": APP, "id": 4}).status_code == 200
    second = _call(fake, "POST", path, {"name": APP, "id": 4})
    assert (second.status_code, second.json()["message"]) == (412, IN_PROGRESS)


def test_fake_history_ids_keep_increasing_past_the_limit_of_ten(
    fake: FakeArgoCD, client: httpx.Client
) -> None:
    fake.running_polls = 0
    for revision in [sha(n) for n in range(10, 22)]:
        fake.start_sync(APP, revision)
        while fake.app(APP).get("operation"):
            client.get(f"{fake.url}/api/v1/applications/{APP}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert fake.history_ids(APP) == list(range(8, 18))


def test_fake_accepts_the_argocd_token_cookie_in_chunks_and_401s_without_a_session(fake: FakeArgoCD) -> None:
    path = f"/api/v1/applications/{APP}"
    cookie = f"argocd.token={TOKEN[:8]}; argocd.token-1={TOKEN[8:15]}; argocd.token-2={TOKEN[15:]}"
    assert _call(fake, "GET", path, Cookie=cookie).status_code == 200
    missing = httpx.get(fake.url + path)
    assert (missing.status_code, missing.json()["code"]) == (401, 16)


def test_fake_hides_unknown_apps_behind_403_unless_a_project_is_given(fake: FakeArgoCD) -> None:
    assert _call(fake, "GET", "/api/v1/applications/nope").status_code == 403
    assert _call(fake, "GET", "/api/v1/applications/nope?project=default").status_code == 404
    assert _call(fake, "GET", f"/api/v1/applications/{APP}?project=other").status_code == 404


def test_fake_answers_conform_to_the_published_swagger(fake: FakeArgoCD) -> None:
    spec = Swagger.load("argocd-swagger.json")
    spec.check("v1alpha1Application", _call(fake, "GET", f"/api/v1/applications/{APP}").json())
    with pytest.raises(AssertionError, match="autoSync"):
        spec.check_merge_patch("v1alpha1Application", {"spec": {"syncPolicy": {"autoSync": False}}})


# -- the registry ---------------------------------------------------------------------------


def test_registered_as_argocd_with_rollback_pause_resume(
    fake: FakeArgoCD, client: httpx.Client, tmp_path: Path
) -> None:
    settings = {"server": fake.url, "application": APP, "project": "default"}
    assert capabilities_of("argocd", settings) == {Op.ROLLBACK, Op.PAUSE, Op.RESUME}
    built = build_actuator(
        "argocd", APP, settings, state_dir=tmp_path, env={"ARGOCD_TOKEN": TOKEN}, http=client
    )
    assert built.observe().version == V3


def test_settings_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server"):
        capabilities_of("argocd", {"server": "argocd.example.com", "application": APP})
    with pytest.raises(ConfigError, match="wait_timeout"):
        capabilities_of("argocd", {"server": "https://a", "application": APP, "wait_timeout": "soon"})
    assert grpc_error(9, "x").status == 412
