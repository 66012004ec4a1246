"""The Argo Rollouts target against a loopback Kubernetes API: abort, pause, resume, no double promote.

Every exchange of every test is checked (autouse fixture): merge-patch bodies and Rollout
answers against Argo Rollouts' published swagger, errors as Kubernetes `Status` objects.
"""

from __future__ import annotations

import base64
import datetime
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.actuators.argo_rollouts import RESUME_MARK, ArgoRollouts, ArgoRolloutsSettings
from adapters.actuators.base import AlreadyDone, Applied, Refused
from adapters.actuators.registry import build_actuator, capabilities_of
from adapters.errors import AuthFailed, ConfigError, Permanent, Transient
from adapters.http import RetryPolicy
from adapters.kubernetes import Cluster, Token, resolve_cluster
from policies.operations import Op, Operation
from tests.fakes.argo_rollouts import CANARY, STABLE, FakeArgoRollouts
from tests.fakes.clock import FakeClock
from tests.fakes.server import Reply
from tests.fakes.swagger import Swagger

TOKEN = "k8s-token-0123456789"
NS, NAME = "shop", "web"
ROLLOUT = "github.com.argoproj.argo_rollouts.pkg.apis.rollouts.v1alpha1.Rollout"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeArgoRollouts]:
    with FakeArgoRollouts([TOKEN], readers=["reader-token-7"], clock=clock) as server:
        assert isinstance(server, FakeArgoRollouts)
        server.add_rollout(NS, NAME)  # the controller takes it to the first pause step: 10% canary
        yield server
        _check_against_swagger(server)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


def _check_against_swagger(fake: FakeArgoRollouts) -> None:
    spec = Swagger.load("argo-rollouts-swagger.json", kubernetes_json=True)
    for request, reply in fake.exchanges:
        if request.method == "PATCH" and request.headers["content-type"] != "application/merge-patch+json":
            assert reply.status == 415
        elif request.method == "PATCH":
            spec.check_merge_patch(ROLLOUT, request.json())
        if reply.status == 200:
            spec.check(ROLLOUT, reply.body)
        else:
            assert reply.body["kind"] == "Status" and reply.body["code"] == reply.status, reply.body


def _rollouts(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock, token: str = TOKEN
) -> ArgoRollouts:
    cluster = Cluster(fake.url, NS, Token(variable="K8S_TOKEN"))
    return ArgoRollouts(
        NAME, NAME, cluster, client, {"K8S_TOKEN": token}, sleep=clock.sleep, retry=RetryPolicy(attempts=3)
    )


def _op(op: Op, version: str | None = None) -> Operation:
    return Operation(NAME, op, version=version)


def _status(fake: FakeArgoRollouts) -> dict[str, Any]:
    status: dict[str, Any] = fake.rollout(NS, NAME)["status"]
    return status


# -- rollback = abort -----------------------------------------------------------------------


