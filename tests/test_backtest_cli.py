"""`tidegate backtest` end to end, against the DESIGN.md backtest contract (a public interface).

Small hand-written data files; every expected firing and decision below is worked out by
hand from the rule semantics, tick by tick, in the comments next to it.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.cli.main import run
from policies.loader import load_pack

TIDEGATE = str(Path(sys.executable).with_name("tidegate"))
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        assert self.out.count("\n") == 1 and self.out.endswith("}\n"), self.out
        return json.loads(self.out)


def tidegate(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """The console entry point in-process, exactly as the installed script runs it."""
    monkeypatch.setattr(sys, "argv", ["tidegate", *args])
    with pytest.raises(SystemExit) as exit_:
        run()
    captured = capsys.readouterr()
    code = exit_.value.code
    return Result(code if isinstance(code, int) else 0, captured.out, captured.err)


def at(seconds: float) -> str:
    """T0 + seconds in the contract's spelling (RFC 3339, UTC, trailing Z)."""
    return datetime.fromtimestamp(T0 + seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def csv_rows(rows: list[tuple[float, str, float]], seed: int = 7) -> str:
    """Rows shuffled (any order is allowed) and spelled both ways (RFC 3339 and unix seconds)."""
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    lines = [
        f"{at(t) if i % 2 else f'{T0 + t:.0f}'},{signal},{value:g}"
        for i, (t, signal, value) in enumerate(shuffled)
    ]
    return "timestamp,signal,value\n" + "\n".join(lines) + "\n"


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


PACK = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: bt}
interval: 1m
policies:
  - id: latency
    signal: latency_p95
    when: "> 20"
    for: 2m
    action: step_down
  - id: errors
    signal: error_rate
    when: "> 0.05"
    window: 1m
    min_samples: 10
    action: rollback
  - id: incidents
    signal: incidents
    match: {severity: high}
    count: ">= 2"
    within: 10m
    action: rollback
  - id: db
    signal: db_utilization
    when: "> 0.8"
    on_no_data: ok
    action: notify
  - id: lcp
    signal: lcp_p75
    when: "> 3"
    on_no_data: ok
    action: notify
