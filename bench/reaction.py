"""Reaction time of `tidegate serve`: from the webhook that completes a breach to the target.

One real `tidegate serve` process (SQLite store, JSON logs to a file) and, in this process,
a loopback HTTP receiver standing in for a deployment target (a `webhook` target: the real
adapter, signed body, Idempotency-Key). Each trial registers a fresh rollout through the API
with its own policy pack (3+ high-severity incidents of ITS service within 1h → rollback, so
trials never see each other's incidents) and waits until it runs at 10%. Then two signed
incidents are pushed, and the clock starts just before the third: measured is the time
until the receiver gets the rollback request for that rollout's target — webhook verified,
event stored, rollout woken, evaluated, decided, journaled, actuated. The rollout's tick
interval is one hour, so nothing but the webhook can have caused the rollback.

    .venv/bin/python -m bench.reaction [--trials 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from adapters.sources.webhooks import sign_generic
from tests.prometheus_server import free_port

TARGET_P99_MS = 1000.0
SECRET = "bench-generic-webhook-secret"
ADMIN = "bench-admin-token-0123456789abcdef"
PACK = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {{name: trial-{n}}}
interval: 1h
policies:
  - id: high-severity-incidents
    signal: incidents
    match: {{severity: high, service: trial-{n}}}
    count: ">= 3"
    within: 1h
    on_no_data: ok
    action: rollback
"""
ROLLOUT = """\
apiVersion: tidegate/v1
kind: Rollout
metadata: {{name: trial-{n}}}
version: "2.0.0"
previousVersion: "1.9.0"
interval: 1h
steps: [{{traffic: 10, bake: 1h}}, {{traffic: 100, bake: 1h}}]
policies: [{pack}]
sources: [{{kind: pushed, name: incidents, settings: {{endpoint: incidents}}}}]
targets:
  - name: web
    kind: webhook
    settings: {{url: "{url}/t/{n}", capabilities: [set_traffic, rollback]}}
"""


@dataclass(frozen=True)
class ReactionResult:
    trials: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    worst_ms: float
    target_p99_ms: float
    met: bool


class Receiver:
    """Records when each rollback request arrives, by trial."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.event = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.perf_counter()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                trial = int(self.path.rsplit("/", 1)[1])
                if body["operation"] == "rollback":
                    with receiver.event:
                        receiver.arrived.setdefault(trial, now)
                        receiver.event.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, trial: int, timeout: float) -> float:
        with self.event:
            self.event.wait_for(lambda: trial in self.arrived, timeout)
        if trial not in self.arrived:
            raise SystemExit(f"trial {trial}: no rollback reached the target within {timeout}s")
        return self.arrived[trial]


def _incident(client: httpx.Client, trial: int, n: int) -> None:
    now = int(time.time())
    body = json.dumps(
        {"id": f"trial-{trial}-{n}", "timestamp": now, "severity": "high", "service": f"trial-{trial}"}
    ).encode()
    headers = {**sign_generic(SECRET, body, now), "Content-Type": "application/json"}
    answer = client.post("/api/v1/webhooks/incidents", content=body, headers=headers)
    if answer.status_code != 202:
        raise SystemExit(f"webhook refused: {answer.status_code} {answer.text}")


def run(trials: int, folder: Path) -> ReactionResult:
    receiver = Receiver()
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "store": str(folder / "state.db"),
        "replica": "bench",
        "webhooks": [{"name": "incidents", "vendor": "generic", "secret_env": "BENCH_SECRET"}],
    }
    (folder / "controller.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "BENCH_SECRET": SECRET, "TIDEGATE_TOKENS": f"bench:admin:{ADMIN}"}
    tidegate = str(Path(sys.executable).parent / "tidegate")
    with (folder / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [tidegate, "serve", "--config", "controller.yaml", "--log-level", "WARNING"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    times = []
    try:
        _wait_ready(client, server)
        for trial in range(trials):
            pack = folder / f"pack-{trial}.yaml"
            pack.write_text(PACK.format(n=trial))
            text = ROLLOUT.format(n=trial, pack=pack, url=receiver.url)
            created = client.post("/api/v1/rollouts", json={"yaml": text})
            if created.status_code != 201:
                raise SystemExit(f"register failed: {created.status_code} {created.text}")
            rollout = created.json()["id"]
            _wait_state(client, rollout, "progressing")
            _incident(client, trial, 1)
            _incident(client, trial, 2)
            started = time.perf_counter()
            _incident(client, trial, 3)
            times.append((receiver.wait(trial, 30.0) - started) * 1000)
    finally:
        server.terminate()
        server.wait(30)
        client.close()
        receiver.server.shutdown()
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return ReactionResult(
        trials=trials,
        p50_ms=statistics.median(ordered),
        p90_ms=ordered[round(0.9 * (len(ordered) - 1))],
        p99_ms=p99,
        worst_ms=ordered[-1],
        target_p99_ms=TARGET_P99_MS,
        met=p99 < TARGET_P99_MS,
    )


def _wait_ready(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"tidegate serve exited {server.returncode}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("tidegate serve did not become ready")


def _wait_state(client: httpx.Client, rollout: str, state: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get(f"/api/v1/rollouts/{rollout}").json()["state"] == state:
            return
        time.sleep(0.01)
    raise SystemExit(f"{rollout} never reached {state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tidegate-reaction-") as folder:
        result = run(args.trials, Path(folder))
    if args.json:
        print(json.dumps(asdict(result)))
        return
    print(
        f"reaction over {result.trials} trials: p50 {result.p50_ms:.0f} ms, p90 {result.p90_ms:.0f} ms, "
        f"p99 {result.p99_ms:.0f} ms, worst {result.worst_ms:.0f} ms "
        f"(target p99 < {result.target_p99_ms:.0f} ms: {'met' if result.met else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
