"""`tidegate report`, the demo's report and `backtest --report`, through the real CLI.

The demo's story is known (tests/test_demo.py): latency-p95 fires at 15:04:50 and steps
down, error-rate fires at 15:28:20 and everything is rolled back; the App Store release is
paused and a human paged. The report must tell that story from the store and the re-read data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import STORE_ENV, StoreDatabase

TIDEGATE = Path(sys.executable).with_name("tidegate")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "demo"
DATA_JSON = re.compile(r'<script type="application/json" id="tidegate-report-data">(.*?)</script>', re.DOTALL)


def tidegate(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in STORE_ENV and k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run(
        [str(TIDEGATE), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def page_data(html: str) -> dict[str, object]:
    match = DATA_JSON.search(html)
    assert match, "the page carries its chart data"
    data: dict[str, object] = json.loads(match.group(1))
    return data


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(folder, rollout id, demo stdout) of one demo run."""
    cwd = tmp_path_factory.mktemp("demo")
    done = tidegate(cwd, "demo")
    assert done.returncode == 0, done.stderr
    (rollout,) = re.findall(r"^final state of (\S+):", done.stdout, re.MULTILINE)
    return cwd, rollout, done.stdout


def test_the_demo_writes_its_report_as_one_self_contained_page_and_prints_its_path(
    demo: tuple[Path, str, str],
) -> None:
    cwd, rollout, stdout = demo
    assert f"report: .tidegate/reports/{rollout}.html" in stdout
    html = (cwd / ".tidegate" / "reports" / f"{rollout}.html").read_text()

    assert "default-src 'none'" in html  # the page may fetch nothing, from anywhere
    assert not re.search(r"<(link|img|iframe)\b", html)
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "TidegateCharts.lineChart" in html and "function lineChart" in html  # the library, inlined
    data = page_data(html)
    charts, lanes = data["charts"], data["lanes"]
    assert isinstance(charts, list) and len(charts) == 13  # every rule of library:runbook
    assert isinstance(lanes, dict) and [lane["name"] for lane in lanes["lanes"]] == [
        "checkout-flag",
        "backend",
        "web",
        "voucher-preview",
        "ios-app",
    ]
    latency = next(c for c in charts if c["title"] == "latency_p95 · latency-p95")
    assert latency["threshold"] == 20 and {s["kind"] for s in latency["spans"]} == {"pending", "breach"}
    # the numbers are in plain tables too, readable without script
    row = '<td class="tg-time">2026-09-21 15:04:50 UTC</td><td class="tg-num">26.69</td><td>breach</td>'
    assert row in html and "intact (28 rows)" in html


