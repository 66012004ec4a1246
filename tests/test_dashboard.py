"""The dashboard as a person sees it: headless Chromium against a real `tidegate serve`.

One replica on SQLite serves a demo-like checkout release (replayed latency and
conversion, registered 90 s before the server starts so its charts have a history) and
a few incident-driven rollouts; each test takes its own rollout when it changes one.
Screenshots go to docs/img/ with UPDATE_SCREENSHOTS=1 (the README shows them).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from controller.core.model import RolloutId, State
from controller.service.api import create_app
from controller.service.api.dashboard import STATIC
from controller.service.config import ServiceConfig
from controller.service.supervisor import Service
from controller.service.tokens import Principal, Role, Tokens, hash_token
from controller.store import open_store
from controller.store.sqlite import SqliteStore
from tests.browser import new_driver, require_browser, save_screenshot
from tests.serve_process import TOKENS, Replica, auth
from tests.serve_rollouts import (
    incident,
    register_earlier,
    rollout_text,
    scenario_latency,
    write_pack,
    write_scenario,
)

T = TypeVar("T")
WITHIN = 15.0  # seconds a page has to show what the server already knows (it polls every 2 s)
ENDPOINTS = ("generic", "payments", "search", "banner", "profile")


@dataclass
class Served:
    replica: Replica
    store: str
    ids: dict[str, str]  # rollout name → id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("dashboard")
    rollouts = workdir / "rollouts"
    rollouts.mkdir()
    store = str(workdir / "state.db")
    pack = write_pack(workdir)
    register_earlier(store, write_scenario(workdir, "checkout"), seconds=100)
    for name in ENDPOINTS[1:]:
        (rollouts / f"{name}.yaml").write_text(rollout_text(name, pack, endpoint=name, targets=2))
    hooks = [{"name": name, "vendor": "generic", "secret_env": "GENERIC_SECRET"} for name in ENDPOINTS]
    # chart_ticks: the whole history stays for the length of the module, however slow the machine
    settings = {"chart_ticks": 1000}
    replica = Replica.start(workdir, "dash-1", store=store, rollouts=rollouts, webhooks=hooks, extra=settings)
    try:
        wait(lambda: _started(replica), "every rollout starts")
        ids = {row["name"]: row["id"] for row in replica.get("/api/v1/rollouts").json()}
        yield Served(replica, store, ids)
    finally:
        replica.terminate()


def _started(replica: Replica) -> bool:
    rows = replica.get("/api/v1/rollouts").json()
    return len(rows) == len(ENDPOINTS) and all(row["state"] == "progressing" for row in rows)


@pytest.fixture(scope="module")
def page() -> Iterator[WebDriver]:
    """One headless Chromium for the module; each test signs in afresh."""
    require_browser()
    driver = new_driver(1280, 1000)
    try:
        yield driver
    finally:
        driver.quit()


def wait(condition: Callable[[], T], what: str, within: float = WITHIN) -> T:
    try:
        return WebDriverWait(None, within, poll_frequency=0.05).until(lambda _: condition(), what)
    except Exception as exc:
        raise AssertionError(f"timed out waiting until {what}") from exc


# The page redraws what changed every 2 s, so an element found a moment ago may be gone:
# reads are one script each (a consistent snapshot), clicks retry on a fresh element.


def read(page: WebDriver, script: str) -> Any:
    return page.execute_script(script)


def click(page: WebDriver, selector: str) -> None:
    def clicked() -> bool:
        try:
            page.find_element(By.CSS_SELECTOR, selector).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait(clicked, f"{selector} is clicked")


def sign_in(page: WebDriver, served: Served, role: str, path: str = "/") -> None:
    """Open `path` with no token kept, paste `role`'s token into the form, wait for the page."""
    page.get(served.replica.url + path)
    page.execute_script("sessionStorage.clear()")
    page.get(served.replica.url + path)
    wait(lambda: page.find_element(By.ID, "token-input").is_displayed(), "the page asks for a token")
    page.find_element(By.ID, "token-input").send_keys(TOKENS[role])
    page.find_element(By.ID, "token-submit").click()
    wait(lambda: role in page.find_element(By.ID, "whoami").text, f"signed in as {role}")


