"""The Vercel target against a loopback fake of Vercel's REST API (reference/apis.md §3)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.actuators.base import AlreadyDone, Applied, Refused
from adapters.actuators.registry import BuildContext, build_actuator, capabilities_of
from adapters.actuators.vercel import (
    RollingRelease,
    Stage,
    Vercel,
    VercelSettings,
    advances_in,
    build,
    stage_for,
)
from adapters.errors import AuthFailed, Permanent, Precondition, Transient
from policies.operations import Op, Operation
from tests.fakes.clock import FakeClock
from tests.fakes.server import Reply
from tests.fakes.vercel import FakeVercel, error

TOKEN = "vercel-secret-0f9e8d7c6b5a"
TEAM = "team_acme"


class Crash(Exception):
    """The controller process dies here (raised from the injected sleep)."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeVercel]:
    with FakeVercel(TOKEN) as started:
        assert isinstance(started, FakeVercel)
        yield started


@pytest.fixture
def fake(server: FakeVercel, clock: FakeClock) -> FakeVercel:
    server.reset(clock)
    return server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


@pytest.fixture
def project(fake: FakeVercel) -> str:
    return fake.add_project("storefront", team_id=TEAM)


def web(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, *, token: str = TOKEN, **settings: Any
) -> Vercel:
    merged = {"project": "storefront", "team_id": TEAM, "base_url": fake.url} | settings
    context = BuildContext(Path("/nonexistent"), {"VERCEL_TOKEN": token}, client)
    return build("web", VercelSettings.model_validate(merged), context, sleep=clock.sleep, clock=clock)


def rollback(version: str) -> Operation:
    return Operation("web", Op.ROLLBACK, version=version)


def traffic(percentage: int) -> Operation:
    return Operation("web", Op.SET_TRAFFIC, traffic=percentage)


def two_releases(fake: FakeVercel, project: str) -> tuple[str, str]:
    return fake.deploy(project, {"githubCommitSha": "sha-v1"}), fake.deploy(
        project, {"githubCommitSha": "sha-v2"}
    )


def staged(fake: FakeVercel, project: str, *stages: tuple[int, float | None], automatic: bool = False) -> str:
    """v1 live, then v2 deployed into a rolling release over `stages`; returns v2's id."""
    fake.configure_rolling_release(
        project, stages, advancement="automatic" if automatic else "manual-approval"
    )
    fake.deploy(project, {"githubCommitSha": "sha-v1"})
    return fake.deploy(project, {"githubCommitSha": "sha-v2"})


def sent(fake: FakeVercel, method: str, fragment: str = "") -> list[str]:
    return [r.path for r in fake.requests if r.method == method and fragment in r.path]


# --- capabilities and settings ------------------------------------------------------------


def test_capabilities_follow_the_rolling_release_setting() -> None:
    assert capabilities_of("vercel", {"project": "p"}) == {Op.ROLLBACK}
    assert capabilities_of("vercel", {"project": "p", "rolling_release": True}) == {
        Op.ROLLBACK,
        Op.SET_TRAFFIC,
    }


def test_the_registry_builds_a_vercel_target_with_the_token_from_the_environment(
    fake: FakeVercel, client: httpx.Client, project: str, tmp_path: Path
) -> None:
    two_releases(fake, project)
    settings = {"project": "storefront", "team_id": TEAM, "base_url": fake.url, "token_env": "VC"}
    target = build_actuator("vercel", "web", settings, state_dir=tmp_path, env={"VC": TOKEN}, http=client)
    assert target.observe().version == "sha-v2"


def test_a_missing_token_variable_is_named_never_valued(tmp_path: Path) -> None:
    with pytest.raises(AuthFailed, match="environment variable VERCEL_TOKEN is not set"):
        build_actuator("vercel", "web", {"project": "p"}, state_dir=tmp_path, env={})


# --- observe ----------------------------------------------------------------------------------