def test_the_json_report_rebuilds_what_the_rollout_saw_on_either_store(
    store_db: StoreDatabase, tmp_path: Path
) -> None:
    env = store_db.env()
    assert tidegate(tmp_path, "demo", env=env).returncode == 0
    done = tidegate(tmp_path, "report", "checkout-demo", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    assert report["charts_available"] and report["subject"]["state"] == "rolled_back"
    firings = [(f["policy"], f["at"], round(f["value"], 4)) for f in report["firings"]]  # while it ran
    assert firings == [
        ("latency-p95", "2026-09-21T15:04:50Z", 26.6889),
        ("error-rate", "2026-09-21T15:28:20Z", 0.1709),
    ]
    assert [(d["at"], d["decision"], d["reasons"]) for d in report["decisions"]] == [
        ("2026-09-21T14:13:20Z", "advance", []),
        ("2026-09-21T15:04:50Z", "step_down", ["latency-p95: 26.69 (latency_p95 > 20 for 10m)"]),
        ("2026-09-21T15:28:20Z", "rollback", ["error-rate: 17.09% (error_rate > 0.05 for 5m)"]),
    ]
    assert "re-evaluating the data gives the very decisions the rollout recorded" in report["notes"]
    ios = next(t for t in report["targets"] if t["name"] == "ios-app")
    assert [(a["told"], a["outcome"]) for a in ios["actions"]] == [
        ("pause", "applied"),
        ("pause", "already_done"),
    ]
    assert [s["label"] for s in ios["segments"]] == ["as deployed", "paused"]
    flag = next(t for t in report["targets"] if t["name"] == "checkout-flag")
    assert [s["label"] for s in flag["segments"]] == ["10%", "50%", "100%", "50%", "off"]
    assert [p["target"] for p in report["pages"]] == ["ios-app"]
    assert report["audit"]["ok"] and report["audit"]["rows"] == report["audit"]["rollout_rows"] == 28
    assert report["end"] == "2026-09-21T15:28:20Z"  # the last transition; charts run 10 m past it
    assert report["shown_until"] == "2026-09-21T15:38:20Z"


def test_the_markdown_report_is_the_utc_after_action_timeline(demo: tuple[Path, str, str]) -> None:
    cwd, rollout, _ = demo
    done = tidegate(cwd, "report", rollout, "--format", "md")
    assert done.returncode == 0, done.stderr
    text = done.stdout

    assert text.startswith(f"# After-action timeline: {rollout}\n")
    assert "- Outcome: **rolled_back at 0%** — every target rolled back" in text
    assert "All times on 2026-09-21, UTC." in text
    timeline = text[text.index("## Timeline (UTC)") : text.index("## What fired")]
    rows = [line for line in timeline.splitlines() if line.startswith("| 1")]
    assert rows[0] == "| 14:13:20 | decision **advance** |"
    fired = rows.index(
        "| 15:04:50 | **latency-p95 fired**: 26.69 — 26.6889 (rule: latency_p95 > 20 for 10m; "
        "pending since 14:54:50) |"
    )
    assert rows[fired + 1].startswith("| 15:04:50 | decision **step_down** — latency-p95: 26.69")
    assert rows[fired + 2] == (
        "| 15:04:50 | progressing → stepping_down at 50% (step_down) — step_down: latency-p95 |"
    )
    rollback = rows.index(
        "| 15:28:20 | stepping_down → rolling_back at 0% (rollback) — rollback: error-rate |"
    )
    assert rows[rollback + 1].startswith("| 15:28:20 | **PAGE** a human: ios-app: app-store cannot roll back")
    assert "| 15:28:20 | ios-app told pause → already_done (already pause) |" in rows
    assert rows[-1] == "| 15:28:20 | rolling_back → rolled_back at 0% (complete) — every target rolled back |"
    assert "### ios-app (app-store)" in text and "Nothing was done by hand." in text
    assert "- Root cause:" in text  # left for people


def test_a_manual_act_is_reported_with_its_actor_and_reason(tmp_path: Path) -> None:
    for name in ("rollout.yaml", "data.csv", "events.jsonl"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    gate = tidegate(tmp_path, "gate", "rollout.yaml", "--for", "20m")
    assert gate.returncode == 0, gate.stderr
    reason = "waiting for the payments team | on call"
    paused = tidegate(tmp_path, "pause", "checkout-web", "--reason", reason, "--actor", "alice")
    assert paused.returncode == 0, paused.stderr

    report = json.loads(tidegate(tmp_path, "report", "checkout-web", "--format", "json").stdout)
    (act,) = report["manual"]
    assert (act["actor"], act["act"], act["reason"]) == ("alice", "pause", reason)
    assert act["result"] == "progressing → paused at 100%"
    assert report["markers"][-1]["kind"] == "manual" and report["markers"][-1]["label"] == "pause by alice"
    text = tidegate(tmp_path, "report", "checkout-web", "--format", "md").stdout
    by_hand = "**by hand, alice**: pause, progressing → paused at 100%"
    assert f"{by_hand} — “waiting for the payments team \\| on call”" in text
    assert "| alice | pause | waiting for the payments team \\| on call |" in text
    html = tidegate(tmp_path, "report", "checkout-web", "-o", "-").stdout
    assert "<td>alice</td><td>pause</td><td>waiting for the payments team | on call</td>" in html


def test_without_its_data_the_report_keeps_the_records_and_says_why_there_are_no_charts(
    tmp_path: Path,
) -> None:
    assert tidegate(tmp_path, "demo").returncode == 0
    (tmp_path / ".tidegate" / "demo" / "data.csv").unlink()

    text = tidegate(tmp_path, "report", "checkout-demo", "--format", "md")
    assert text.returncode == 0, text.stderr
    assert "- Signal values: unavailable — the replay files cannot be read again: " in text.stdout
    assert "data.csv: no such file" in text.stdout
    assert "stepping_down → rolling_back at 0% (rollback) — rollback: error-rate" in text.stdout
    assert "decision **rollback** — error-rate" in text.stdout  # the recorded causes, without values
    written = tidegate(tmp_path, "report", "checkout-demo", "-o", "page.html")
    assert written.returncode == 0 and written.stdout.strip() == "page.html"
    html = (tmp_path / "page.html").read_text()
    assert "Charts unavailable: the replay files cannot be read again" in html
    assert 'data-chart="' not in html and "set_traffic(50%)" in html


def test_an_unknown_rollout_is_a_usage_error(tmp_path: Path) -> None:
    done = tidegate(tmp_path, "report", "nope")
    assert done.returncode == 2
    assert "no rollout 'nope' in the store" in done.stderr
    bad = tidegate(tmp_path, "report", "nope", "--format", "pdf")
    assert bad.returncode == 2 and "expected one of html, md, json" in bad.stderr


def test_backtest_report_draws_the_backtest_and_leaves_its_json_alone(tmp_path: Path) -> None:
    args = [
        "backtest",
        "--policy",
        "library:runbook",
        "--data",
        str(EXAMPLES / "data.csv"),
        "--events",
        str(EXAMPLES / "events.jsonl"),
        "--start",
        "2026-09-21T14:13:20Z",
        "--json",
    ]
    plain = tidegate(tmp_path, *args)
    drawn = tidegate(tmp_path, *args, "--report", "bt.html")
    timeline = tidegate(tmp_path, *args, "--report", "bt.md")

    assert drawn.returncode == plain.returncode == 1
    assert json.loads(drawn.stdout) == json.loads(plain.stdout)
    assert "report: bt.html" in drawn.stderr
    data = page_data((tmp_path / "bt.html").read_text())
    assert isinstance(data["charts"], list) and len(data["charts"]) == 13 and data["lanes"] is None
    markers = data["charts"][0]["markers"]
    assert [m["label"] for m in markers] == ["advance", "step down (latency-p95)", "rollback (error-rate)"]
    text = (tmp_path / "bt.md").read_text()
    assert text.startswith("# Backtest timeline: backtest of library:runbook")
    assert timeline.returncode == 1


def test_the_wheel_ships_the_chart_library_and_styles(tmp_path: Path) -> None:
    """An installed tidegate (not this editable checkout) can still write its page. The wheel
    is built from a copy, so that setuptools' build/ folder lands outside the checkout."""
    root, source = Path(__file__).resolve().parent.parent, tmp_path / "source"
    for name in ("controller", "policies", "adapters"):
        shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("tidegate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("charts.js", "report.js", "report.css"):
        assert f"controller/web/static/{name}" in names
