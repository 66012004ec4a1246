"""Rollout files for `tidegate serve` tests: incidents pushed by webhook roll a release back;
a demo-like checkout release with replayed signals for the dashboard."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx

from adapters.sources.webhooks import sign_generic
from controller.core.model import RolloutId, RolloutStatus, State
from controller.spec import load_rollout
from controller.store import open_store
from controller.store.base import AuditDraft, RolloutRecord
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


# --- a demo-like release for the dashboard: replayed latency and conversion, pushed incidents

SCENARIO_PACK = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: checkout-live}
interval: 1s
policies:
  - id: high-severity-incidents
    signal: incidents
    match: {severity: high}
    count: ">= 3"
    within: 1h
    on_no_data: ok
    action: rollback
  - id: latency-p95
    signal: latency_p95
    when: "> 0.8"
    for: 10s
    staleness: 5s
    action: notify
  - id: conversion-drift
    signal: checkout_conversion
    drift: "> 5%"
    direction: down
    baseline: {window: 1m}
    window: 10s
    action: hold
"""

SCENARIO_ROLLOUT = """\
apiVersion: tidegate/v1
kind: Rollout
metadata: {{name: {name}}}
version: "2.4.0"
previousVersion: "2.3.9"
interval: 1s
steps:
  - {{traffic: 10, bake: 1h}}
  - {{traffic: 100, bake: 1h}}
policies: [{pack}]
sources:
  - kind: replay
    data: {data}
    start: "{anchor}"
  - kind: pushed
    name: incidents
    settings: {{endpoint: {endpoint}}}
targets:
  - name: checkout-flag
    kind: sandbox
    settings: {{emulates: launchdarkly, version: "2.4.0", previous_version: "2.3.9"}}
  - name: web
    kind: sandbox
    settings: {{emulates: vercel, version: "2.4.0", previous_version: "2.3.9"}}
"""

SCENARIO_ANCHOR = 1_800_000_000  # the data's time that lands on the rollout's start


def scenario_latency(s: float) -> float:
    """p95 latency (seconds) s seconds after the start: above 0.8 from ~29 s to ~64 s, and
    again from ~85 s on."""
    wobble = 0.04 * math.sin(s / 3)
    if s < 20:
        return 0.35 + wobble
    if s < 35:
        return 0.35 + 0.75 * (s - 20) / 15 + wobble
    if s < 60:
        return 1.1 + wobble
    if s < 70:
        return 1.1 - 0.7 * (s - 60) / 10 + wobble
    if s < 80:
        return 0.4 + wobble
    return min(1.2, 0.4 + 0.8 * (s - 80) / 10) + wobble


def scenario_conversion(s: float) -> tuple[float, float]:
    """(conversions, sessions) per second: 25% before and until 45 s after the start, 20% after."""
    sessions = round(400 + 20 * math.sin(s / 5))
    rate = 0.25 if s < 45 else 0.20
    return round(sessions * rate + 3 * math.sin(s / 2)), sessions


def write_scenario(folder: Path, name: str, *, endpoint: str = "generic") -> Path:
    """The rollout file of a checkout release whose latency degrades twice and whose
    conversion drops 45 s after its start (data from 2 minutes before to 10 after)."""
    pack = folder / "checkout-live-pack.yaml"
    pack.write_text(SCENARIO_PACK)
    rows = ["timestamp,signal,value"]
    for s in range(-120, 601):
        at = SCENARIO_ANCHOR + s
        conversions, sessions = scenario_conversion(s)
        rows.append(f"{at},latency_p95,{scenario_latency(s):.4f}")
        rows.append(f"{at},checkout_conversion:num,{conversions}")
        rows.append(f"{at},checkout_conversion:den,{sessions}")
    data = folder / f"{name}-data.csv"
    data.write_text("\n".join(rows) + "\n")
    path = folder / f"{name}.yaml"
    path.write_text(
        SCENARIO_ROLLOUT.format(name=name, pack=pack, data=data, anchor=SCENARIO_ANCHOR, endpoint=endpoint)
    )
    return path


def register_earlier(store: str, rollout: Path, seconds: float) -> str:
    """Put a rollout in the store as if registered `seconds` ago, before `tidegate serve`
    starts: its first holder steps through the ticks it missed at once, so the page has a
    history to show from the first look."""
    spec = load_rollout(str(rollout))
    then = time.time() - seconds
    record = RolloutRecord(
        RolloutId(f"{spec.name}-earlier"),
        spec.name,
        spec.model_dump_json(by_alias=True),
        RolloutStatus(State.PENDING, traffic=0, step=0, since=then),
        then,
    )
    opened = open_store(store)
    try:
        created = {"name": spec.name, "version": spec.version}
        opened.create_rollout(record, AuditDraft(then, "admin-person", "created", record.id, created))
    finally:
        opened.close()
    return record.id