def test_observe_reports_the_production_deployment_named_by_its_git_sha(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    _, v2 = two_releases(fake, project)
    observed = web(fake, client, clock).observe()
    assert (observed.version, observed.traffic) == ("sha-v2", None)
    assert v2 in observed.detail


def test_every_request_carries_the_bearer_token_and_the_team(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    web(fake, client, clock).apply(rollback("sha-v1"), "k1")
    assert fake.requests
    for request in fake.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.query["teamId"] == [TEAM]


def test_the_versions_map_names_deployments_before_their_meta(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    v1, v2 = two_releases(fake, project)
    target = web(fake, client, clock, versions={"release-2": v2, "release-1": v1})
    assert target.observe().version == "release-2"
    assert target.apply(rollback("release-1"), "k1") == Applied(
        f"rollback to release-1 ({v1}): alias job succeeded"
    )
    assert fake.production(project) == v1
    assert sent(fake, "GET", "/deployments") == []  # the map is enough: nothing searched


def test_a_deployment_without_the_version_meta_is_named_by_its_id(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    deployment = fake.deploy(project, {"githubCommitRef": "main"})
    assert web(fake, client, clock).observe().version == deployment


def test_observe_during_a_rolling_release_reports_the_canary_and_its_share(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    staged(fake, project, (10, 5), (50, 5), automatic=True)
    observed = web(fake, client, clock, rolling_release=True).observe()
    assert (observed.version, observed.traffic) == ("sha-v2", 10)
    # The config said 5 (minutes); the live stage says 300 (seconds); updatedAt is in ms.
    assert observed.detail == "rolling release ACTIVE at 10% (stages 10/50/100), next stage in 5m00s"


# --- instant rollback -------------------------------------------------------------------------


def test_rollback_requests_the_instant_rollback_and_polls_the_alias_job_until_it_succeeds(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    v1, _ = two_releases(fake, project)
    fake.alias_job_polls = 3
    result = web(fake, client, clock).apply(rollback("sha-v1"), "r1/4/web/rollback/sha-v1")
    assert result == Applied(f"rollback to sha-v1 ({v1}): alias job succeeded")
    assert fake.production(project) == v1
    assert sent(fake, "POST") == [f"/v1/projects/{project}/rollback/{v1}"]
    posted = next(r for r in fake.requests if r.method == "POST")
    assert posted.query["description"] == ["tidegate r1/4/web/rollback/sha-v1"]
    assert clock.sleeps == [2.0, 2.0]  # pending → in-progress → in-progress → succeeded


def test_rollback_again_is_already_done_without_a_request(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    target = web(fake, client, clock)
    target.apply(rollback("sha-v1"), "k1")
    assert target.apply(rollback("sha-v1"), "k1") == AlreadyDone(
        "production already serves sha-v1 (dpl_000002)"
    )
    assert len(fake.rollbacks) == 1


def test_a_crash_after_the_request_resumes_polling_and_answers_already_done(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    v1, _ = two_releases(fake, project)
    fake.alias_job_polls = 3

    def die(seconds: float) -> None:
        raise Crash

    dying = web(fake, client, clock)
    dying._sleep = die  # the process is killed while it waits for the alias job
    with pytest.raises(Crash):
        dying.apply(rollback("sha-v1"), "k1")
    assert fake.production(project) != v1
    result = web(fake, client, clock).apply(rollback("sha-v1"), "k1")  # the restarted controller
    assert result == AlreadyDone(f"rollback to sha-v1 ({v1}) was already requested; it has completed")
    assert fake.rollbacks == [v1]  # requested once
    assert fake.production(project) == v1


def test_a_crash_after_the_job_finished_is_already_done(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    v1, _ = two_releases(fake, project)
    web(fake, client, clock).apply(rollback("sha-v1"), "k1")  # result never journaled
    assert isinstance(web(fake, client, clock).apply(rollback("sha-v1"), "k1"), AlreadyDone)
    assert fake.rollbacks == [v1]


def test_rollback_to_an_unknown_version_is_refused_without_a_request(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    result = web(fake, client, clock).apply(rollback("sha-nope"), "k1")
    assert result == Refused(
        "vercel 'web' (project storefront): no production deployment has githubCommitSha='sha-nope'"
        " (map it in settings.versions)"
    )
    assert sent(fake, "POST") == []


def test_a_version_is_found_among_many_production_deployments(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    old = fake.deploy(project, {"githubCommitSha": "sha-old"})
    for n in range(150):  # more than one page of 100
        fake.deploy(project, {"githubCommitSha": f"sha-{n}"})
    assert isinstance(web(fake, client, clock).apply(rollback("sha-old"), "k1"), Applied)
    assert fake.production(project) == old
    assert len(sent(fake, "GET", "/v6/deployments")) == 2


def test_a_failed_alias_job_is_transient_and_the_next_attempt_requests_it_again(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    v1, _ = two_releases(fake, project)
    fake.fail_alias_jobs = 1
    target = web(fake, client, clock)
    with pytest.raises(Transient, match=r"alias job for rollback to sha-v1 .* failed"):
        target.apply(rollback("sha-v1"), "k1")
    assert isinstance(target.apply(rollback("sha-v1"), "k1"), Applied)
    assert fake.rollbacks == [v1, v1]


def test_an_alias_job_slower_than_the_timeout_is_transient_and_resumed_later(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    v1, _ = two_releases(fake, project)
    fake.alias_job_polls = 1000
    target = web(fake, client, clock, rollback_timeout=10, poll_interval=2.5)
    with pytest.raises(Transient, match="still in progress after 10s"):
        target.apply(rollback("sha-v1"), "k1")
    assert clock.sleeps == [2.5] * 4
    fake.alias_job_polls = 0
    assert isinstance(target.apply(rollback("sha-v1"), "k1"), AlreadyDone)
    assert fake.rollbacks == [v1]


def test_someone_elses_alias_job_in_flight_is_transient(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    _, v2 = two_releases(fake, project)
    fake.deploy(project, {"githubCommitSha": "sha-v3"})
    fake.projects[project]["lastAliasRequest"] = {
        "type": "promote",
        "toDeploymentId": v2,
        "jobStatus": "in-progress",
        "requestedAt": int(clock() * 1000),
    }
    fake.alias_job_polls = 1000
    with pytest.raises(Transient, match=f"another alias job \\(promote → {v2}\\) is in progress"):
        web(fake, client, clock).apply(rollback("sha-v1"), "k1")
    assert fake.rollbacks == []


def test_a_409_from_vercel_is_a_precondition_when_nothing_explains_it(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    fake.rollback_faults.append(error(409, "conflict", "Cannot roll back right now"))
    with pytest.raises(Precondition, match="409: Cannot roll back right now"):
        web(fake, client, clock).apply(rollback("sha-v1"), "k1")
    assert len(sent(fake, "POST")) == 1  # a precondition is not retried


@pytest.mark.parametrize(("age", "requested_again"), [(600.0, True), (30.0, False)])
def test_an_alias_request_without_status_counts_as_in_progress_for_three_minutes(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str, age: float, requested_again: bool
) -> None:
    v1, _ = two_releases(fake, project)
    fake.projects[project]["lastAliasRequest"] = {
        "type": "rollback",
        "toDeploymentId": v1,
        "jobStatus": None,
        "requestedAt": int((clock() - age) * 1000),  # epoch MILLISECONDS
    }
    target = web(fake, client, clock, rollback_timeout=4)
    if requested_again:
        assert isinstance(target.apply(rollback("sha-v1"), "k1"), Applied)
        assert fake.rollbacks == [v1]
    else:
        with pytest.raises(Transient, match="still in progress"):
            target.apply(rollback("sha-v1"), "k1")
        assert fake.rollbacks == []


# --- rolling-release stages -----------------------------------------------------------------


def test_set_traffic_approves_the_next_stage(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    canary = staged(fake, project, (10, None), (50, None))
    target = web(fake, client, clock, rolling_release=True)
    assert target.apply(traffic(50), "k1") == Applied("rolling release at 50%")
    approvals = [r for r in fake.requests if r.path.endswith("/approve-stage")]
    assert [r.json() for r in approvals] == [{"nextStageIndex": 1, "canaryDeploymentId": canary}]
    assert target.observe().traffic == 50
    assert isinstance(target.apply(traffic(50), "k1"), AlreadyDone)
    assert len(sent(fake, "POST")) == 1


def test_set_traffic_100_completes_the_release_and_production_moves(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    canary = staged(fake, project, (10, None), (50, None))
    target = web(fake, client, clock, rolling_release=True)
    assert target.apply(traffic(100), "k1") == Applied("rolling release at 100%")
    assert sent(fake, "POST") == [f"/v1/projects/{project}/rolling-release/complete"]
    assert fake.production(project) == canary
    observed = target.observe()
    assert (observed.version, observed.traffic) == ("sha-v2", 100)
    assert isinstance(target.apply(traffic(100), "k2"), AlreadyDone)


def test_a_share_between_stages_stops_at_the_furthest_stage_below_it(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    staged(fake, project, (10, None), (25, None), (60, None))
    target = web(fake, client, clock, rolling_release=True)
    assert target.apply(traffic(50), "k1") == Applied("rolling release at 25% (the furthest stage ≤ 50%)")
    assert [r.json()["nextStageIndex"] for r in fake.requests if r.path.endswith("/approve-stage")] == [1]
    result = target.apply(traffic(55), "k2")
    assert isinstance(result, AlreadyDone)
    assert result.detail.startswith("no configured stage between 25% and 55%")


def test_set_traffic_walks_every_stage_in_between_one_approval_at_a_time(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    staged(fake, project, (5, None), (10, None), (25, None), (50, None))
    assert isinstance(web(fake, client, clock, rolling_release=True).apply(traffic(50), "k1"), Applied)
    assert [r.json()["nextStageIndex"] for r in fake.requests if r.path.endswith("/approve-stage")] == [
        1,
        2,
        3,
    ]


def test_stepping_a_rolling_release_down_is_refused(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    staged(fake, project, (10, None), (50, None))
    target = web(fake, client, clock, rolling_release=True)
    target.apply(traffic(50), "k1")
    result = target.apply(traffic(10), "k2")
    assert isinstance(result, Refused)
    assert "cannot go back from 50% to 10%" in result.reason
    assert target.observe().traffic == 50


def test_set_traffic_zero_aborts_the_release_by_rolling_back_to_its_current_deployment(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    staged(fake, project, (10, None), (50, None))
    stable = fake.production(project)
    target = web(fake, client, clock, rolling_release=True)
    assert isinstance(target.apply(traffic(0), "k1"), Applied)
    assert fake.rollbacks == [stable]
    assert (fake.release(project) or {})["state"] == "ABORTED"
    assert target.observe().version == "sha-v1"


def test_rollback_during_a_rolling_release_aborts_it_although_production_is_already_the_target(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    staged(fake, project, (10, None), (50, None))
    target = web(fake, client, clock, rolling_release=True)
    assert target.observe().version == "sha-v2"  # the canary takes 10%: v2 is what is being released
    assert isinstance(target.apply(rollback("sha-v1"), "k1"), Applied)
    assert (fake.release(project) or {})["state"] == "ABORTED"
    observed = target.observe()
    assert (observed.version, observed.traffic) == ("sha-v1", 100)
    assert isinstance(target.apply(rollback("sha-v1"), "k1"), AlreadyDone)


def test_without_a_rolling_release_full_traffic_is_done_and_other_shares_are_refused(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    target = web(fake, client, clock, rolling_release=True)
    assert isinstance(target.apply(traffic(100), "k1"), AlreadyDone)
    result = target.apply(traffic(10), "k2")
    assert isinstance(result, Refused)
    assert "no rolling release in progress" in result.reason
    assert sent(fake, "POST") == []


def test_set_traffic_without_rolling_release_setting_is_refused_without_a_request(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    result = web(fake, client, clock).apply(traffic(50), "k1")
    assert result == Refused("vercel target 'web' cannot set_traffic (set rolling_release: true for stages)")
    assert fake.requests == []


def test_automatic_stages_advance_after_their_duration_in_seconds(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    staged(fake, project, (10, 5), (50, 5), automatic=True)  # 5 MINUTES in the config
    target = web(fake, client, clock, rolling_release=True)
    clock.advance(299)
    assert target.observe().detail.endswith("next stage in 1s")
    assert target.observe().traffic == 10
    clock.advance(1)
    assert target.observe().traffic == 50


def test_stage_arithmetic_uses_seconds_and_milliseconds() -> None:
    stages = (Stage(0, 10, False, 300.0), Stage(1, 50, False, 300.0), Stage(2, 100, True, None))
    release = RollingRelease("ACTIVE", "dpl_a", "dpl_b", 10, stages[0], stages, updated_at=1_000.0)
    assert advances_in(release, now=1_060.0) == 240.0
    assert stage_for(stages, 49) == stages[0]
    assert stage_for(stages, 100) == stages[2]
    assert stage_for(stages, 5) is None


def test_an_operation_for_another_target_is_refused(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock
) -> None:
    result = web(fake, client, clock).apply(Operation("api", Op.ROLLBACK, version="v1"), "k1")
    assert result == Refused("operation for target 'api' sent to 'web'")
    assert fake.requests == []


# --- errors -----------------------------------------------------------------------------------


def test_a_bad_token_is_auth_failed_at_once_without_retry(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    with pytest.raises(AuthFailed, match="403: Not authorized"):
        web(fake, client, clock, token="wrong-token").observe()
    assert len(fake.requests) == 1


def test_a_401_is_auth_failed_without_retry(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    fake.inject(error(401, "unauthorized", "Token expired"))
    with pytest.raises(AuthFailed, match="401: Token expired"):
        web(fake, client, clock).observe()
    assert len(fake.requests) == 1


def test_a_team_project_asked_for_without_the_team_is_not_found(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    with pytest.raises(Permanent, match="404: Project not found"):
        web(fake, client, clock, team_id=None).observe()
    assert len(fake.requests) == 1


def test_server_errors_are_retried_with_backoff(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    fake.inject(error(500, "internal_server_error", "boom"), times=2)
    assert web(fake, client, clock).observe().version == "sha-v2"
    assert len(fake.requests) == 3
    assert len(clock.sleeps) == 2


def test_server_errors_that_persist_are_transient_after_capped_attempts(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    fake.inject(error(503, "internal_server_error", "down"), times=10)
    with pytest.raises(Transient, match="503: down"):
        web(fake, client, clock).observe()
    assert len(fake.requests) == 4


def test_429_waits_until_the_reset_header_in_epoch_seconds(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    fake.inject(fake.rate_limited(reset_in=7))
    assert web(fake, client, clock).observe().version == "sha-v2"
    assert clock.sleeps == [pytest.approx(7.0)]


def test_429_without_headers_waits_until_the_body_reset_in_epoch_milliseconds(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    two_releases(fake, project)
    fake.inject(fake.rate_limited(reset_in=12.5, with_headers=False))
    assert web(fake, client, clock).observe().version == "sha-v2"
    assert clock.sleeps == [pytest.approx(12.5)]


def test_the_token_never_appears_in_errors_or_logs(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    two_releases(fake, project)
    target = web(fake, client, clock)
    target.apply(rollback("sha-v1"), "k1")
    fake.inject(error(400, "bad_request", f"token {TOKEN} is malformed"))
    with pytest.raises(Permanent) as raised:
        target.observe()
    fake.inject(error(401, "unauthorized", f"Bearer {TOKEN} expired"))
    with pytest.raises(AuthFailed) as refused:
        target.observe()
    assert "***" in str(raised.value)
    assert TOKEN not in str(raised.value) + str(refused.value)
    assert caplog.records
    assert TOKEN not in caplog.text


def test_an_unexpected_answer_is_permanent(
    fake: FakeVercel, client: httpx.Client, clock: FakeClock, project: str
) -> None:
    fake.inject(Reply(200, {"name": "no id"}))
    with pytest.raises(
        Permanent, match="unexpected answer to GET /v9/projects/storefront: id: Field required"
    ):
        web(fake, client, clock).observe()