def shown_state(page: WebDriver) -> str | None:
    script = "const b = document.querySelector('#summary-section [data-state]'); return b && b.dataset.state;"
    return cast(str | None, read(page, script))


def act_buttons(page: WebDriver) -> dict[str, bool]:
    """Each act button shown, and whether it is enabled."""
    script = """return Object.fromEntries([...document.querySelectorAll('button[data-act]')]
        .map(b => [b.dataset.act, !b.disabled]))"""
    return cast(dict[str, bool], read(page, script))


def rows_of(page: WebDriver, table: str) -> list[dict[str, Any]]:
    """A table's body rows: their data-* attributes and their text."""
    script = f"""return [...document.querySelectorAll('#{table} tbody tr')]
        .map(r => Object.assign({{text: r.innerText}}, r.dataset))"""
    return cast(list[dict[str, Any]], read(page, script))


def chart_parts(page: WebDriver, policy: str) -> dict[str, list[str]]:
    """The SVG elements of one rule's chart by class (spans by kind)."""
    script = f"""const svg = document.querySelector('.chart[data-policy="{policy}"] svg');
        if (!svg) return null;
        const parts = {{}};
        for (const e of svg.querySelectorAll('[class]')) {{
            const name = e.getAttribute('class').split(' ')[0];
            (parts[name] = parts[name] || []).push(e.dataset.kind || '');
        }}
        return parts;"""
    return cast(dict[str, list[str]], read(page, script))


def test_the_dashboard_lists_the_served_rollouts(page: WebDriver, served: Served, tmp_path: Path) -> None:
    api = served.replica
    paused = api.post(f"/api/v1/rollouts/{served.ids['profile']}/pause", {"reason": "waiting for QA"})
    assert paused.status_code == 200, paused.text
    rolled_back = api.post(f"/api/v1/rollouts/{served.ids['banner']}/rollback", {"reason": "banner cut off"})
    assert rolled_back.status_code == 200, rolled_back.text
    sign_in(page, served, "viewer")

    def listed() -> dict[str, dict[str, Any]]:
        return {row["rollout"]: row for row in rows_of(page, "rollouts")}

    wait(lambda: set(listed()) == set(served.ids.values()), "every rollout is listed")
    checkout = listed()[served.ids["checkout"]]
    assert checkout["state"] == "progressing"
    assert "checkout" in checkout["text"] and "10%" in checkout["text"] and "step 1" in checkout["text"]
    wait(lambda: "paused" in listed()[served.ids["profile"]]["text"], "the paused rollout shows paused")
    wait(lambda: "rolled back" in listed()[served.ids["banner"]]["text"], "the rolled back one shows it")
    # the demo release's rules breach by now (conversion since ~45 s, latency since ~95 s)
    wait(lambda: "breach: " in listed()[served.ids["checkout"]]["text"], "checkout's health shows the breach")
    assert "conversion-drift" in listed()[served.ids["checkout"]]["text"]
    assert save_screenshot(page, "dashboard.png", tmp_path).stat().st_size > 10_000


def test_the_rollout_page_draws_live_signal_charts(page: WebDriver, served: Served, tmp_path: Path) -> None:
    sign_in(page, served, "viewer", f"/rollouts/{served.ids['checkout']}")

    latency = wait(lambda: chart_parts(page, "latency-p95"), "the latency chart")
    assert {"tg-line", "tg-threshold"} <= set(latency)
    # pending ~29–39 s, breach to ~64 s, pending again from ~85 s, breach from ~95 s
    assert set(latency["tg-span"]) == {"pending", "breach"}
    drift = wait(lambda: chart_parts(page, "conversion-drift"), "the drift chart")
    assert "tg-baseline" in drift  # the minute before the start
    rules = {row["policy"]: row["status"] for row in rows_of(page, "rules")}
    assert rules["conversion-drift"] == "breach" and rules["high-severity-incidents"] == "ok"
    targets = {row["target"]: row["text"] for row in rows_of(page, "targets")}
    assert set(targets) == {"checkout-flag", "web"}
    assert all("10%" in text and "applied" in text for text in targets.values())
    assert any(row["kind"] == "created" for row in rows_of(page, "audit"))
    assert save_screenshot(page, "dashboard-rollout.png", tmp_path).stat().st_size > 10_000


