"""No secret value appears in logs, errors, the journal or the audit log.

One manual rollback runs through the real `Reconciler` and a real `SqliteStore` over real HTTP
adapters built by the registry (`build_actuator`), each pointed at its loopback fake, with
distinctive secret values in the environment the adapters read. Some vendors fail, echoing the
credential they received back in the body (and in a header); some succeed, one of them with the
token in its answer's detail. Afterwards the secrets must appear nowhere: not in any intent's
detail, audit payload, transition reason, log record (DEBUG, httpx and httpcore included), nor
on stdout / stderr.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adapters.actuators.registry import build_actuator
from controller.core.model import RolloutId, RolloutStatus, State
from controller.runtime import AUTOMATIC, Event, LiveRollout, Reconciler
from controller.spec import load_rollout, target_views
from controller.store.base import AuditDraft, RolloutRecord
from controller.store.sqlite import SqliteStore
from policies.evaluator import Evaluator
from tests.fakes.argocd import FakeArgoCD
from tests.fakes.launchdarkly import FakeLaunchDarkly
from tests.fakes.server import Reply, Request
from tests.fakes.vercel import FakeVercel
from tests.fakes.webhook import FakeReceiver

LD_TOKEN = "api-SECRET-ld-5f1c0e9a7b3d4c2e8f60"
VERCEL_TOKEN = "SECRET-vercel-Q7m2Zk9pLx4Rw8Ty3Nv6"
ARGOCD_TOKEN = "eyJhbGciOiJIUzI1NiJ9.SECRET-argocd-payload.c2lnbmF0dXJl"
HOOK_TOKEN = "SECRET-hook-bearer-8d7c6b5a4f3e2d1c"
HOOK_SECRET = "SECRET-hook-hmac-0a9b8c7d6e5f4a3b"
SECRETS = (LD_TOKEN, VERCEL_TOKEN, ARGOCD_TOKEN, HOOK_TOKEN, HOOK_SECRET)
ENV = {
    "LD_TOKEN": LD_TOKEN,
    "VERCEL_TOKEN": VERCEL_TOKEN,
    "ARGOCD_TOKEN": ARGOCD_TOKEN,
    "HOOK_TOKEN": HOOK_TOKEN,
    "HOOK_SECRET": HOOK_SECRET,
}
ROLLOUT_ID = RolloutId("checkout-5ec8e7")
START = 1_790_000_000.0


@dataclass
class Vendors:
    launchdarkly: FakeLaunchDarkly
    vercel: FakeVercel
    argocd: FakeArgoCD
    hooks: FakeReceiver
    project: str


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with (
        FakeLaunchDarkly(LD_TOKEN) as launchdarkly,
        FakeVercel(VERCEL_TOKEN, alias_job_polls=1) as vercel,
        FakeArgoCD([ARGOCD_TOKEN]) as argocd,
        FakeReceiver(secret=HOOK_SECRET, token=HOOK_TOKEN) as hooks,
    ):
        assert isinstance(launchdarkly, FakeLaunchDarkly) and isinstance(vercel, FakeVercel)
        assert isinstance(argocd, FakeArgoCD) and isinstance(hooks, FakeReceiver)
        launchdarkly.add_flag("web", "checkout-v2", on=True)
        project = vercel.add_project("storefront")
        vercel.deploy(project, {"githubCommitSha": "2.3.9"})
        vercel.deploy(project, {"githubCommitSha": "2.4.0"})
        argocd.add_app("checkout-api", ["2.3.8", "2.3.9", "2.4.0"])
        argocd.queued_polls, argocd.running_polls = 0, 1
        yield Vendors(launchdarkly, vercel, argocd, hooks, project)


def _rollout_yaml(folder: Path, vendors: Vendors) -> Path:
    path = folder / "rollout.yaml"
    path.write_text(
        f"""apiVersion: tidegate/v1
kind: Rollout
metadata: {{name: checkout}}
version: "2.4.0"
previousVersion: "2.3.9"
policies: [library:runbook]
targets:
  - name: checkout-flag
    kind: launchdarkly
    settings: {{project: web, environment: production, flag: checkout-v2, token_env: LD_TOKEN,
                base_url: "{vendors.launchdarkly.url}"}}
  - name: web
    kind: vercel
    settings: {{project: {vendors.project}, token_env: VERCEL_TOKEN, base_url: "{vendors.vercel.url}",
                poll_interval: 0.01}}
  - name: backend
    kind: argocd
    settings: {{server: "{vendors.argocd.url}", application: checkout-api, project: default,
                token_env: ARGOCD_TOKEN, poll_interval: 20ms, wait_timeout: 10s}}
  - name: legacy-router
    kind: webhook
    settings: {{url: "{vendors.hooks.hook_url("legacy-router")}", token_env: HOOK_TOKEN,
                secret_env: HOOK_SECRET, capabilities: [rollback]}}
  - name: edge-cache
    kind: webhook
    settings: {{url: "{vendors.hooks.hook_url("edge-cache")}", token_env: HOOK_TOKEN,
                secret_env: HOOK_SECRET, capabilities: [rollback]}}
