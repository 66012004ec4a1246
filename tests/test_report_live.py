"""A report on a rollout that read a live source: the data is read again from a real Prometheus.

History (backfilled with promtool), from T0 six hours ago: `tg_report_latency` every 30 s,
2 s for 20 minutes, then 30 s. The rollout is driven through the real engine over that past
(the live loop with its clock injected), so the store holds what a live rollout writes; the
report must read the same samples back and rebuild the very firing and decisions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.bootstrap import (
    build_evaluator,
    live_rollout,
    live_sources,
    lookback,
    policies_of,
    read_history,
)
from controller.core.model import RolloutId, RolloutStatus, State
from controller.driver import Mode, ReadCursor, drive_live
from controller.report import rollout_report
from controller.runtime import AUTOMATIC, Reconciler
from controller.spec import RolloutSpec, load_rollout
from controller.store import open_store
from controller.store.base import AuditDraft, RolloutRecord, Store
from tests.prometheus_server import PrometheusServer, require_prometheus

T0 = float((int(time.time()) // 3600 - 6) * 3600)
ONSET = 1200  # seconds after T0: the latency jumps from 2 s to 30 s

PACK = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: live}
interval: 30s
policies:
  - id: latency
    signal: latency
    when: "> 20"
    for: 2m
    action: rollback
"""

ROLLOUT = """\
apiVersion: tidegate/v1
kind: Rollout
metadata: {{name: live-web}}
version: "2.0.0"
previousVersion: "1.9.0"
steps: [{{traffic: 50, bake: 10m}}, {{traffic: 100, bake: 2h}}]
policies: [pack.yaml]
sources:
  - kind: prometheus
    name: metrics
    settings: {{url: "{url}", step: 30s, signals: {{latency: "max(tg_report_latency)"}}}}
targets:
  - name: web
    kind: sandbox
    settings: {{emulates: vercel, version: "2.0.0", previous_version: "1.9.0"}}
"""


def openmetrics() -> str:
    lines = ["# HELP tg_report_latency p95 latency", "# TYPE tg_report_latency gauge"]
    for j in range(81):  # T0 .. T0 + 40 minutes
        value = 30.0 if 30 * j >= ONSET else 2.0
        lines.append(f'tg_report_latency{{job="web"}} {value!r} {int(T0) + 30 * j}')
    return "\n".join([*lines, "# EOF", ""])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer.start(tmp_path_factory.mktemp("prometheus"), openmetrics())
    try:
        yield server
    finally:
        server.stop()


def rollout_spec(folder: Path, url: str) -> RolloutSpec:
    (folder / "pack.yaml").write_text(PACK)
    (folder / "rollout.yaml").write_text(ROLLOUT.format(url=url))
    return load_rollout(str(folder / "rollout.yaml"))


def new_record(store: Store, spec: RolloutSpec, rollout_id: str) -> RolloutRecord:
    record = RolloutRecord(
        RolloutId(rollout_id), spec.name, spec.model_dump_json(), RolloutStatus(State.PENDING, 0, 0, T0), T0
    )
    store.create_rollout(record, AuditDraft(T0, AUTOMATIC, "created", record.id, {"mode": "run"}))
    return record


def drive_over_the_past(store: Store, spec: RolloutSpec, record: RolloutRecord, folder: Path) -> None:
    """`tidegate run`'s live loop, ticking through T0 … T0 + 40 m as fast as it can."""
    policies, interval = policies_of(spec)
    sources = live_sources(spec)
    since = T0 - lookback(policies)
    signals, history = read_history(sources, since, T0, policies)
    rollout = live_rollout(record, spec, build_evaluator(policies, signals), folder)
    drive_live(
        Reconciler(store),
        rollout,
        sources,
        start=T0,
        interval=interval,
        until=T0 + 2400,
        mode=Mode.RUN,
        cursor=ReadCursor.after_history(history, since, T0, max(lookback(policies), interval)),
        clock=lambda: T0 + 10**7,  # the past: no tick waits
        sleep=lambda seconds: None,
    )


def test_the_report_reads_a_live_source_again_and_rebuilds_the_firing(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    spec = rollout_spec(tmp_path, prometheus.url)
    store = open_store(str(tmp_path / "state.db"))
    try:
        record = new_record(store, spec, "live-web-1")
        drive_over_the_past(store, spec, record, tmp_path)
        finished = store.get_rollout(record.id)
        assert finished is not None and finished.status.state is State.ROLLED_BACK
        report = rollout_report(store, finished, time.time())
    finally:
        store.close()

    assert report.charts_available, report.notes
    assert report.notes[0].startswith("signals read again from the live sources (metrics) for ")
    assert "re-evaluating the data gives the very decisions the rollout recorded" in report.notes
    (firing,) = report.firings
    assert (firing.at, firing.value, firing.pending_since) == (T0 + ONSET + 120, 30.0, T0 + ONSET)
    assert [(d.at, d.decision, d.reasons) for d in report.decisions] == [
        (T0, "advance", ()),
        (T0 + ONSET + 120, "rollback", ("latency: 30 (latency > 20 for 2m)",)),
    ]
    (chart,) = report.rules
    before = [p.v for p in chart.points if p.t < T0 + ONSET]
    assert before and set(before) == {2.0}
    assert [m.kind for m in report.markers] == ["start", "advance", "rollback", "complete"]


def test_a_live_source_that_is_gone_leaves_the_records_and_says_why(tmp_path: Path) -> None:
    spec = rollout_spec(tmp_path, "http://127.0.0.1:9")  # nothing listens on the discard port
    store = open_store(str(tmp_path / "state.db"))
    try:
        record = new_record(store, spec, "live-web-2")
        report = rollout_report(store, record, T0 + 600)
    finally:
        store.close()

    assert not report.charts_available and report.rules == ()
    assert any(note.startswith("source metrics could not be read: ") for note in report.notes), report.notes
    assert report.audit is not None and report.audit.ok and report.audit.rollout_rows == 1
    assert [lane.name for lane in report.targets] == ["web"]