def test_rollback_aborts_through_the_status_subresource_and_traffic_returns_to_stable(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    result = _rollouts(fake, client, clock).apply(_op(Op.ROLLBACK, "2.3.9"), "k1")

    assert isinstance(result, Applied)
    assert f"stable ReplicaSet {STABLE} (2.3.9)" in result.detail and "stays Degraded" in result.detail
    assert fake.patches() == [("status", {"status": {"abort": True}})]
    status = _status(fake)
    assert status["phase"] == "Degraded" and status["abort"] is True
    assert status["canary"]["weights"]["canary"]["weight"] == 0


def test_aborting_again_is_already_done_and_sends_nothing(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    _rollouts(fake, client, clock).apply(_op(Op.ROLLBACK, "2.3.9"), "k1")
    again = _rollouts(fake, client, clock).apply(
        _op(Op.ROLLBACK, "2.3.9"), "k1"
    )  # a new instance, after a crash
    assert again == AlreadyDone(f"already aborted: traffic is on the stable ReplicaSet {STABLE}")
    assert len(fake.patches()) == 1


def test_a_crd_without_the_status_subresource_gets_the_main_resource_patched(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    fake.status_subresource = False
    assert isinstance(_rollouts(fake, client, clock).apply(_op(Op.ROLLBACK), "k1"), Applied)
    assert [
        (r.path.endswith("/status"), reply.status) for r, reply in fake.exchanges if r.method == "PATCH"
    ] == [
        (True, 404),
        (False, 200),
    ]
    assert _status(fake)["abort"] is True


def test_a_fully_promoted_rollout_is_refused_because_abort_cannot_bring_the_old_version_back(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add_rollout(NS, NAME, steps=[{"setWeight": 100}])
    result = _rollouts(fake, client, clock).apply(_op(Op.ROLLBACK, "2.3.9"), "k1")
    assert isinstance(result, Refused)
    assert "fully promoted" in result.reason and "kubectl argo rollouts undo" in result.reason
    assert fake.patches() == []


# -- pause ----------------------------------------------------------------------------------


def test_pause_sets_spec_paused_even_at_a_pause_step_and_only_once(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    rollouts = _rollouts(fake, client, clock)
    assert rollouts.apply(_op(Op.PAUSE), "k1") == Applied("paused at Paused at step 1/5, canary 10%")
    assert isinstance(rollouts.apply(_op(Op.PAUSE), "k1"), AlreadyDone)
    assert fake.patches() == [("main", {"spec": {"paused": True}})]
    assert fake.rollout(NS, NAME)["spec"]["paused"] is True


# -- resume: one pause at a time, never twice -----------------------------------------------


def test_resume_clears_the_pause_condition_and_the_rollout_walks_to_its_next_pause(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    result = _rollouts(fake, client, clock).apply(_op(Op.RESUME), "k1")
    assert result == Applied("resumed from Paused at step 1/5, canary 10%")
    (main, mark), (status, clear) = fake.patches()
    assert (main, status) == ("main", "status")
    assert mark == {
        "metadata": {"annotations": {RESUME_MARK: f'{{"key": "k1", "step": 1, "podHash": "{CANARY}"}}'}}
    }
    assert clear == {"status": {"pauseConditions": None}}
    assert (_status(fake)["currentStepIndex"], _status(fake)["canary"]["weights"]["canary"]["weight"]) == (
        3,
        50,
    )


def test_resume_re_applied_after_a_crash_does_not_promote_twice(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    _rollouts(fake, client, clock).apply(_op(Op.RESUME), "k1")  # its result never reached the journal
    assert _status(fake)["currentStepIndex"] == 3  # the controller is already paused at the next step

    again = _rollouts(fake, client, clock).apply(_op(Op.RESUME), "k1")

    assert isinstance(again, AlreadyDone)
    assert (
        "already moved the rollout on from step 1" in again.detail and "not promoting twice" in again.detail
    )
    assert _status(fake)["currentStepIndex"] == 3
    assert isinstance(_rollouts(fake, client, clock).apply(_op(Op.RESUME), "k2"), Applied)  # a new decision
    assert _status(fake)["phase"] == "Healthy" and _status(fake)["stableRS"] == CANARY


def test_a_crash_between_the_mark_and_the_status_patch_finishes_the_resume(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    rollouts = _rollouts(fake, client, clock)
    rollouts._patch_status = _crash  # type: ignore[method-assign]
    with pytest.raises(_Killed):
        rollouts.apply(_op(Op.RESUME), "k1")
    assert _status(fake)["currentStepIndex"] == 1  # marked, still paused

    assert isinstance(_rollouts(fake, client, clock).apply(_op(Op.RESUME), "k1"), Applied)
    assert _status(fake)["currentStepIndex"] == 3


class _Killed(BaseException):
    pass


def _crash(*args: object) -> None:
    raise _Killed


def test_resume_of_a_rollout_that_is_not_paused_sends_nothing_because_promote_would_skip_a_step(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    fake.add_rollout(NS, NAME, at=2, reconciled=False)  # mid-step, Progressing
    result = _rollouts(fake, client, clock).apply(_op(Op.RESUME), "k1")
    assert isinstance(result, AlreadyDone) and "would skip a step" in result.detail
    assert fake.patches() == []


def test_resume_of_a_manual_pause_unpauses_the_spec_and_the_step(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    rollouts = _rollouts(fake, client, clock)
    rollouts.apply(_op(Op.PAUSE), "k1")
    assert isinstance(rollouts.apply(_op(Op.RESUME), "k2"), Applied)
    main = fake.patches()[1][1]
    assert main["spec"] == {"paused": False} and RESUME_MARK in main["metadata"]["annotations"]
    assert fake.patches()[2] == ("status", {"status": {"pauseConditions": None}})
    assert fake.rollout(NS, NAME)["spec"]["paused"] is False and _status(fake)["currentStepIndex"] == 3


def test_resume_after_an_inconclusive_analysis_also_clears_controller_pause(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    fake.auto_reconcile = False
    _status(fake)["pauseConditions"] = [
        {"reason": "InconclusiveAnalysisRun", "startTime": "2027-01-15T08:00:00Z"}
    ]
    _rollouts(fake, client, clock).apply(_op(Op.RESUME), "k1")
    assert fake.patches()[-1] == ("status", {"status": {"pauseConditions": None, "controllerPause": False}})


def test_resume_of_an_aborted_rollout_is_refused_since_retry_restarts_the_release(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    rollouts = _rollouts(fake, client, clock)
    rollouts.apply(_op(Op.ROLLBACK), "k1")
    result = rollouts.apply(_op(Op.RESUME), "k2")
    assert isinstance(result, Refused) and "retry" in result.reason
    assert len(fake.patches()) == 1


def test_set_traffic_is_not_offered_and_is_refused_without_a_call(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    rollouts = _rollouts(fake, client, clock)
    assert Op.SET_TRAFFIC not in rollouts.capabilities
    result = rollouts.apply(Operation(NAME, Op.SET_TRAFFIC, traffic=50), "k1")
    assert isinstance(result, Refused) and "canary steps" in result.reason
    assert isinstance(rollouts.apply(Operation("other", Op.PAUSE), "k1"), Refused)
    assert fake.requests == []


def test_observe_reports_canary_weight_and_pause(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    observed = _rollouts(fake, client, clock).observe()
    assert (observed.version, observed.traffic, observed.paused) == (None, 10, True)
    assert observed.detail == "Paused at step 1/5, canary 10%"


# -- errors ---------------------------------------------------------------------------------


def test_a_refused_token_is_auth_failed_at_once(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(AuthFailed, match="401: Unauthorized"):
        _rollouts(fake, client, clock, token="revoked").apply(_op(Op.ROLLBACK), "k1")
    assert len(fake.requests) == 1


def test_rbac_forbidden_is_auth_failed_naming_what_the_account_needs(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    with pytest.raises(
        AuthFailed, match=r"403: .*cannot patch resource \"rollouts/status\".*needs get and patch"
    ):
        _rollouts(fake, client, clock, token="reader-token-7").apply(_op(Op.ROLLBACK), "k1")


def test_an_unknown_rollout_is_permanent(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    fake.rollouts.clear()
    with pytest.raises(Permanent, match=r'404: rollouts\.argoproj\.io "web" not found'):
        _rollouts(fake, client, clock).apply(_op(Op.PAUSE), "k1")


def test_server_errors_are_retried_and_past_the_attempts_transient(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    fake.inject(Reply(503, {"kind": "Status", "code": 503, "message": "etcdserver: leader changed"}), times=2)
    assert isinstance(_rollouts(fake, client, clock).apply(_op(Op.ROLLBACK), "k1"), Applied)
    fake.inject(Reply(500, {"kind": "Status", "code": 500, "message": "boom"}), times=3)
    with pytest.raises(Transient, match="500: boom"):
        _rollouts(fake, client, clock).observe()


def test_429_waits_as_long_as_retry_after_says(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    fake.inject(
        Reply(429, {"kind": "Status", "code": 429, "message": "Too many requests"}, {"Retry-After": "3"})
    )
    assert isinstance(_rollouts(fake, client, clock).apply(_op(Op.PAUSE), "k1"), Applied)
    assert clock.sleeps == [3.0]


def test_a_write_conflict_is_transient_and_retried(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock
) -> None:
    conflict = Reply(409, {"kind": "Status", "code": 409, "message": "the object has been modified"})
    fake.inject(conflict, times=1)
    assert isinstance(_rollouts(fake, client, clock).apply(_op(Op.PAUSE), "k1"), Applied)
    fake.inject(conflict, times=3)
    with pytest.raises(Transient, match="409: the object has been modified"):
        _rollouts(fake, client, clock).observe()


def test_no_token_in_errors_or_logs(
    fake: FakeArgoRollouts, client: httpx.Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.inject(Reply(500, {"kind": "Status", "code": 500, "message": f"echo {TOKEN}"}), times=3)
    with pytest.raises(Transient) as transient:
        _rollouts(fake, client, clock).observe()
    with pytest.raises(AuthFailed) as refused:
        _rollouts(fake, client, clock, token=TOKEN + "-old").observe()
    _rollouts(fake, client, clock).apply(_op(Op.ROLLBACK), "k1")
    assert TOKEN not in str(transient.value) and "***" in str(transient.value)
    assert TOKEN not in str(refused.value)
    assert TOKEN not in caplog.text and "argo-rollouts web: rollback" in caplog.text


# -- where the cluster is -------------------------------------------------------------------


def _settings(**values: object) -> ArgoRolloutsSettings:
    return ArgoRolloutsSettings.model_validate({"rollout": NAME} | values)


def _kubeconfig(tmp_path: Path, server: str, user: dict[str, Any], **cluster: object) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "prod",
        "contexts": [
            {"name": "prod", "context": {"cluster": "prod", "user": "deployer", "namespace": NS}},
            {"name": "stage", "context": {"cluster": "prod", "user": "deployer"}},
        ],
        "clusters": [{"name": "prod", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "deployer", "user": user}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_api_server_and_token_env_are_enough() -> None:
    cluster = resolve_cluster(_settings(api_server="https://k8s:6443", token_env="K8S_TOKEN"), {})
    assert cluster == Cluster("https://k8s:6443", "default", Token(variable="K8S_TOKEN"))


def test_kubeconfig_current_context_gives_server_namespace_and_token(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, "https://k8s:6443", {"token": TOKEN})
    cluster = resolve_cluster(_settings(kubeconfig=str(path)), {})
    assert (cluster.server, cluster.namespace, cluster.token.read({}, NAME)) == (
        "https://k8s:6443",
        NS,
        TOKEN,
    )
    assert TOKEN not in repr(cluster)
    stage = resolve_cluster(_settings(kubeconfig=str(path), context="stage"), {})
    assert stage.namespace == "default"


def test_kubeconfig_token_file_is_read_at_every_call_and_token_env_overrides(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    path = _kubeconfig(tmp_path, "https://k8s:6443", {"tokenFile": "token"})
    token = resolve_cluster(_settings(kubeconfig=str(path)), {}).token
    assert token.read({}, NAME) == "first"
    (tmp_path / "token").write_text("rotated\n")
    assert token.read({}, NAME) == "rotated"
    overridden = resolve_cluster(_settings(kubeconfig=str(path), token_env="K8S_TOKEN"), {})
    assert overridden.token == Token(variable="K8S_TOKEN")


def test_kubeconfig_with_an_exec_plugin_is_a_config_error_saying_what_to_do(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, "https://k8s:6443", {"exec": {"command": "aws"}})
    with pytest.raises(
        ConfigError, match=r"has no token or tokenFile .* give a service-account token with token_env"
    ):
        resolve_cluster(_settings(kubeconfig=str(path)), {})


def test_kubeconfig_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kubeconfig: cannot read"):
        resolve_cluster(_settings(kubeconfig=str(tmp_path / "missing")), {})
    path = _kubeconfig(tmp_path, "https://k8s:6443", {"token": TOKEN})
    with pytest.raises(ConfigError, match="no context named 'nope'"):
        resolve_cluster(_settings(kubeconfig=str(path), context="nope"), {})
    path = _kubeconfig(
        tmp_path, "https://k8s:6443", {"token": TOKEN}, **{"certificate-authority-data": "%%%"}
    )
    with pytest.raises(ConfigError, match="not base64 PEM"):
        resolve_cluster(_settings(kubeconfig=str(path)), {})


def test_in_cluster_uses_the_pods_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("PEM")
    (tmp_path / "namespace").write_text("shop\n")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    cluster = resolve_cluster(_settings(in_cluster=True), env, service_account=tmp_path)
    assert (cluster.server, cluster.namespace, cluster.ca_pem) == ("https://[fd00::1]:443", "shop", "PEM")
    assert cluster.token.read({}, NAME) == "sa-token"
    with pytest.raises(ConfigError, match="not running in a pod"):
        resolve_cluster(_settings(in_cluster=True), {}, service_account=tmp_path)


def test_settings_need_exactly_one_way_to_the_api(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of api_server"):
        capabilities_of("argo-rollouts", {"rollout": NAME})
    with pytest.raises(ConfigError, match="got api_server, in_cluster"):
        capabilities_of("argo-rollouts", {"rollout": NAME, "api_server": "https://k", "in_cluster": True})
    with pytest.raises(ConfigError, match="api_server needs token_env"):
        capabilities_of("argo-rollouts", {"rollout": NAME, "api_server": "https://k"})


def test_registered_as_argo_rollouts_without_set_traffic_and_built_from_a_kubeconfig(
    fake: FakeArgoRollouts, client: httpx.Client, tmp_path: Path
) -> None:
    settings = {"rollout": NAME, "kubeconfig": str(_kubeconfig(tmp_path, fake.url, {"token": TOKEN}))}
    assert capabilities_of("argo-rollouts", settings) == {Op.ROLLBACK, Op.PAUSE, Op.RESUME}
    built = build_actuator("argo-rollouts", NAME, settings, state_dir=tmp_path, env={}, http=client)
    assert built.observe().traffic == 10


def test_a_cluster_ca_gets_a_client_of_its_own_and_a_bad_one_is_a_config_error(
    client: httpx.Client, tmp_path: Path
) -> None:
    pem = base64.b64encode(_self_signed_pem()).decode()
    good = _kubeconfig(tmp_path, "https://k8s:6443", {"token": TOKEN}, **{"certificate-authority-data": pem})
    built = build_actuator(
        "argo-rollouts", NAME, {"rollout": NAME, "kubeconfig": str(good)}, state_dir=tmp_path, http=client
    )
    assert isinstance(built, ArgoRollouts) and built._client is not client
    (tmp_path / "ca.crt").write_text("not a certificate")
    bad = _kubeconfig(tmp_path, "https://k8s:6443", {"token": TOKEN}, **{"certificate-authority": "ca.crt"})
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        build_actuator(
            "argo-rollouts", NAME, {"rollout": NAME, "kubeconfig": str(bad)}, state_dir=tmp_path, http=client
        )


def _self_signed_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


# -- the fake follows the Kubernetes API -----------------------------------------------------


def _patch(fake: FakeArgoRollouts, body: object, content_type: str, subresource: str = "") -> httpx.Response:
    path = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/{NAME}{subresource}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
    return httpx.patch(fake.url + path, json=body, headers=headers)


def test_fake_answers_415_to_a_patch_that_is_not_a_merge_patch(fake: FakeArgoRollouts) -> None:
    answer = _patch(fake, {"spec": {"paused": True}}, "application/json")
    assert (answer.status_code, answer.json()["reason"]) == (415, "UnsupportedMediaType")


def test_fake_main_resource_patch_drops_status_when_the_subresource_exists(fake: FakeArgoRollouts) -> None:
    answer = _patch(fake, {"status": {"abort": True}}, "application/merge-patch+json")
    assert answer.status_code == 200 and "abort" not in answer.json()["status"]
    via_status = _patch(
        fake, {"spec": {"paused": True}, "status": {"abort": True}}, "application/merge-patch+json", "/status"
    )
    assert via_status.json()["status"]["abort"] is True and "paused" not in via_status.json()["spec"]


def test_the_swagger_check_catches_a_misspelt_field() -> None:
    spec = Swagger.load("argo-rollouts-swagger.json", kubernetes_json=True)
    spec.check_merge_patch(ROLLOUT, {"status": {"pauseConditions": None, "abort": True}})
    with pytest.raises(AssertionError, match="pausedConditions"):
        spec.check_merge_patch(ROLLOUT, {"status": {"pausedConditions": None, "paused": True}})
