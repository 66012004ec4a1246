"""Rollout files for `tidegate serve` tests: incidents pushed by webhook roll a release back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from adapters.sources.webhooks import sign_generic
from tests.serve_process import GENERIC_SECRET

PACK = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: incidents}
interval: 1s
policies:
  - id: high-severity-incidents
    signal: incidents
    match: {severity: high}
    count: ">= 3"
    within: 1h
    on_no_data: ok
    action: rollback
"""

ROLLOUT = """\
apiVersion: tidegate/v1
kind: Rollout
metadata: {{name: {name}}}
version: "2.4.0"
previousVersion: "2.3.9"
interval: {interval}
steps:
  - {{traffic: 10, bake: 1h}}
  - {{traffic: 100, bake: 1h}}
policies: [{pack}]
sources:
  - kind: pushed
    name: incidents
    settings: {{endpoint: {endpoint}}}
targets:
{targets}
"""

TARGET = """\
  - name: {name}
    kind: sandbox
    settings: {{emulates: {emulates}, version: "2.4.0", previous_version: "2.3.9", delay: {delay}}}
"""


def write_pack(folder: Path) -> Path:
    path = folder / "incidents-pack.yaml"
    path.write_text(PACK)
    return path


def rollout_text(
    name: str,
    pack: Path,
    *,
    endpoint: str = "generic",
    interval: str = "1s",
    targets: int = 1,
    delay: float = 0.0,
) -> str:
    kinds = ["vercel", "argocd", "supabase-functions"]  # each rolls back by version
    listed = "".join(
        TARGET.format(name=f"target-{i}", emulates=kinds[i % len(kinds)], delay=delay) for i in range(targets)
    )
    return ROLLOUT.format(name=name, interval=interval, pack=pack, endpoint=endpoint, targets=listed)


def incident(
    url: str, ident: str, *, endpoint: str = "generic", severity: str = "high", status: str = "triggered"
) -> httpx.Response:
    """POST one signed generic incident to a replica."""
    now = int(time.time())
    delivery = {"id": ident, "timestamp": now, "severity": severity, "status": status, "title": "5xx"}
    body = json.dumps(delivery).encode()
    headers = {**sign_generic(GENERIC_SECRET, body, now), "Content-Type": "application/json"}
    return httpx.post(f"{url}/api/v1/webhooks/{endpoint}", content=body, headers=headers, timeout=15.0)
