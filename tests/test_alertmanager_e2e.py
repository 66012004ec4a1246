"""Prometheus alerting rules → the real Alertmanager → tidegate's webhook parsing → a count rule.

A real Prometheus evaluates alerting rules every second (`vector(1) > 0`: they fire on the
first evaluation) and notifies a real Alertmanager, whose webhook receiver posts, with its
http_config bearer token, to a loopback endpoint that does what the controller's endpoint
does: `check_token`, then `parse_alertmanager`. The events feed the runbook pack's own
"3+ high-severity incidents in 1 hour" rule. Alertmanager re-sends each unchanged group every
repeat interval; those repeats must not count again.

Timing (this machine): Prometheus learns its Alertmanager through service discovery, which
publishes at most every 5 s, so the first notification arrives ~7 s after start and the
whole test takes ~10 s. `--rules.alert.resend-delay=1s` makes Prometheus re-send firing
alerts every evaluation instead of every minute: alerts fired before the Alertmanager was
discovered are not lost for a minute.
"""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.sources.webhooks import BadSignature, check_token, parse_alertmanager
from policies.evaluator import Evaluator
from policies.loader import load_pack
from policies.rules.base import Status
from policies.series import Event
from tests.alertmanager_server import AlertmanagerServer, require_alertmanager
from tests.fakes.server import FakeVendor, Reply, Request
from tests.prometheus_server import PrometheusServer, require, require_prometheus

TOKEN = "am-webhook-token-7f3c"
SEVERITY = {"critical": "high", "warning": "low"}
HIGH_ALERTS = {"CheckoutErrorRate", "CheckoutLatency", "PaymentTimeouts"}
DEADLINE = 40.0  # seconds; a healthy run needs ~10

RULES = """\
groups:
  - name: checkout-release
    interval: 1s
    rules:
      - {alert: CheckoutErrorRate, expr: vector(1) > 0, labels: {severity: critical, service: checkout}}
      - {alert: CheckoutLatency, expr: vector(1) > 0, labels: {severity: critical, service: checkout}}
      - {alert: PaymentTimeouts, expr: vector(1) > 0, labels: {severity: critical, service: payments}}
      - {alert: DiskFillingUp, expr: vector(1) > 0, labels: {severity: warning, service: checkout}}
      - {alert: ForgedDelivery, expr: vector(1) > 0, labels: {severity: critical, route: stale-token}}
"""


def prometheus_config(alertmanager: str) -> str:
    return f"""\
global: {{scrape_interval: 1h, evaluation_interval: 1s}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["{alertmanager}"]}}]
"""


def alertmanager_config(hook: str) -> str:
    # One group per alertname, so each alert arrives in a notification of its own; the
    # stale-token receiver stands for a misconfigured (or forged) sender.
    return f"""\
route:
  receiver: tidegate
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1s
  routes:
    - {{receiver: stale-token, matchers: ['route="stale-token"']}}
receivers:
  - name: tidegate
    webhook_configs:
      - url: {hook}
        send_resolved: true
        http_config: {{authorization: {{credentials: {TOKEN}}}}}
  - name: stale-token
    webhook_configs:
      - url: {hook}
        http_config: {{authorization: {{credentials: rotated-away}}}}
"""


