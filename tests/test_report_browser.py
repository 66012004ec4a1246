"""The report as a person sees it: headless Chromium, opened from a file with no network.

The page is the demo's report (`tidegate demo` writes it). Chromium runs offline (DevTools
network emulation plus a dead proxy), and the DevTools log must show that no request left
the machine and that no script error happened; the charts must be there as drawn SVG.

Screenshots go to a temporary folder, or to $TIDEGATE_SCREENSHOTS (`make screenshots` sets
docs/img, for the README).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.report.html import static
from tests.browser import (
    chromium,
    console_errors,
    external_requests,
    phone,
    require_browser,
    screenshot,
)
from tests.conftest import STORE_ENV

TIDEGATE = Path(sys.executable).with_name("tidegate")
DESKTOP, PHONE = (1280, 900), (390, 844)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k not in STORE_ENV}
    done = subprocess.run(
        [str(TIDEGATE), "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    (path,) = re.findall(r"^report: (\S+)$", done.stdout, re.MULTILINE)
    return (cwd / path).resolve()


@pytest.fixture(scope="module")
def chromium_offline() -> Iterator[Any]:
    """One browser for the module: starting Chromium costs more than any test here."""
    require_browser()
    with chromium(width=DESKTOP[0], height=DESKTOP[1], offline=True) as driver:
        yield driver


@pytest.fixture
def browser(chromium_offline: Any) -> Iterator[Any]:
    """The shared browser with its logs read out (its own start page asked for chrome:// files)."""
    external_requests(chromium_offline)
    console_errors(chromium_offline)
    yield chromium_offline
    chromium_offline.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    chromium_offline.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def shots() -> Path | None:
    folder = os.environ.get("TIDEGATE_SCREENSHOTS")
    return Path(folder) if folder else None


def count(driver: Any, selector: str) -> int:
    return int(driver.execute_script(f"return document.querySelectorAll({selector!r}).length"))


def test_the_report_opens_offline_and_draws_every_chart(browser: Any, page: Path) -> None:
    browser.get(page.as_uri())

    assert browser.execute_script("return navigator.onLine") is False  # the network really was off
    assert browser.title.startswith("tidegate report — checkout-demo-")
    boxes = count(browser, "[data-chart]")
    assert boxes == 13  # one per rule of library:runbook
    assert count(browser, "[data-chart] svg.tg-chart") == boxes
    lines = browser.execute_script(
        "return [...document.querySelectorAll('[data-chart] path.tg-line')].map(p => p.getAttribute('d'))"
    )
    assert len(lines) == boxes and all(d.count("L") > 100 for d in lines)  # ~170 ticks drawn each
    assert count(browser, "[data-chart] line.tg-threshold") == boxes
    for rule in ("latency-p95", "error-rate"):
        assert count(browser, f"#rule-{rule} rect.tg-span-breach") == 1
        assert count(browser, f"#rule-{rule} rect.tg-span-pending") == 1
    assert count(browser, "#rule-kpi-drift rect.tg-baseline") == 1
    assert count(browser, "#rule-latency-p95 g.tg-marker-step_down") == 1
    assert count(browser, "svg.tg-lanes g.tg-lane") == 5
    assert count(browser, "svg.tg-lanes circle.tg-event-page") == 1
    assert console_errors(browser) == []
    assert external_requests(browser) == []


def test_the_breach_is_drawn_where_the_threshold_is_crossed(browser: Any, page: Path) -> None:
    """Geometry, not just presence: in the latency chart the breach begins 10 minutes after
    the pending streak (for: 10m) and the line is above the threshold inside it."""
    browser.get(page.as_uri())
    geometry = browser.execute_script(
        """
        const svg = document.querySelector('#rule-latency-p95 svg');
        const rect = s => svg.querySelector(s).getBBox();
        const threshold = svg.querySelector('.tg-threshold').getBBox().y;
        const path = svg.querySelector('path.tg-line');
        const breach = rect('.tg-span-breach');
        const mid = breach.x + breach.width / 2;
        let y = null;  // the line's height in the middle of the breach
        for (let i = 0; i <= path.getTotalLength(); i += 1) {
          const p = path.getPointAtLength(i);
          if (p.x >= mid) { y = p.y; break; }
        }
        return {pending: rect('.tg-span-pending'), breach: breach, threshold: threshold, line: y};
        """
    )
    pending, breach = geometry["pending"], geometry["breach"]
    assert abs(pending["x"] + pending["width"] - breach["x"]) < 0.5  # breach starts where pending ends
    assert geometry["line"] < geometry["threshold"]  # SVG y grows downwards: above the line


def test_hovering_a_chart_shows_the_time_and_value(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    chart = browser.find_element(By.CSS_SELECTOR, "#rule-latency-p95 svg.tg-chart")
    ActionChains(browser).move_to_element(chart).perform()
    text = browser.execute_script(
        "return document.querySelector('#rule-latency-p95 .tg-hover text').textContent"
    )
    assert re.fullmatch(r"\d\d:\d\d:\d\d UTC  \d+(\.\d+)?", text), text
    assert console_errors(browser) == []


def test_on_a_phone_the_page_fits_the_screen_and_prints_without_navigation(
    browser: Any, page: Path, tmp_path: Path
) -> None:
    browser.get(page.as_uri())
    screenshot(browser, (shots() or tmp_path) / "report.png", DESKTOP[0], 2000)
    phone(browser, *PHONE)
    browser.get(page.as_uri())

    overflow = browser.execute_script("return document.documentElement.scrollWidth")
    assert overflow <= PHONE[0]  # no sideways scrolling: tables scroll inside their own box
    widths = browser.execute_script(
        "return [...document.querySelectorAll('svg.tg-chart')].map(s => s.getBoundingClientRect().width)"
    )
    assert widths and max(widths) <= PHONE[0] - 20
    screenshot(browser, (shots() or tmp_path) / "report-phone.png", PHONE[0], 1700)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    hidden = browser.execute_script("return getComputedStyle(document.querySelector('nav.tg-toc')).display")
    assert hidden == "none"
    assert console_errors(browser) == []
    for name in ("report.png", "report-phone.png"):
        assert (shots() or tmp_path).joinpath(name).stat().st_size > 20_000


# --- the chart library itself (the dashboard draws with it too) -----------------------------


@pytest.fixture
def sandbox(browser: Any, tmp_path: Path) -> Any:
    """A blank page with charts.js and one 600 px wide container."""
    html = (
        '<!doctype html><meta charset="utf-8"><div id="box" style="width:600px"></div>'
        f"<script>{static('charts.js')}</script>"
    )
    (tmp_path / "charts.html").write_text(html)
    browser.get((tmp_path / "charts.html").as_uri())
    return browser


def draw(driver: Any, options: dict[str, Any]) -> Any:
    return driver.execute_script(
        """
        const box = document.getElementById('box');
        window.chart = TidegateCharts.lineChart(box, arguments[0]);
        const svg = box.querySelector('svg');
        return {
          svgs: box.querySelectorAll('svg').length,
          width: Number(svg.getAttribute('width')),
          path: (svg.querySelector('path.tg-line') || {getAttribute: () => ''}).getAttribute('d'),
          spans: [...svg.querySelectorAll('.tg-span')].map(r => r.getAttribute('class')),
          baseline: svg.querySelectorAll('.tg-baseline').length,
          markers: [...svg.querySelectorAll('.tg-marker')].map(g => g.getAttribute('class')),
          threshold: svg.querySelectorAll('.tg-threshold').length,
          texts: [...svg.querySelectorAll('text')].map(t => t.textContent),
          ended: svg.querySelectorAll('.tg-ended').length,
        };
        """,
        options,
    )


def test_line_chart_draws_gaps_spans_baseline_markers_and_threshold(sandbox: Any) -> None:
    series = [{"t": 1000 + 30 * i, "v": None if 10 <= i < 15 else float(i)} for i in range(40)]
    drawn = draw(
        sandbox,
        {
            "series": series,
            "threshold": 25,
            "thresholdLabel": "> 25",
            "spans": [
                {"from": 1750, "to": 1810, "kind": "pending"},
                {"from": 1810, "to": 2170, "kind": "breach"},
            ],
            "baseline": {"from": 1000, "to": 1300},
            "markers": [{"t": 1810, "label": "rollback", "kind": "rollback"}],
            "unit": "s",
            "title": "latency",
            "ended": 2100,
        },
    )
    assert drawn["svgs"] == 1 and drawn["width"] == 600
    assert drawn["path"].count("M") == 2  # the null stretch breaks the line: never drawn as zero
    assert drawn["spans"] == ["tg-span tg-span-pending", "tg-span tg-span-breach"]
    assert drawn["baseline"] == 1 and drawn["threshold"] == 1 and drawn["ended"] == 1
    assert drawn["markers"] == ["tg-marker tg-marker-rollback"]
    assert "> 25" in drawn["texts"] and "rollback" in drawn["texts"] and "latency" in drawn["texts"]
    assert "30 s" in drawn["texts"]  # y axis labels carry the unit


def test_line_chart_replaces_itself_and_says_when_there_is_no_data(sandbox: Any) -> None:
    draw(
        sandbox,
        {"series": [{"t": 0, "v": 1}, {"t": 60, "v": 2}], "threshold": None, "spans": [], "markers": []},
    )
    again = draw(sandbox, {"series": [{"t": 0, "v": None}], "threshold": None, "spans": [], "markers": []})
    assert again["svgs"] == 1 and again["path"] == "" and "no data" in again["texts"]
    updated = sandbox.execute_script(
        "window.chart.update({series: [{t: 0, v: 5}, {t: 60, v: 6}]});"
        "return document.querySelectorAll('#box svg path.tg-line').length"
    )
    assert updated == 1
    assert console_errors(sandbox) == []