def test_a_viewer_sees_no_buttons(page: WebDriver, served: Served) -> None:
    sign_in(page, served, "viewer", f"/rollouts/{served.ids['checkout']}")
    wait(lambda: shown_state(page) == "progressing", "the rollout page shows its state")
    assert act_buttons(page) == {}
    assert "Read only" in page.find_element(By.ID, "summary-section").text


def test_an_operator_rolls_back_through_the_button_with_a_reason(page: WebDriver, served: Served) -> None:
    rollout_id = served.ids["search"]
    sign_in(page, served, "operator", f"/rollouts/{rollout_id}")
    buttons = wait(lambda: act_buttons(page), "the operator's buttons")
    assert buttons == {"rollback": True, "pause": True, "resume": False, "promote": True}

    click(page, 'button[data-act="rollback"]')
    assert not page.find_element(By.ID, "act-continue").is_enabled()  # no reason, no act
    page.find_element(By.ID, "act-reason").send_keys("checkout errors reported by support")
    page.find_element(By.ID, "act-continue").click()
    summary = page.find_element(By.ID, "act-summary").text
    assert "roll back search" in summary and "checkout errors reported by support" in summary
    assert _state_in_store(served, rollout_id) is State.PROGRESSING  # nothing until confirmed
    page.find_element(By.ID, "act-confirm").click()

    wait(lambda: shown_state(page) == "rolled_back", "the page shows the rollback")
    assert "done by operator-person" in page.find_element(By.ID, "act-result").text
    assert _state_in_store(served, rollout_id) is State.ROLLED_BACK
    manual = [e for e in _audit_in_store(served, rollout_id) if e["kind"] == "manual"]
    assert [(e["actor"], e["reason"]) for e in manual] == [
        ("operator-person", "checkout errors reported by support")
    ]
    shown = wait(
        lambda: [r for r in rows_of(page, "audit") if r["kind"] == "manual"], "the audit trail shows it"
    )
    assert shown[0]["actor"] == "operator-person"
    assert "checkout errors reported by support" in shown[0]["text"]
    wait(lambda: not any(act_buttons(page).values()), "no act is offered once rolled back")


def test_the_page_follows_a_webhook_rollback_without_a_reload(page: WebDriver, served: Served) -> None:
    rollout_id = served.ids["payments"]
    sign_in(page, served, "viewer", f"/rollouts/{rollout_id}")
    wait(lambda: shown_state(page) == "progressing", "the rollout page shows progressing")
    page.execute_script("window.stillTheSamePage = true")
    for n in range(3):
        assert incident(served.replica.url, f"payments-{n}", endpoint="payments").status_code == 202

    wait(lambda: shown_state(page) == "rolled_back", "the page shows the rollback the incidents caused")
    assert page.execute_script("return window.stillTheSamePage === true")  # updated in place
    audit = rows_of(page, "audit")
    assert {"decision", "transition", "action"} <= {row["kind"] for row in audit}
    assert all(row["actor"] == "tidegate" for row in audit if row["kind"] == "transition")
    breach = wait(
        lambda: "breach" in (chart_parts(page, "high-severity-incidents") or {}).get("tg-span", []),
        "the chart shades the breach",
    )
    assert breach
    assert _state_in_store(served, rollout_id) is State.ROLLED_BACK


def _state_in_store(served: Served, rollout_id: str) -> State:
    store = open_store(served.store)
    try:
        record = store.get_rollout(RolloutId(rollout_id))
    finally:
        store.close()
    assert record is not None
    return record.status.state


def _audit_in_store(served: Served, rollout_id: str) -> list[dict[str, Any]]:
    store = open_store(served.store)
    try:
        entries = store.audit_log(RolloutId(rollout_id))
    finally:
        store.close()
    return [{"kind": e.kind, "actor": e.actor, **json.loads(e.payload_json)} for e in entries]