class AlertEndpoint(FakeVendor):
    """The receiving side: verify the bearer token, parse, hand the events to the test."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: queue.Queue[list[Event]] = queue.Queue()
        self.rejected = 0
        self.route("POST", "/hooks/alertmanager", self.deliver)

    def deliver(self, request: Request) -> Reply:
        try:
            check_token(request.headers, TOKEN)
        except BadSignature as error:
            self.rejected += 1
            return Reply(401, {"error": str(error)})
        self.deliveries.put(parse_alertmanager(request.body, signal="incidents", severity=SEVERITY))
        return Reply(200)


@dataclass
class Stack:
    endpoint: AlertEndpoint
    alertmanager: AlertmanagerServer
    prometheus: PrometheusServer

    def logs(self) -> str:
        return f"alertmanager:\n{self.alertmanager.tail()}\nprometheus:\n{self.prometheus.tail()}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require_prometheus()
    require_alertmanager()
    with AlertEndpoint() as endpoint:
        assert isinstance(endpoint, AlertEndpoint)
        (tmp_path / "am").mkdir()
        alertmanager = AlertmanagerServer.start(
            tmp_path / "am", alertmanager_config(f"{endpoint.url}/hooks/alertmanager")
        )
        try:
            (tmp_path / "prom").mkdir()
            (tmp_path / "prom" / "rules.yml").write_text(RULES)
            config = prometheus_config(alertmanager.address)
            prometheus = PrometheusServer.launch(tmp_path / "prom", config, "--rules.alert.resend-delay=1s")
            try:
                yield Stack(endpoint, alertmanager, prometheus)
            finally:
                prometheus.stop()
        finally:
            alertmanager.stop()


@dataclass
class Tick:
    delivered: list[str]  # alertnames in this notification
    new: int  # events the evaluator had not seen (by id)
    counted: float | None  # the rule's value: distinct high-severity incidents within 1 h
    status: Status


def test_real_alertmanager_notifications_breach_the_runbook_incident_rule_once_three_distinct_alerts_fired(
    stack: Stack,
) -> None:
    pack = load_pack("library:runbook")
    began = time.time()
    evaluator = Evaluator(pack.policies, start=began, kinds={})  # only the count rule binds
    ticks: list[Tick] = []
    distinct: set[str] = set()
    now = began

    def done() -> bool:
        breached = [t for t in ticks if t.status is Status.BREACH]
        repeats_after_breach = [t for t in breached[1:] if t.new == 0 and set(t.delivered) & HIGH_ALERTS]
        seen = {name for t in ticks for name in t.delivered}
        return bool(repeats_after_breach) and "DiskFillingUp" in seen and stack.endpoint.rejected > 0

    while not done():
        if time.time() - began > DEADLINE:
            pytest.fail(f"no breach plus a repeat within {DEADLINE:.0f} s; ticks {ticks}\n{stack.logs()}")
        try:
            events = stack.endpoint.deliveries.get(timeout=0.5)
        except queue.Empty:
            continue
        new = sum(evaluator.observe_event(event) for event in events)
        distinct.update(str(e.id) for e in events if e.fields["severity"] == "high")
        now = max(now, time.time(), *(e.time for e in events))
        state = next(s for s in evaluator.tick(now) if s.policy.id == "high-severity-incidents")
        ticks.append(Tick([str(e.fields["alertname"]) for e in events], new, state.value, state.status))

    counted_so_far = 0
    for tick in ticks:  # breach exactly from the notification that brought the third distinct alert
        counted_so_far += tick.new if set(tick.delivered) & HIGH_ALERTS else 0
        assert tick.counted == counted_so_far
        assert tick.status is (Status.BREACH if counted_so_far >= 3 else Status.OK), ticks
    assert ticks[-1].counted == 3.0 and len(distinct) == 3, "repeats and the warning must not count"
    assert len(ticks) > 4, "Alertmanager re-sent unchanged groups, and they were deduplicated by id"
    assert "ForgedDelivery" not in {name for t in ticks for name in t.delivered}, (
        "a wrong token never gets in"
    )


def test_the_documented_receiver_config_is_one_alertmanager_accepts(tmp_path: Path) -> None:
    require_alertmanager()
    amtool = shutil.which("amtool")
    require("amtool", None if amtool else "`amtool` is not on PATH (Debian package prometheus-alertmanager)")
    docs = (Path(__file__).parents[1] / "docs" / "sources.md").read_text()
    block = re.search(r"```yaml\n(# alertmanager\.yml\n.*?)```", docs, re.DOTALL)
    assert block is not None, "docs/sources.md lost its alertmanager.yml example"
    config = tmp_path / "alertmanager.yml"
    config.write_text(block.group(1).replace("    # …\n", ""))
    checked = subprocess.run(
        [amtool, "check-config", str(config)], check=False, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 receivers" in checked.stdout