"""

LATENCY = [5, 5, 25, 25, 25, 25, 5, 5, 5, 5, 5]  # one sample per minute, k = 0..10
ERRORS = [1, 1, 1, 1, 1, 1, 1, 10, 1, 1, 1]  # errors per 100 requests, per minute
EVENTS: list[dict[str, Any]] = [
    {"timestamp": at(290), "signal": "incidents", "severity": "high", "id": "INC-A"},
    {"timestamp": T0 + 290, "signal": "incidents", "severity": "high", "id": "INC-A"},  # delivered twice
    {"timestamp": at(295), "signal": "incidents", "severity": "low", "id": "INC-L"},
    {"timestamp": at(530), "signal": "incidents", "severity": "high", "id": "INC-C"},
]

# Ticks every minute from T0 (the first timestamp) to T0+10m (the last):
#   k=1  db 0.9 (sample at 1m, fresh for 5m)              → notify (db)
#   k=2,3 latency 25 pending since 2m                      (no change)
#   k=4  latency: 4m − 2m ≥ for 2m → breach                → step_down (latency)
#   k=5  INC-A counted once (the duplicate is dropped): 1  (no change; twice would breach)
#   k=6  latency 5, db stale (1m ∉ (1m, 6m]) and on_no_data ok → advance
#   k=7  10/100 errors > 5%, for 0                         → rollback (errors)
#   k=8  1/100                                              → advance
#   k=9  INC-A (4m50s) and INC-C (8m50s) within 10m: 2     → rollback (incidents)
EXPECTED = {
    "firings": [
        {"policy": "db", "at": at(60), "value": 0.9},
        {"policy": "latency", "at": at(240), "value": 25.0},
        {"policy": "errors", "at": at(420), "value": 0.1},
        {"policy": "incidents", "at": at(540), "value": 2.0},
    ],
    "decisions": [
        {"at": at(0), "decision": "advance", "policies": []},
        {"at": at(60), "decision": "notify", "policies": ["db"]},
        {"at": at(240), "decision": "step_down", "policies": ["latency"]},
        {"at": at(360), "decision": "advance", "policies": []},
        {"at": at(420), "decision": "rollback", "policies": ["errors"]},
        {"at": at(480), "decision": "advance", "policies": []},
        {"at": at(540), "decision": "rollback", "policies": ["incidents"]},
    ],
}
LCP_WARNING = "warning: policy 'lcp': signal 'lcp_p75' does not appear in the data; skipped\n"


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rows: list[tuple[float, str, float]] = []
    for k in range(11):
        rows += [
            (60 * k, "latency_p95", LATENCY[k]),
            (60 * k, "error_rate:num", ERRORS[k]),
            (60 * k, "error_rate:den", 100),
        ]
    rows += [(60, "db_utilization", 0.9), (420, "db_utilization", 0.5)]
    (tmp_path / "bt.yaml").write_text(PACK)
    (tmp_path / "data.csv").write_text(csv_rows(rows))
    (tmp_path / "events.jsonl").write_text(jsonl(EVENTS))
    return tmp_path


BACKTEST = ["backtest", "--policy", "bt.yaml", "--data", "data.csv", "--events", "events.jsonl"]


def test_json_lists_every_firing_and_every_decision_change_and_exits_1_on_rollback(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tidegate(capsys, monkeypatch, *BACKTEST, "--json")
    assert result.code == 1
    assert result.json == EXPECTED
    assert result.err == LCP_WARNING


def test_json_timestamps_are_utc_with_a_trailing_z_and_firings_are_in_time_order(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tidegate(capsys, monkeypatch, *BACKTEST, "--json").json
    assert set(out) == {"firings", "decisions"}
    stamps = [f["at"] for f in out["firings"]] + [d["at"] for d in out["decisions"]]
    assert all(STAMP.match(s) for s in stamps)
    assert [f["at"] for f in out["firings"]] == sorted(f["at"] for f in out["firings"])
    assert [set(f) for f in out["firings"]] == [{"policy", "at", "value"}] * 4
    assert [set(d) for d in out["decisions"]] == [{"at", "decision", "policies"}] * 7


def test_an_incident_delivered_twice_counts_once(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the id, the two deliveries are two incidents: 2 high within 10m at k=5 already.
    (scenario / "events.jsonl").write_text(jsonl([{k: v for k, v in e.items() if k != "id"} for e in EVENTS]))
    firings = tidegate(capsys, monkeypatch, *BACKTEST, "--json").json["firings"]
    assert {"policy": "incidents", "at": at(300), "value": 2.0} in firings


def test_a_redelivery_with_a_later_timestamp_still_counts_once(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    late_copy = {**EVENTS[0], "timestamp": at(500)}  # webhook retried 3½ minutes later
    (scenario / "events.jsonl").write_text(jsonl([EVENTS[0], EVENTS[2], late_copy]))
    firings = tidegate(capsys, monkeypatch, *BACKTEST, "--json").json["firings"]
    assert [f for f in firings if f["policy"] == "incidents"] == []


def test_without_json_a_readable_timeline_is_printed(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tidegate(capsys, monkeypatch, *BACKTEST)
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0] == (
        f"backtest of bt.yaml: 4 policies bound, 1 unbound; {at(0)} → {at(600)}, every 1m (11 ticks)"
    )
    assert lines[-1] == "summary: worst decision rollback; 4 firing(s); traffic would have been lowered"
    body = lines[1:-1]
    assert [line[:20] for line in body] == sorted(line[:20] for line in body)  # time order
    assert f"{at(240)}  decision STEP_DOWN (latency)" in body
    assert f"{at(540)}  decision ROLLBACK (incidents)" in body
    assert any(line.startswith(f"{at(120)}  pending  latency") for line in body)
    assert any(line.startswith(f"{at(240)}  BREACH   latency") for line in body)
    assert any(line.startswith(f"{at(420)}  BREACH   errors") and "10/100" in line for line in body)
    assert not any(line.lstrip().startswith("{") for line in lines)
    assert result.err == LCP_WARNING


def test_unbound_signals_are_warned_about_and_strict_makes_them_an_error(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_events = tidegate(capsys, monkeypatch, "backtest", "-p", "bt.yaml", "--data", "data.csv", "--json")
    assert no_events.err == (
        LCP_WARNING + "warning: policy 'incidents': signal 'incidents' does not appear in the data; skipped\n"
    )
    assert [f["policy"] for f in no_events.json["firings"]] == ["db", "latency", "errors"]
    strict = tidegate(capsys, monkeypatch, *BACKTEST, "--json", "--strict")
    assert strict == Result(
        2, "", "error: policy 'lcp': signal 'lcp_p75' does not appear in the data (--strict)\n"
    )


def test_an_events_file_without_matching_events_binds_the_count_rule_to_an_empty_stream(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (scenario / "events.jsonl").write_text(jsonl([{"timestamp": T0, "signal": "deploys"}]))
    result = tidegate(capsys, monkeypatch, *BACKTEST, "--json")
    assert result.err == LCP_WARNING  # incidents is bound: a release without incidents has none
    assert "incidents" not in [f["policy"] for f in result.json["firings"]]


# --- ticks: start + k·interval up to the last timestamp -------------------------------------

TOGGLE = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: toggle}
interval: 30s
policies:
  - id: flip
    signal: s
    when: "> 0"
    staleness: 10s
    on_no_data: ok
    action: notify
"""


