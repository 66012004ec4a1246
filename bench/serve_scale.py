"""One `tidegate serve` replica holding 10,000 active rollouts: tick time, memory, API p99.

The store (SQLite, or PostgreSQL with --postgres URL) is filled directly with N rollouts
already at 10% (so starting them touches no target), each ticking every `--interval` with
the runbook's incident rule fed by a `pushed` source and one sandbox target. A real
`tidegate serve` process then leases and loads them all. Measured, once every rollout has
ticked at least once:

- steps: how many rollout steps ran per second against the N / interval needed, and the
  mean and p99 step time (from /metrics' `tidegate_tick_seconds`);
- memory: the process's RSS;
- API: GET /api/v1/rollouts/{id} for random ids from `--clients` concurrent clients for
  `--seconds`, while the replica keeps ticking: requests per second, p50 and p99 latency.

    .venv/bin/python -m bench.serve_scale [--rollouts 10000] [--interval 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import yaml

from controller.core.model import RolloutId, RolloutStatus, State
from controller.spec import load_rollout
from controller.store import open_store
from controller.store.base import AuditDraft, RolloutRecord
from tests.prometheus_server import free_port
from tests.serve_rollouts import PACK  # the runbook's incident rule, as the serve tests use it

TOKEN = "bench-viewer-token-0123456789abcdef"
ROLLOUT = """\
apiVersion: tidegate/v1
kind: Rollout
metadata: {name: svc}
version: "2.0.0"
previousVersion: "1.9.0"
interval: %s
steps: [{traffic: 10, bake: 24h}, {traffic: 100, bake: 24h}]
policies: [%s]
sources: [{kind: pushed, name: incidents, settings: {endpoint: incidents}}]
targets:
  - {name: web, kind: sandbox, settings: {emulates: vercel, version: "2.0.0", previous_version: "1.9.0"}}
"""


@dataclass(frozen=True)
class ScaleResult:
    rollouts: int
    interval_s: float
    load_s: float  # from start until every rollout had ticked once
    steps_per_s: float
    needed_steps_per_s: float
    step_mean_ms: float
    step_p99_le_ms: float  # the histogram bucket bound the 99th percentile falls under
    rss_mb: float
    api_requests: int
    api_rps: float
    api_p50_ms: float
    api_p99_ms: float


def fill(store_url: str, folder: Path, rollouts: int, interval: float) -> None:
    (folder / "pack.yaml").write_text(PACK)
    (folder / "rollout.yaml").write_text(ROLLOUT % (f"{interval:g}s", folder / "pack.yaml"))
    spec_json = load_rollout(str(folder / "rollout.yaml")).model_dump_json(by_alias=True)
    store = open_store(store_url)
    now = time.time()
    try:
        for i in range(rollouts):
            # started at different moments, as real rollouts are: their ticks spread over the interval
            began = now - interval * (i % 997) / 997
            status = RolloutStatus(State.PROGRESSING, 10, 0, since=began, seq=1, reason="started")
            record = RolloutRecord(RolloutId(f"svc-{i:05d}"), "svc", spec_json, status, began)
            store.create_rollout(record, AuditDraft(now, "bench", "created", record.id, {}))
    finally:
        store.close()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def p99_bucket(text: str) -> float:
    buckets = []
    for line in text.splitlines():
        if line.startswith("tidegate_tick_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.split()[1])))
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if count >= 0.99 * total:
            return bound
    return float("inf")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def api_load(url: str, ids: list[str], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def one_client() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                answer = await client.get(f"/api/v1/rollouts/{random.choice(ids)}")
                latencies.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"API answered {answer.status_code}: {answer.text}")

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies


def run(rollouts: int, interval: float, clients: int, seconds: float, store_url: str | None) -> ScaleResult:
    with tempfile.TemporaryDirectory(prefix="tidegate-scale-") as name:
        folder = Path(name)
        url = store_url or str(folder / "state.db")
        fill(url, folder, rollouts, interval)
        port = free_port()
        config = {
            "listen": f"127.0.0.1:{port}",
            "store": url,
            "replica": "bench",
            "lease": {"ttl": "30s", "renew": "10s"},
        }
        (folder / "controller.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "TIDEGATE_TOKENS": f"bench:viewer:{TOKEN}"}
        tidegate = str(Path(sys.executable).parent / "tidegate")
        with (folder / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [tidegate, "serve", "--config", "controller.yaml", "--log-level", "WARNING"],
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            text = ""
            while metric(text, "tidegate_tick_seconds_count") < rollouts:
                if server.poll() is not None:
                    raise SystemExit(f"tidegate serve exited: {(folder / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.5)
                try:
                    text = httpx.get(f"{base}/metrics", timeout=30).text
                except httpx.HTTPError:
                    text = ""
            load = time.monotonic() - started
            first_count, first_sum = (
                metric(text, "tidegate_tick_seconds_count"),
                metric(text, "tidegate_tick_seconds_sum"),
            )
            window_start = time.monotonic()
            ids = [f"svc-{i:05d}" for i in range(rollouts)]
            latencies = asyncio.run(api_load(base, ids, clients, seconds))
            time.sleep(max(0.0, 2 * interval - (time.monotonic() - window_start)))  # two full rounds
            text = httpx.get(f"{base}/metrics", timeout=30).text
            window = time.monotonic() - window_start
            steps = metric(text, "tidegate_tick_seconds_count") - first_count
            step_time = metric(text, "tidegate_tick_seconds_sum") - first_sum
            memory = rss_mb(server.pid)
            p99 = p99_bucket(text)
        finally:
            server.terminate()
            server.wait(120)
    ordered = sorted(latencies)
    return ScaleResult(
        rollouts=rollouts,
        interval_s=interval,
        load_s=load,
        steps_per_s=steps / window,
        needed_steps_per_s=rollouts / interval,
        step_mean_ms=1000 * step_time / max(steps, 1),
        step_p99_le_ms=1000 * p99,
        rss_mb=memory,
        api_requests=len(ordered),
        api_rps=len(ordered) / seconds,
        api_p50_ms=statistics.median(ordered),
        api_p99_ms=ordered[round(0.99 * (len(ordered) - 1))],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--postgres", default=None, help="a postgresql:// URL instead of SQLite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.rollouts, args.interval, args.clients, args.seconds, args.postgres)
    if args.json:
        print(json.dumps(asdict(result)))
        return
    for key, value in asdict(result).items():
        print(f"{key:>20}: {value:,.1f}" if isinstance(value, float) else f"{key:>20}: {value:,}")


if __name__ == "__main__":
    main()
