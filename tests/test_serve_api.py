"""`tidegate serve` over HTTP, as a real process on SQLite: probes, auth, acts, webhooks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve_process import TIDEGATE, TOKENS, Replica, auth
from tests.serve_rollouts import incident, rollout_text, write_pack


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    workdir = tmp_path_factory.mktemp("serve")
    rollouts = workdir / "rollouts"
    rollouts.mkdir()
    pack = write_pack(workdir)
    # ticks an hour apart: whatever happens within the test was caused by a wake (webhook, act)
    (rollouts / "checkout.yaml").write_text(rollout_text("checkout", pack, interval="1h"))
    (rollouts / "payments.yaml").write_text(rollout_text("payments", pack, endpoint="other"))
    (rollouts / "broken.yaml").write_text("apiVersion: tidegate/v1\nkind: Rollout\nmetadata: {name: x}\n")
    replica = Replica.start(
        workdir,
        "api-1",
        store=str(workdir / "state.db"),
        rollouts=rollouts,
        webhooks=[
            {"name": "generic", "vendor": "generic", "secret_env": "GENERIC_SECRET"},
            {"name": "other", "vendor": "generic", "secret_env": "GENERIC_SECRET"},
        ],
    )
    try:
        wait_for(lambda: len(progressing(replica)) == 2, "both rollouts start")
        yield replica
    finally:
        replica.terminate()


def wait_for(condition: Any, what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def progressing(replica: Replica) -> list[dict[str, Any]]:
    rows = replica.get("/api/v1/rollouts").json()
    return [row for row in rows if row["state"] == "progressing"]


def rollout_named(replica: Replica, name: str) -> dict[str, Any]:
    rows = [row for row in replica.get("/api/v1/rollouts").json() if row["name"] == name]
    assert rows, f"no rollout {name}"
    return dict(rows[-1])


def register(served: Replica, name: str, folder: Path) -> str:
    """A new rollout of the test's own, started (so tests never share one's state)."""
    text = rollout_text(name, write_pack(folder), endpoint="other")
    created = served.post("/api/v1/rollouts", {"yaml": text}, role="admin")
    assert created.status_code == 201, created.text
    rollout_id = str(created.json()["id"])
    path = f"/api/v1/rollouts/{rollout_id}"
    wait_for(lambda: served.get(path).json()["state"] == "progressing", f"{name} starts")
    return rollout_id


def test_probes_are_open_and_ready(served: Replica) -> None:
    assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{served.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    metrics = httpx.get(f"{served.url}/metrics").text
    assert "tidegate_leases_held" in metrics and "tidegate_tick_seconds_bucket" in metrics


def test_every_api_read_needs_a_valid_token(served: Replica) -> None:
    assert httpx.get(f"{served.url}/api/v1/rollouts").status_code == 401
    bad = httpx.get(f"{served.url}/api/v1/rollouts", headers={"Authorization": "Bearer nope-nope-nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert served.get("/api/v1/rollouts", role="viewer").status_code == 200


def test_the_folder_is_registered_and_a_broken_file_is_skipped(served: Replica) -> None:
    names = {row["name"] for row in served.get("/api/v1/rollouts").json()}
    assert {"checkout", "payments"} <= names and "x" not in names
    assert any("broken.yaml" in str(r.get("message")) for r in served.records())


def test_a_viewer_cannot_act_and_an_operator_acts_under_its_name(served: Replica) -> None:
    payments = rollout_named(served, "payments")
    path = f"/api/v1/rollouts/{payments['id']}/pause"
    refused = served.post(path, {"reason": "look"}, role="viewer")
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    done = served.post(path, {"reason": "latency looks odd"}, role="operator")
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "done" and done.json()["actor"] == "operator-person"
    assert served.get(f"/api/v1/rollouts/{payments['id']}").json()["state"] == "paused"
    audit = served.get(f"/api/v1/audit?rollout={payments['id']}").json()
    manual = [row for row in audit if row["kind"] == "manual"]
    assert manual[-1]["actor"] == "operator-person"
    assert manual[-1]["payload"]["reason"] == "latency looks odd"
    again = served.post(path, {"reason": "twice"}, role="operator")
    assert again.status_code == 409 and "paused" in again.json()["detail"]
    resumed = served.post(f"/api/v1/rollouts/{payments['id']}/resume", {"reason": "fine"}, role="operator")
    assert resumed.status_code == 200 and resumed.json()["outcome"] == "done"


def test_bad_requests_are_4xx_with_a_reason(served: Replica) -> None:
    payments = rollout_named(served, "payments")
    blank = served.post(f"/api/v1/rollouts/{payments['id']}/pause", {"reason": "   "})
    assert blank.status_code == 422 and "blank" in blank.json()["detail"]
    missing = served.post(f"/api/v1/rollouts/{payments['id']}/pause", {})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "reason"]
    assert served.post(f"/api/v1/rollouts/{payments['id']}/explode", {"reason": "x"}).status_code == 422
    unknown = served.post("/api/v1/rollouts/nope/pause", {"reason": "x"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    assert served.get("/api/v1/rollouts/nope").status_code == 404
    not_json = httpx.post(
        f"{served.url}/api/v1/rollouts/{payments['id']}/pause", content=b"{", headers=auth("operator")
    )
    assert not_json.status_code == 422


def test_registering_needs_admin_and_a_valid_spec(served: Replica, tmp_path: Path) -> None:
    pack = write_pack(tmp_path)
    text = rollout_text("search", pack, endpoint="other")
    assert served.post("/api/v1/rollouts", {"yaml": text}, role="operator").status_code == 403
    typo = text.replace("kind: Rollout", "kind: Rollot")
    broken = served.post("/api/v1/rollouts", {"yaml": typo}, role="admin")
    assert broken.status_code == 422 and "rollout.yaml:2" in broken.json()["detail"]
    created = served.post("/api/v1/rollouts", {"yaml": text}, role="admin")
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]
    path = f"/api/v1/rollouts/{rollout_id}"
    wait_for(lambda: served.get(path).json()["state"] == "progressing", "it starts")
    audit = served.get(f"/api/v1/audit?rollout={rollout_id}").json()
    assert audit[0]["kind"] == "created" and audit[0]["actor"] == "admin-person"


def test_the_third_pushed_incident_rolls_back_at_once(served: Replica) -> None:
    # "At once": on the webhook, not at a later tick — checkout ticks hourly; how fast is
    # measured by `python -m bench.reaction`.
    checkout = rollout_named(served, "checkout")
    for ident in ("INC-1", "INC-2"):
        assert incident(served.url, ident).json() == {"new_events": 1}
    duplicate = incident(served.url, "INC-2", status="acknowledged")  # the same incident again
    assert duplicate.status_code == 202 and duplicate.json() == {"new_events": 0}
    assert served.get(f"/api/v1/rollouts/{checkout['id']}").json()["state"] == "progressing"
    assert incident(served.url, "INC-3").status_code == 202
    wait_for(
        lambda: served.get(f"/api/v1/rollouts/{checkout['id']}").json()["state"] == "rolled_back",
        "the rollback completes",
        within=5.0,
    )
    detail = served.get(f"/api/v1/rollouts/{checkout['id']}").json()
    assert detail["targets"][0]["last_operation"] == "rollback(to 2.3.9)"
    assert detail["last_evaluation"]["breaching"] == ["high-severity-incidents"]
    decisions = served.get(f"/api/v1/rollouts/{checkout['id']}/decisions").json()
    assert decisions[-1]["decision"] == "rollback"
    actions = served.get(f"/api/v1/rollouts/{checkout['id']}/actions").json()
    assert [a["outcome"] for a in actions] == ["applied", "applied"]
    assert served.get(f"/api/v1/rollouts/{checkout['id']}/transitions").json()[-1]["to"] == "rolled_back"


def test_webhook_deliveries_are_verified(served: Replica) -> None:
    body = json.dumps({"id": "X", "timestamp": int(time.time()), "severity": "high"}).encode()
    unsigned = httpx.post(f"{served.url}/api/v1/webhooks/generic", content=body)
    assert unsigned.status_code == 401
    forged = httpx.post(
        f"{served.url}/api/v1/webhooks/generic",
        content=body,
        headers={"X-Tidegate-Timestamp": str(int(time.time())), "X-Tidegate-Signature": "sha256=" + "0" * 64},
    )
    assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
    assert incident(served.url, "Y", endpoint="nowhere").status_code == 404
    rejected = httpx.get(f"{served.url}/metrics").text
    assert 'tidegate_webhook_rejected_total{endpoint="generic",reason="BadSignature"}' in rejected


def test_audit_chain_verifies_over_the_api(served: Replica) -> None:
    report = served.get("/api/v1/audit/verify")
    assert report.status_code == 200 and report.json()["ok"] is True


def test_openapi_is_served(served: Replica) -> None:
    spec = httpx.get(f"{served.url}/openapi.json").json()
    assert "/api/v1/rollouts/{rollout_id}/{trigger}" in spec["paths"]


def test_logs_are_json_with_correlation_ids_and_no_secrets(served: Replica, tmp_path: Path) -> None:
    request_id = "trace-me-123"
    rollout_id = register(served, "traced", tmp_path)
    paused = httpx.post(
        f"{served.url}/api/v1/rollouts/{rollout_id}/pause",
        json={"reason": "correlate"},
        headers={**auth("operator"), "X-Request-ID": request_id},
        timeout=15,
    )
    assert paused.status_code == 200 and paused.headers["x-request-id"] == request_id
    records = served.records()
    assert records and all("level" in r and "time" in r for r in records)
    tagged = [r for r in records if r.get("correlation_id") == request_id]
    assert any(r.get("rollout") == rollout_id for r in tagged), "the step it caused carries the id"
    text = served.log.read_text()
    for secret in (*TOKENS.values(), "generic-webhook-secret"):
        assert secret not in text


def test_sigterm_exits_zero_and_releases_leases(tmp_path: Path) -> None:
    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    (rollouts / "one.yaml").write_text(rollout_text("one", write_pack(tmp_path)))
    replica = Replica.start(tmp_path, "short", store=str(tmp_path / "state.db"), rollouts=rollouts)
    wait_for(lambda: len(progressing(replica)) == 1, "the rollout starts")
    assert replica.terminate() == 0
    with sqlite3.connect(tmp_path / "state.db") as db:
        leases = db.execute("SELECT holder, expires_at FROM leases").fetchall()
        replicas = db.execute("SELECT name FROM replicas").fetchall()
    assert leases == [("short", 0.0)] and replicas == []


def test_the_manual_cli_acts_through_the_server(served: Replica, tmp_path: Path) -> None:
    rollout_id = register(served, "by-cli", tmp_path)
    command = [TIDEGATE, "pause", "by-cli", "--reason", "from the CLI", "--server", served.url]
    env = {**os.environ, "TIDEGATE_TOKEN": TOKENS["operator"]}
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{rollout_id}: progressing → paused at 10% (by operator-person)"
    env["TIDEGATE_TOKEN"] = TOKENS["viewer"]
    refused = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "403" in refused.stderr and "operator role" in refused.stderr
    del env["TIDEGATE_TOKEN"]
    missing = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "TIDEGATE_TOKEN" in missing.stderr


def test_an_act_on_the_store_behind_the_servers_back_is_picked_up(served: Replica, tmp_path: Path) -> None:
    rollout_id = register(served, "behind", tmp_path)
    state = served.log.parent / "state.db"
    command = [
        TIDEGATE,
        "pause",
        rollout_id,
        "--reason",
        "local CLI",
        "--actor",
        "carol",
        "--state",
        str(state),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    resumed = served.post(f"/api/v1/rollouts/{rollout_id}/resume", {"reason": "back on"})
    assert resumed.status_code == 200 and resumed.json()["outcome"] == "done", resumed.text
    assert served.get(f"/api/v1/rollouts/{rollout_id}").json()["state"] == "progressing"
    actors = [t["actor"] for t in served.get(f"/api/v1/rollouts/{rollout_id}/transitions").json()]
    assert actors[-2:] == ["carol", "operator-person"]
