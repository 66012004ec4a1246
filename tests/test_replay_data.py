"""Replay data files (DESIGN.md backtest contract): what is accepted, and errors naming file and row.

`data.csv:3: value 'abc' is not a number` — a bad row is reported once, with its line, and
`tidegate backtest` exits 2 without a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.sources.replay import read_events, read_samples
from controller.cli.main import run
from policies.errors import DataError

TIDEGATE = str(Path(sys.executable).with_name("tidegate"))
HEADER = "timestamp,signal,value\n"
JAN_1 = 1767225600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def tidegate(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """The console entry point in-process, exactly as the installed script runs it."""
    monkeypatch.setattr(sys, "argv", ["tidegate", *args])
    with pytest.raises(SystemExit) as exit_:
        run()
    captured = capsys.readouterr()
    code = exit_.value.code
    return Result(code if isinstance(code, int) else 0, captured.out, captured.err)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def data_error(path: Path, reader: str = "samples") -> str:
    with pytest.raises(DataError) as error:
        (read_samples if reader == "samples" else read_events)(path.name)
    return str(error.value)


BAD_CSV = {
    "not-a-number": (
        HEADER + "2026-01-01T00:00:00Z,latency_p95,1\n2026-01-01T00:00:30Z,latency_p95,abc\n",
        "data.csv:3: value 'abc' is not a number",
    ),
    "empty-value": (HEADER + "1767225600,latency_p95,\n", "data.csv:2: value '' is not a number"),
    "nan-value": (HEADER + "1767225600,latency_p95,1\n1767225630,latency_p95,nan\n", None),
    "infinite-value": (
        HEADER + "1767225600,latency_p95,-inf\n",
        "data.csv:2: value '-inf' is not a finite number",
    ),
    "wrong-header": ("time,signal,value\n1,latency_p95,1\n", None),
    "header-missing": (
        "1767225600,latency_p95,1\n",
        "data.csv:1: expected the header timestamp,signal,value, got '1767225600,latency_p95,1'",
    ),
    "too-many-fields": (
        HEADER + "1767225600,latency_p95,1\n1767225630,latency_p95,1,2\n",
        "data.csv:3: expected 3 fields (timestamp,signal,value), got 4",
    ),
    "too-few-fields": (
        HEADER + "1767225600,latency_p95\n",
        "data.csv:2: expected 3 fields (timestamp,signal,value), got 2",
    ),
    "naive-local-time": (
        HEADER + "2026-01-01T00:00:00,latency_p95,1\n",
        "data.csv:2: timestamp '2026-01-01T00:00:00' has no UTC offset (add Z or +00:00)",
    ),
    "not-a-timestamp": (
        HEADER + "yesterday,latency_p95,1\n",
        "data.csv:2: expected a timestamp (RFC 3339 or unix seconds), got 'yesterday'",
    ),
    "impossible-date": (
        HEADER + "2026-02-30T00:00:00Z,latency_p95,1\n",
        "data.csv:2: expected a timestamp (RFC 3339 or unix seconds), got '2026-02-30T00:00:00Z'",
    ),
    "non-finite-timestamp": (
        HEADER + "inf,latency_p95,1\n",
        "data.csv:2: expected a timestamp (RFC 3339 or unix seconds), got 'inf'",
    ),
    "bad-signal-name": (
        HEADER + "1767225600,latency p95,1\n",
        "data.csv:2: signal 'latency p95' is not a name, name:num or name:den",
    ),
    "bad-ratio-part": (
        HEADER + "1767225600,error_rate:total,1\n",
        "data.csv:2: signal 'error_rate:total' is not a name, name:num or name:den",
    ),
    "num-without-den": (
        HEADER + "1767225600,error_rate:num,1\n1767225600,latency_p95,3\n",
        "data.csv: ratio signal 'error_rate' has 'error_rate:num' rows but no 'error_rate:den' rows",
    ),
    "den-without-num": (
        HEADER + "1767225600,error_rate:den,100\n",
        "data.csv: ratio signal 'error_rate' has 'error_rate:den' rows but no 'error_rate:num' rows",
    ),
    "plain-and-ratio-rows": (
        HEADER + "1767225600,error_rate:num,1\n1767225600,error_rate:den,10\n1767225660,error_rate,0.1\n",
        None,
    ),
    "empty-file": ("", "data.csv:1: the file is empty; expected a header timestamp,signal,value"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_a_bad_samples_file_names_file_and_row(case: str, in_tmp: Path) -> None:
    text, expected = BAD_CSV[case]
    (in_tmp / "data.csv").write_text(text, encoding="utf-8")
    message = data_error(in_tmp / "data.csv")
    if expected is not None:
        assert message == expected
    elif case == "nan-value":
        assert message == "data.csv:3: value 'nan' is not a finite number"
    elif case == "wrong-header":
        assert message == "data.csv:1: expected the header timestamp,signal,value, got 'time,signal,value'"
    else:
        assert message.startswith("data.csv: signal 'error_rate' has both plain rows and 'error_rate:")


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_backtest_on_a_bad_samples_file_exits_2_with_that_error(
    case: str, in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "data.csv").write_text(BAD_CSV[case][0], encoding="utf-8")
    expected = data_error(in_tmp / "data.csv")
    result = tidegate(
        capsys, monkeypatch, "backtest", "--policy", "library:runbook", "--data", "data.csv", "--json"
    )
    assert result == Result(2, "", f"error: {expected}\n")


def test_the_first_bad_row_is_reported_even_after_good_ones(in_tmp: Path) -> None:
    rows = "".join(f"{JAN_1 + i * 10:.0f},latency_p95,{i}\n" for i in range(1000))
    (in_tmp / "data.csv").write_text(HEADER + rows + "2026-01-01T05:00:00Z,latency_p95,1e999\n" + "x,y,z\n")
    assert data_error(in_tmp / "data.csv") == "data.csv:1002: value '1e999' is not a finite number"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda d: None, "data.csv: no such file"),
        (lambda d: (d / "data.csv").mkdir(), None),
        (lambda d: (d / "data.csv").write_bytes(HEADER.encode() + b"1767225600,caf\xe9,1\n"), None),
    ],
    ids=["missing", "directory", "not-utf8"],
)
def test_a_samples_file_that_cannot_be_read_names_the_file(
    setup: Callable[[Path], object],
    expected: str | None,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup(in_tmp)
    result = tidegate(capsys, monkeypatch, "backtest", "--policy", "library:runbook", "--data", "data.csv")
    assert (result.code, result.out) == (2, "")
    assert "Traceback" not in result.err
    if expected is not None:
        assert result.err == f"error: {expected}\n"
    else:
        assert result.err.startswith("error: data.csv: ")
        assert result.err.count("\n") == 1


# --- what is accepted ---------------------------------------------------------------------


def test_rows_in_any_order_are_sorted_and_equal_times_keep_file_order(in_tmp: Path) -> None:
    (in_tmp / "data.csv").write_text(
        HEADER
        + "1767225660,latency_p95,3\n"
        + "1767225600,latency_p95,1\n"
        + "1767225660,latency_p95,4\n"  # same time, later in the file: the correction wins
        + "1767225630,latency_p95,2\n"
        + "1767225630,error_rate:den,100\n"
        + "1767225600,error_rate:num,5\n"
        + "1767225600,error_rate:den,50\n"
        + "1767225630,error_rate:num,1\n"
    )
    columns = read_samples("data.csv")
    assert columns["latency_p95"] == ([JAN_1, JAN_1 + 30, JAN_1 + 60, JAN_1 + 60], [1.0, 2.0, 3.0, 4.0])
    assert columns["error_rate:num"] == ([JAN_1, JAN_1 + 30], [5.0, 1.0])
    assert columns["error_rate:den"] == ([JAN_1, JAN_1 + 30], [50.0, 100.0])


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T01:00:00+01:00",
        "2025-12-31T19:00:00-05:00",
        "2026-01-01T00:00:00.000Z",
        "2026-01-01 00:00:00Z",
        "1767225600",
        "1767225600.0",
        " 1767225600 ",
    ],
)
def test_rfc3339_with_any_offset_and_unix_seconds_are_the_same_instant(stamp: str, in_tmp: Path) -> None:
    (in_tmp / "data.csv").write_text(f"{HEADER}{stamp},latency_p95,1\n")
    assert read_samples("data.csv")["latency_p95"] == ([JAN_1], [1.0])


def test_fractional_unix_seconds_and_mixed_spellings_in_one_file(in_tmp: Path) -> None:
    (in_tmp / "data.csv").write_text(
        HEADER + "1767225600.5,q,1\n2026-01-01T00:00:00.25Z,q,2\n2026-01-01T00:00:01Z,q,3\n"
    )
    assert read_samples("data.csv")["q"] == ([JAN_1 + 0.25, JAN_1 + 0.5, JAN_1 + 1], [2.0, 1.0, 3.0])


def test_crlf_line_ends_and_a_byte_order_mark_are_fine(in_tmp: Path) -> None:
    (in_tmp / "data.csv").write_bytes(b"\xef\xbb\xbftimestamp,signal,value\r\n1767225600,q,1\r\n")
    assert read_samples("data.csv") == {"q": ([JAN_1], [1.0])}


def test_a_header_only_file_is_no_data(in_tmp: Path) -> None:
    (in_tmp / "data.csv").write_text(HEADER)
    assert read_samples("data.csv") == {}


# --- events (JSON Lines) ----------------------------------------------------------------------

BAD_EVENTS = {
    "invalid-json": (
        '{"timestamp": 1767225600, "signal": "incidents"}\n{"timestamp": 1767225660, "signal": "incidents"\n',
        "events.jsonl:2: not valid JSON: Expecting ',' delimiter (column 48)",
    ),
    "not-an-object": ('["incidents", 1767225600]\n', "events.jsonl:1: expected a JSON object per line"),
    "missing-timestamp": (
        '{"signal": "incidents", "severity": "high"}\n',
        "events.jsonl:1: missing field 'timestamp'",
    ),
    "missing-signal": ('{"timestamp": 1767225600}\n', "events.jsonl:1: missing field 'signal'"),
    "naive-timestamp": (
        '{"timestamp": "2026-01-01T00:00:00", "signal": "incidents"}\n',
        "events.jsonl:1: timestamp '2026-01-01T00:00:00' has no UTC offset (add Z or +00:00)",
    ),
    "timestamp-not-a-time": (
        '{"timestamp": "soon", "signal": "incidents"}\n',
        "events.jsonl:1: expected a timestamp (RFC 3339 or unix seconds), got 'soon'",
    ),
    "timestamp-is-bool": (
        '{"timestamp": true, "signal": "incidents"}\n',
        "events.jsonl:1: timestamp True is not RFC 3339 or unix seconds",
    ),
    "timestamp-is-null": (
        '{"timestamp": null, "signal": "incidents"}\n',
        "events.jsonl:1: timestamp None is not RFC 3339 or unix seconds",
    ),
    "signal-not-a-name": ('{"timestamp": 1, "signal": "high incidents"}\n', None),
    "signal-is-a-counter": ('{"timestamp": 1, "signal": "incidents:num"}\n', None),
    "signal-not-a-string": ('{"timestamp": 1, "signal": 5}\n', "events.jsonl:1: signal 5 is not a name"),
    "id-is-a-float": (
        '{"timestamp": 1, "signal": "incidents", "id": 1.5}\n',
        "events.jsonl:1: id 1.5 must be a string or an integer",
    ),
    "id-is-an-object": ('{"timestamp": 1, "signal": "incidents", "id": {"n": 1}}\n', None),
    "id-is-bool": ('{"timestamp": 1, "signal": "incidents", "id": true}\n', None),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_event_line_names_file_and_line(
    case: str, in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text, expected = BAD_EVENTS[case]
    (in_tmp / "events.jsonl").write_text(text)
    message = data_error(in_tmp / "events.jsonl", "events")
    line = text.count("\n")
    assert message.startswith(f"events.jsonl:{line}: ")
    if expected is not None:
        assert message == expected
    result = tidegate(capsys, monkeypatch, "backtest", "-p", "library:runbook", "--events", "events.jsonl")
    assert result == Result(2, "", f"error: {message}\n")


def test_events_are_sorted_blank_lines_skipped_and_other_fields_kept_for_match(in_tmp: Path) -> None:
    (in_tmp / "events.jsonl").write_text(
        '{"timestamp": "2026-01-01T00:10:00Z", "signal": "incidents", "severity": "high", "id": 7}\n'
        "\n"
        '{"timestamp": 1767225600, "signal": "incidents", "severity": "low", "id": "INC-1", "team": "pay"}\n'
        "   \n"
        '{"timestamp": "1767225900", "signal": "alerts"}\n'
    )
    events = read_events("events.jsonl")
    assert [(e.time, e.signal, e.id, e.fields) for e in events] == [
        (JAN_1, "incidents", "INC-1", {"severity": "low", "team": "pay"}),
        (JAN_1 + 300, "alerts", None, {}),
        (JAN_1 + 600, "incidents", "7", {"severity": "high"}),
    ]


def test_a_missing_events_file_names_the_file(in_tmp: Path) -> None:
    assert data_error(in_tmp / "events.jsonl", "events") == "events.jsonl: no such file"


# --- the installed script ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "name", "text", "expected"),
    [
        (
            "--data",
            "data.csv",
            BAD_CSV["not-a-number"][0],
            "error: data.csv:3: value 'abc' is not a number\n",
        ),
        (
            "--events",
            "events.jsonl",
            BAD_EVENTS["missing-signal"][0],
            "error: events.jsonl:1: missing field 'signal'\n",
        ),
    ],
)
def test_the_console_script_exits_2_on_bad_data_without_a_traceback(
    flag: str, name: str, text: str, expected: str, tmp_path: Path
) -> None:
    (tmp_path / name).write_text(text)
    done = subprocess.run(
        [TIDEGATE, "backtest", "--policy", "library:runbook", flag, name, "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (2, "", expected)