# --- what the page reads: whoami, signals, and the page's own files ----------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_whoami_names_the_token_and_its_role(served: Served, role: str) -> None:
    assert served.replica.get("/api/v1/whoami", role=role).json() == {"name": f"{role}-person", "role": role}
    assert httpx.get(f"{served.replica.url}/api/v1/whoami").status_code == 401


def test_signals_give_each_rules_recent_readings_from_the_holder(served: Served) -> None:
    answer = served.replica.get(f"/api/v1/rollouts/{served.ids['checkout']}/signals").json()
    assert answer["available"] is True and answer["holder"] == "dash-1"
    start = answer["start"]
    rules = {rule["policy"]: rule for rule in answer["rules"]}
    assert list(rules) == ["high-severity-incidents", "latency-p95", "conversion-drift"]

    latency = rules["latency-p95"]
    assert (latency["threshold"], latency["threshold_label"], latency["baseline"]) == (0.8, "> 0.8", None)
    assert len(latency["series"]) >= 100  # registered 100 s before the server started
    for point in latency["series"]:
        k = round(point["t"] - start)  # the newest sample at a tick: its own second, or the one before
        assert any(math.isclose(point["v"], scenario_latency(s), abs_tol=1e-4) for s in (k, k - 1))
    first_pending = next(k for k in range(200) if scenario_latency(k) > 0.8)
    pending, breach = latency["spans"][0], latency["spans"][1]
    assert pending["kind"] == "pending" and abs(pending["from"] - start - first_pending) <= 1
    assert breach["kind"] == "breach" and math.isclose(breach["from"] - pending["from"], 10, abs_tol=1e-6)

    drift = rules["conversion-drift"]
    assert drift["baseline"] == {"from": start - 60, "to": start}
    assert drift["threshold"] == 0.05 and drift["status"] == "breach"
    assert math.isclose(drift["series"][-1]["v"], 0.2, abs_tol=0.02)  # 25% → 20%: a 20% drop
    assert {point["v"] for point in rules["high-severity-incidents"]["series"]} == {0.0}

    few = served.replica.get(f"/api/v1/rollouts/{served.ids['checkout']}/signals?points=5").json()
    assert all(len(rule["series"]) == 5 for rule in few["rules"])


def test_another_replica_answers_signals_with_the_holder(tmp_path: Path) -> None:
    """Replica A's API, in process, for a rollout whose lease replica B holds."""
    store = SqliteStore(tmp_path / "state.db")
    try:
        rollout_id = register_earlier(str(tmp_path / "state.db"), write_scenario(tmp_path, "checkout"), 0)
        store.claim_leases("replica-b", time.time(), 60.0)
        tokens = Tokens({hash_token(TOKENS["viewer"]): Principal("viewer-person", Role.VIEWER)})
        app = create_app(Service(ServiceConfig(replica="replica-a"), store, env={}), tokens)

        async def ask(path: str) -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://replica-a") as client:
                return await client.get(path, headers=auth("viewer"))

        answer = asyncio.run(ask(f"/api/v1/rollouts/{rollout_id}/signals"))
        unknown = asyncio.run(ask("/api/v1/rollouts/nope/signals"))
    finally:
        store.close()
    assert answer.status_code == 200
    assert answer.json() == {
        "available": False,
        "holder": "replica-b",
        "replica": "replica-a",
        "reason": "another replica holds this rollout",
    }
    assert unknown.status_code == 404


def test_the_page_and_everything_it_loads_come_from_this_server(served: Served) -> None:
    url = served.replica.url
    for path in ("/", f"/rollouts/{served.ids['checkout']}"):
        page = httpx.get(url + path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
    shipped = sorted(STATIC.iterdir())
    assert {p.name for p in shipped} >= {"dashboard.html", "dashboard.js", "dashboard.css", "charts.js"}
    for path in shipped:
        served_file = httpx.get(f"{url}/static/{path.name}")
        assert served_file.status_code == 200 and served_file.text == path.read_text()
        # no CDN, no font service, no analytics: the one URL is SVG's namespace name
        external = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", served_file.text))
        assert external <= {"http://www.w3.org/2000/svg"}, path.name
