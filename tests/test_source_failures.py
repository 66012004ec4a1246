"""A failing source on the live loop (`drive_live`): no data for the tick, counted in the store
per rollout and source, and read again from where its last answered read ended — so what
arrived during the outage still counts — with the HTTP retries of one read kept short.

Real pieces: the store (SQLite and PostgreSQL, the `store` fixture), the runtime, the
evaluator, the `pagerduty` source against its loopback fake; a fake clock, never `sleep`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.errors import RateLimited, SignalError
from adapters.sources.pagerduty import PagerDutySettings, PagerDutySource
from adapters.sources.registry import SourceContext, build_source
from controller.bootstrap import live_rollout
from controller.core.model import RolloutId, RolloutStatus, State
from controller.driver import Mode, ReadCursor, drive_live
from controller.runtime import AUTOMATIC, Event, Reconciler
from controller.spec import load_rollout
from controller.store.base import AuditDraft, RolloutRecord, SourceHealth
from controller.store.sql import SqlStore
from policies.evaluator import Evaluator
from policies.loader import parse_pack
from policies.timestamps import format_timestamp
from tests.fakes.clock import FakeClock
from tests.fakes.pagerduty import FakePagerDuty, error, rate_limited
from tests.prometheus_server import free_port

TOKEN = "pd-secret-Qm4xTb7Lw2"
T0 = 1_800_000_000.0
ROLLOUT_ID = RolloutId("shop-1")
PACK = """apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: t}
policies:
  - {id: incident-storm, signal: incidents, count: ">= 3", within: 1h, match: {severity: high},
     action: rollback}
"""
ROLLOUT = """apiVersion: tidegate/v1
kind: Rollout
metadata: {name: shop}
version: "2.0"
previousVersion: "1.0"
policies: [library:runbook]
targets:
  - name: web
    kind: sandbox
    settings: {emulates: vercel, version: "2.0", previous_version: "1.0", traffic: 100}
"""


@pytest.fixture(scope="module")
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(TOKEN) as started:
        assert isinstance(started, FakePagerDuty)
        yield started


def test_an_outage_is_no_data_counted_and_read_again_so_its_incidents_still_count(
    store: SqlStore, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    pagerduty.reset()
    clock = FakeClock(T0)
    (tmp_path / "rollout.yaml").write_text(ROLLOUT)
    spec = load_rollout(str(tmp_path / "rollout.yaml"))
    record = RolloutRecord(
        ROLLOUT_ID, "shop", spec.model_dump_json(), RolloutStatus(State.PROGRESSING, 100, 0, T0), T0
    )
    store.create_rollout(record, AuditDraft(T0, AUTOMATIC, "created", ROLLOUT_ID, {}))
    evaluator = Evaluator(parse_pack(PACK, "t.yaml").policies, start=T0, kinds={})
    rollout = live_rollout(record, spec, evaluator, tmp_path)
    events: list[Event] = []
    with httpx.Client() as client:
        settings = PagerDutySettings.model_validate({"token_env": "PD_TOKEN", "base_url": pagerduty.url})
        source = PagerDutySource("pd", settings, client, {"PD_TOKEN": TOKEN}, sleep=clock.sleep, clock=clock)
        pagerduty.add("P1", created_at=T0 + 30)
        pagerduty.add("P2", created_at=T0 + 90)  # during the outage
        pagerduty.add("P3", created_at=T0 + 150)  # during the outage
        # the reads at T0+60 and T0+120 fail: 3 attempts each (SOURCE_RETRY), then no data
        pagerduty.inject(error(503, "Service Unavailable", 0), times=6)

        outcome = drive_live(
            Reconciler(store, events.append),
            rollout,
            [source],
            start=T0,
            interval=60.0,
            until=T0 + 300,
            mode=Mode.GATE,
            cursor=ReadCursor({"pd": T0}, horizon=3600.0),
            clock=clock,
            sleep=clock.sleep,
        )

    notes = [e for e in events if e.kind == "source"]
    assert [e.at for e in notes] == [T0 + 60, T0 + 120]
    assert all("pd: no data this tick" in e.text and "503" in e.text for e in notes)
    # the read at T0+180 covered (T0, T0+180]: the three incidents arrive, the rule breaches
    assert rollout.status.state is State.ROLLED_BACK and outcome.code == 1
    assert pagerduty.requests[-1].query["since"] == [format_timestamp(T0)]
    (health,) = store.source_health(ROLLOUT_ID)
    assert health == SourceHealth("pd", 1, 2, 0, T0 + 180, T0 + 120, health.last_error), (
        "two failed reads, then one that answered"
    )
    assert health.last_error.startswith("source 'pd' (pagerduty): pagerduty: GET /incidents → 503")
    assert TOKEN not in health.last_error


def test_a_cursor_never_reaches_further_back_than_its_horizon() -> None:
    cursor = ReadCursor({"pd": T0}, horizon=3600.0)
    assert cursor.start("pd", T0 + 60) == T0
    assert cursor.start("pd", T0 + 7200) == T0 + 3600  # a long outage: only what rules still see
    reads = ReadCursor.after_history([], T0 - 3600, T0, 3600.0)
    assert reads.start("never-read", T0 + 60) == T0 + 60 - 3600


def test_a_source_read_gives_up_quickly_on_a_closed_port() -> None:
    # SOURCE_RETRY: three attempts with 0.25 s and 0.5 s (jittered) between them, real time
    with httpx.Client() as client:
        reader = build_source(
            "prometheus",
            "metrics",
            {"url": f"http://127.0.0.1:{free_port()}", "signals": {"x": "up"}},
            SourceContext(env={}, http=client),
        )
        began = time.monotonic()
        with pytest.raises(SignalError, match="query 'up'"):
            reader.read(T0, T0 + 60)
        took = time.monotonic() - began
    assert reader.http.calls == 3  # type: ignore[attr-defined]
    assert took < 2.0


def test_a_source_does_not_wait_out_a_long_rate_limit(pagerduty: FakePagerDuty) -> None:
    pagerduty.reset()
    clock = FakeClock(T0)
    with httpx.Client() as client:
        settings = PagerDutySettings.model_validate({"token_env": "PD_TOKEN", "base_url": pagerduty.url})
        source = PagerDutySource("pd", settings, client, {"PD_TOKEN": TOKEN}, sleep=clock.sleep, clock=clock)
        pagerduty.inject(rate_limited(reset=30))
        with pytest.raises(SignalError, match="429") as caught:
            source.read(T0, T0 + 60)
        assert isinstance(caught.value.__cause__, RateLimited)
        assert clock.sleeps == []  # the next tick reads this interval again instead

        pagerduty.inject(rate_limited(reset=2))
        source.read(T0, T0 + 60)
        assert clock.sleeps == [2.0]  # a short one is waited out within the read