@pytest.fixture
def toggle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`s` every 10 s for 5 minutes, 0 at even multiples of 10 s and 1 at odd ones.

    The rule reads the newest sample in (t − 10s, t], so with ticks on the 10 s grid every
    tick reads its own sample and the decision flips between advance and notify: the
    decision list is exactly the list of ticks.
    """
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toggle.yaml").write_text(TOGGLE)
    (tmp_path / "s.csv").write_text(csv_rows([(10 * k, "s", k % 2) for k in range(31)]))
    return tmp_path


def decision_times(result: Result) -> list[str]:
    return [d["at"] for d in result.json["decisions"]]


def test_ticks_start_at_the_first_timestamp_every_pack_interval_through_the_last(
    toggle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tidegate(capsys, monkeypatch, "backtest", "-p", "toggle.yaml", "--data", "s.csv", "--json")
    assert result.code == 0  # notify never lowers traffic
    assert decision_times(result) == [at(30 * j) for j in range(11)]  # 0 … 5m inclusive
    assert [d["decision"] for d in result.json["decisions"]] == ["advance", "notify"] * 5 + ["advance"]


def test_interval_option_overrides_the_pack(
    toggle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["backtest", "-p", "toggle.yaml", "--data", "s.csv", "--json", "--interval", "10s"]
    assert decision_times(tidegate(capsys, monkeypatch, *args)) == [at(10 * k) for k in range(31)]


@pytest.mark.parametrize("start", ["2026-03-01T12:00:20Z", "2026-03-01T13:00:20+01:00", f"{T0 + 20:.0f}"])
def test_start_as_rfc3339_or_unix_seconds_shifts_the_tick_grid(
    start: str, toggle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["backtest", "-p", "toggle.yaml", "--data", "s.csv", "--json", "--start", start]
    assert decision_times(tidegate(capsys, monkeypatch, *args)) == [at(20 + 30 * j) for j in range(10)]


def test_a_start_before_the_data_ticks_from_there(
    toggle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["backtest", "-p", "toggle.yaml", "--data", "s.csv", "--json", "--start", at(-60)]
    decisions = tidegate(capsys, monkeypatch, *args).json["decisions"]
    assert decisions[:2] == [
        {"at": at(-60), "decision": "advance", "policies": []},  # no data yet, on_no_data ok
        {"at": at(30), "decision": "notify", "policies": ["flip"]},
    ]


def test_events_after_the_last_sample_extend_the_ticks(
    toggle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (toggle / "e.jsonl").write_text(jsonl([{"timestamp": at(400), "signal": "deploys"}]))
    args = ["backtest", "-p", "toggle.yaml", "--data", "s.csv", "--events", "e.jsonl"]
    assert "(14 ticks)" in tidegate(capsys, monkeypatch, *args).out.splitlines()[0]  # 0 … 6m30s


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--interval", "5", "Invalid value for --interval: expected a duration like 5m, got '5'"),
        ("--interval", "0s", "Invalid value for --interval: must be longer than 0"),
        (
            "--start",
            "yesterday",
            "Invalid value for --start: expected a timestamp (RFC 3339 or unix seconds)",
        ),
        (
            "--start",
            "2026-03-01T12:00:00",
            "Invalid value for --start: timestamp '2026-03-01T12:00:00' has no UTC",
        ),
    ],
)
def test_bad_options_exit_2(
    option: str,
    value: str,
    message: str,
    toggle: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = tidegate(capsys, monkeypatch, "backtest", "-p", "toggle.yaml", "--data", "s.csv", option, value)
    assert (result.code, result.out) == (2, "")
    assert message in result.err and "Traceback" not in result.err


def test_neither_data_nor_events_is_a_usage_error(
    toggle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tidegate(capsys, monkeypatch, "backtest", "-p", "toggle.yaml", "--json")
    assert (result.code, result.out) == (2, "")
    assert "give --data and/or --events" in result.err


def test_a_data_file_with_only_a_header_ticks_nothing(
    toggle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (toggle / "empty.csv").write_text("timestamp,signal,value\n")
    result = tidegate(capsys, monkeypatch, "backtest", "-p", "toggle.yaml", "--data", "empty.csv", "--json")
    assert (result.code, result.json) == (0, {"firings": [], "decisions": []})


# --- exit status ----------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> str:
    (directory / name).write_text(text)
    return name


@pytest.mark.parametrize(
    ("latency", "expected"),
    [
        ([5, 25, 25, 25, 5], 1),  # step_down at the third tick: traffic lowered
        ([5, 25, 25, 5, 5], 0),  # pending only, never for 2m
        ([5, 5, 5, 5, 5], 0),
    ],
)
def test_exit_1_only_when_a_tick_stepped_down_or_rolled_back(
    latency: list[float],
    expected: int,
    scenario: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write(scenario, "lat.csv", csv_rows([(60 * k, "latency_p95", v) for k, v in enumerate(latency)]))
    result = tidegate(capsys, monkeypatch, "backtest", "-p", "bt.yaml", "--data", data, "--json")
    assert result.code == expected
    assert any(d["decision"] == "step_down" for d in result.json["decisions"]) is (expected == 1)


def test_hold_for_missing_data_does_not_lower_traffic(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # latency samples stop after 1m: 5m later the rule has no value, and on_no_data: hold.
    data = write(
        scenario, "gap.csv", csv_rows([(0, "latency_p95", 5), (60, "latency_p95", 5), (600, "x", 1)])
    )
    result = tidegate(capsys, monkeypatch, "backtest", "-p", "bt.yaml", "--data", data, "--json")
    assert result.code == 0
    assert result.json["decisions"] == [
        {"at": at(0), "decision": "advance", "policies": []},
        {"at": at(360), "decision": "hold", "policies": ["latency"]},
    ]


def test_a_mitigation_alone_is_not_a_decision_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pack = write(
        tmp_path,
        "m.yaml",
        "apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {name: m}\ninterval: 1m\npolicies:\n"
        "  - {id: banner, signal: lcp, when: '> 3', targets: [beta-banner], action: rollback}\n"
        "  - {id: slow, signal: lcp, when: '> 2', action: notify}\n",
    )
    data = write(tmp_path, "lcp.csv", csv_rows([(0, "lcp", 2.5), (60, "lcp", 4), (120, "lcp", 2.5)]))
    result = tidegate(capsys, monkeypatch, "backtest", "-p", pack, "--data", data, "--json")
    assert result.code == 0  # a scoped rollback acts on its targets, not on the rollout
    assert result.json == {
        "firings": [
            {"policy": "slow", "at": at(0), "value": 2.5},
            {"policy": "banner", "at": at(60), "value": 4.0},
        ],
        "decisions": [{"at": at(0), "decision": "notify", "policies": ["slow"]}],
    }


# --- the shipped runbook on a KPI drift ---------------------------------------------------------


def test_runbook_kpi_drift_waits_for_evidence_then_rolls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """10% conversion in the two hours before the start, 8% after: −20% from the first
    minute, but the shipped pack wants one-sided z ≤ −4.26 (confidence 0.99999). Against
    12000/120000, k+1 minutes of 80/1000 give z ≈ −2.1 (k=0), −4.15 (k=3), −4.64 (k=4):
    both drift rules turn pending at 4 minutes; kpi-drift-1h (for 5m) breaches at 9 and
    kpi-drift (for 10m) at 14."""
    monkeypatch.chdir(tmp_path)
    rows: list[tuple[float, str, float]] = []
    for minute in range(-120, 21):
        rate = 0.10 if minute < 0 else 0.08
        rows += [
            (60 * minute, "checkout_conversion:num", 1000 * rate),
            (60 * minute, "checkout_conversion:den", 1000),
        ]
    data = write(tmp_path, "kpi.csv", csv_rows(rows))
    result = tidegate(
        capsys, monkeypatch, "backtest", "-p", "library:runbook", "--data", data, "--start", at(0), "--json"
    )
    assert result.code == 1
    out = result.json
    assert out["decisions"] == [
        {"at": at(0), "decision": "advance", "policies": []},
        {"at": at(540), "decision": "rollback", "policies": ["kpi-drift-1h"]},
        {"at": at(840), "decision": "rollback", "policies": ["kpi-drift", "kpi-drift-1h"]},
    ]
    assert [(f["policy"], f["at"]) for f in out["firings"]] == [
        ("kpi-drift-1h", at(540)),
        ("kpi-drift", at(840)),
    ]
    assert out["firings"][0]["value"] == pytest.approx(-0.2)
    unbound = len(load_pack("library:runbook").policies) - 2
    assert result.err.count("warning: ") == unbound  # every other runbook rule is unbound


def test_several_packs_are_backtested_together(
    scenario: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = write(
        scenario,
        "extra.yaml",
        "apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {name: x}\npolicies:\n"
        "  - {id: errors-any, signal: error_rate, when: '> 0.09', action: hold}\n",
    )
    result = tidegate(capsys, monkeypatch, *BACKTEST, "-p", extra, "--json")
    assert {"policy": "errors-any", "at": at(420), "value": 0.1} in result.json["firings"]
    assert {"at": at(420), "decision": "rollback", "policies": ["errors"]} in result.json["decisions"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            "{id: guarded, signal: latency_p95, when: '> 1', min_samples: 10, action: notify}",
            "error: policy 'guarded': confidence and min_samples need a ratio signal (num/den), "
            "but latency_p95 has plain values\n",
        ),
        (
            "{id: spikes, signal: incidents, when: '> 1', action: notify}",
            "error: policy 'spikes': incidents is an event stream; use count:\n",
        ),
    ],
)
def test_a_rule_that_cannot_read_its_signal_that_way_exits_2(
    policy: str,
    message: str,
    scenario: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pack = write(
        scenario,
        "wrong.yaml",
        f"apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {{name: w}}\npolicies:\n  - {policy}\n",
    )
    args = ["backtest", "-p", pack, "--data", "data.csv", "--events", "events.jsonl", "--json"]
    assert tidegate(capsys, monkeypatch, *args) == Result(2, "", message)


def test_the_console_script_honours_the_contract(scenario: Path) -> None:
    done = subprocess.run(
        [TIDEGATE, *BACKTEST, "--json"], cwd=scenario, capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, json.loads(done.stdout), done.stderr) == (1, EXPECTED, LCP_WARNING)