""",
        encoding="utf-8",
    )
    return path


def _echo(request: Request) -> str:
    """What a careless vendor puts in an error: every header it got, credentials included."""
    return "; ".join(f"{name}: {value}" for name, value in sorted(request.headers.items()))


def test_a_rollback_over_real_adapters_stores_and_logs_no_secret(
    vendors: Vendors,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("", "httpx", "httpcore", "tidegate", "urllib3", "hpack"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")

    # LaunchDarkly refuses the token and says which one, in the body and in a header.
    echoed = f"invalid access token {LD_TOKEN!r} (Authorization: {LD_TOKEN})"
    vendors.launchdarkly.inject(
        Reply(401, {"code": "unauthorized", "message": echoed}, {"X-Debug-Auth": LD_TOKEN}), times=20
    )
    # Vercel hiccups once (a 503 echoing the bearer token), then rolls back.
    vendors.vercel.inject(
        Reply(503, {"error": {"code": "internal", "message": f"upstream saw Bearer {VERCEL_TOKEN}"}})
    )
    # Argo CD hiccups once with the token in a grpc error, then rolls back.
    vendors.argocd.inject(Reply(503, {"error": f"token {ARGOCD_TOKEN}", "code": 14, "message": ARGOCD_TOKEN}))
    # One receiver rejects the request and dumps the headers it got (bearer token, signature).
    vendors.hooks.answers["legacy-router"] = lambda request: Reply(422, {"message": _echo(request)})
    # The other applies it and, carelessly, repeats the credentials in its success detail.
    vendors.hooks.answers["edge-cache"] = lambda request: Reply(
        200, {"detail": f"done with Bearer {HOOK_TOKEN} / {HOOK_SECRET}"}
    )

    spec = load_rollout(str(_rollout_yaml(tmp_path, vendors)))
    store = SqliteStore(tmp_path / "state.db")
    events: list[Event] = []
    with httpx.Client() as client:
        try:
            status = RolloutStatus(State.PROGRESSING, 50, 2, START)
            record = RolloutRecord(ROLLOUT_ID, spec.name, spec.model_dump_json(), status, START)
            store.create_rollout(record, AuditDraft(START, AUTOMATIC, "created", ROLLOUT_ID, {}))
            rollout = LiveRollout(
                id=ROLLOUT_ID,
                name=spec.name,
                status=status,
                shape=spec.shape,
                previous_version=spec.previous_version,
                evaluator=Evaluator([], start=START, kinds={}),
                targets=target_views(spec),
                actuators={
                    t.name: build_actuator(
                        t.kind, t.name, t.settings, state_dir=tmp_path / "targets", env=ENV, http=client
                    )
                    for t in spec.targets
                },
            )
            reconciler = Reconciler(store, events.append, attempts=2, backoff=0.001)

            reconciler.manual(rollout, "rollback", START + 60, actor="alice", reason="checkout errors")

            intents = store.intents(ROLLOUT_ID)
            audit = store.audit_log(ROLLOUT_ID)
            transitions = store.transitions(ROLLOUT_ID)
            stored_rollout = store.get_rollout(ROLLOUT_ID)
        finally:
            store.close()
    out, err = capsys.readouterr()

    # The scenario happened as staged: the vendors were asked with the real credentials,
    # the failing ones failed the rollout, the others did their part.
    outcomes = {i.operation.target: i.outcome for i in intents}
    assert outcomes == {
        "checkout-flag": "failed",
        "web": "applied",
        "backend": "applied",
        "legacy-router": "failed",
        "edge-cache": "applied",
    }
    assert rollout.status.state is State.FAILED
    assert vendors.vercel.production(vendors.project) is not None
    assert any(r.headers.get("authorization") == f"Bearer {HOOK_TOKEN}" for r in vendors.hooks.requests)
    assert any(r.headers.get("authorization") == LD_TOKEN for r in vendors.launchdarkly.requests)
    assert caplog.records, "DEBUG logging was captured"

    # …and no secret value was stored, logged or printed anywhere.
    places: dict[str, str] = {
        **{f"intent {i.key} detail": i.detail or "" for i in intents},
        **{f"audit #{e.id} {e.kind}": e.payload_json for e in audit},
        **{f"transition {t.seq} reason": t.reason or "" for t in transitions},
        **{f"event {n}": e.text for n, e in enumerate(events)},
        "rollout record": repr(stored_rollout),
        "stdout": out,
        "stderr": err,
        "log text": caplog.text,
    }
    for n, log_record in enumerate(caplog.records):
        places[f"log record {n} ({log_record.name})"] = log_record.getMessage() + repr(log_record.__dict__)
    leaks = [(where, secret) for where, text in places.items() for secret in SECRETS if secret in text]
    assert leaks == []
    # The failures still say what went wrong (redacted, not emptied).
    failed = {i.operation.target: i.detail or "" for i in intents if i.outcome == "failed"}
    assert "401" in failed["checkout-flag"] or "auth" in failed["checkout-flag"].lower()
    assert "422" in failed["legacy-router"] or failed["legacy-router"]
