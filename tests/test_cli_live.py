"""The live view of `tidegate run | gate` (controller/cli/live.py) and the plain lines it replaces.

The view is drawn by the real `drive_rollout` (the code of `tidegate run`) on the demo release —
real engine, journal and five sandbox targets — onto a recording rich console of fixed width,
and read back frame by frame. Outside a terminal the plain lines stay exactly what they were
before the view existed (pinned below as captured from that code); the console script is run
on pipes and on a pseudo-terminal.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from rich.console import Console

from controller.cli import drive
from controller.demo import demo_rollout, demo_signals
from controller.driver import Mode
from controller.store import open_store
from tests.terminal import Interrupt, in_terminal
from tests.terminal_capture import last_frame, recording_console, run_demo_live
from tests.test_cli_rollouts import TIDEGATE, cli_env, status, tidegate, write_rollout

DEMO_TARGETS = ("checkout-flag", "backend", "web", "voucher-preview", "ios-app")
# `tidegate gate rollout.yaml --for 30m` and `tidegate run rollout.yaml` of write_rollout(…,
# bad_from_minute=10), stderr on a pipe, as printed before the live view was added.
GATE_LINES = """\
2026-09-21T14:13:20Z  decision   advance
2026-09-21T14:28:50Z  firing     error-rate breached: 40/400 = 0.1, lower 0.9 bound 0.08238 (rule: error_rate > 0.05 for 5m)
2026-09-21T14:28:50Z  decision   rollback (error-rate)
2026-09-21T14:28:50Z  transition progressing → rolling_back at 0% (rollback) — rollback: error-rate
2026-09-21T14:28:50Z  page       PAGE a human: ios-app: app-store cannot roll back by API: ship 1.9.0 (or a fix) by hand
2026-09-21T14:28:50Z  action     checkout-flag: disable → applied
2026-09-21T14:28:50Z  action     web: rollback(to 1.9.0) → applied
2026-09-21T14:28:50Z  action     ios-app: pause → applied
2026-09-21T14:28:50Z  transition rolling_back → rolled_back at 0% (complete) — every target rolled back
"""  # noqa: E501
RUN_LINES = """\
2026-09-21T14:13:20Z  decision   advance
2026-09-21T14:13:20Z  transition pending → progressing at 10% (start) — healthy
2026-09-21T14:13:20Z  action     checkout-flag: set_traffic(10%) → applied
2026-09-21T14:13:20Z  action     web: set_traffic(10%) → applied
2026-09-21T14:18:20Z  transition progressing → progressing at 50% (advance) — healthy
2026-09-21T14:18:20Z  action     checkout-flag: set_traffic(50%) → applied
2026-09-21T14:18:20Z  action     web: set_traffic(50%) → applied
2026-09-21T14:23:20Z  transition progressing → progressing at 100% (advance) — healthy
2026-09-21T14:23:20Z  action     checkout-flag: set_traffic(100%) → applied
2026-09-21T14:23:20Z  action     web: set_traffic(100%) → applied
""" + GATE_LINES.split("\n", 1)[1]
STATUS_LINES = """\
{id}                  rolled_back      0%  since 2026-09-21T14:28:50Z  every target rolled back
    checkout-flag: disable → applied
    web: rollback(to 1.9.0) → applied
    ios-app: pause → applied
"""


@pytest.fixture
def workdir(tmp_path: Path, clean_store_env: pytest.MonkeyPatch) -> Path:
    clean_store_env.chdir(tmp_path)
    clean_store_env.delenv("TIDEGATE_VIEW", raising=False)
    return tmp_path


def frames(console: Console) -> list[str]:
    """Every frame the live display drew, as text (each starts with the heading)."""
    text = console.export_text(styles=False)
    return ["tidegate run ·" + part for part in text.split("tidegate run ·")[1:]]


def row(frame: str, first: str) -> list[str]:
    """The cells of the table row starting with `first` (cells are 2+ spaces apart)."""
    for line in frame.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{frame}")


# --- the live view, drawn by the code of `tidegate run` --------------------------------


def test_the_live_view_of_the_demo_shows_rules_targets_events_and_the_final_state(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console = recording_console(width=120)

    code = run_demo_live(workdir / "state.db", console)

    assert code == 1  # stepped down, then rolled back
    frame = last_frame(console)
    heading = frame.splitlines()
    assert re.match(r"tidegate run · checkout-demo-[0-9a-f]{6}$", heading[0])
    assert (
        heading[1].startswith("rolled_back at 0% · since 15:28:20")
        and "every target rolled back" in heading[1]
    )
    assert heading[2].startswith("2026-09-21T15:28:20Z  +1h15m since start (virtual clock, replayed signals)")
    assert row(frame, "latency-p95")[:4] == ["latency-p95", "breach", "27.28", "14:54:50 (33m30s)"]
    assert row(frame, "error-rate")[:4] == ["error-rate", "breach", "0.1709", "15:23:20 (5m)"]
    assert row(frame, "kpi-drift")[1] == "ok" and row(frame, "high-severity-incidents")[1:3] == ["ok", "0"]
    for target in ("backend", "web", "voucher-preview"):
        assert row(frame, target)[2:5] == ["rollback(to 2.3.9)", "applied", "15:28:20"]
    assert row(frame, "checkout-flag")[1:4] == ["launchdarkly", "disable", "applied"]
    assert row(frame, "ios-app")[1:4] == ["app-store", "pause", "already_done"]  # paused at the step down
    assert "PAGE a human: ios-app: app-store cannot roll back by API" in frame
    assert frame.rstrip().endswith("rolling_back → rolled_back at 0% (complete) — every target rolled back")
    assert re.search(
        r"checkout-demo-\w+: rolled back \(every target rolled back\) \(exit 1\)", capsys.readouterr().out
    )


def test_the_view_is_redrawn_at_each_tick_and_event_on_the_replay_clock(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drive, "REPLAY_REDRAW", 0.0)  # every frame, not ~20 a second
    console = recording_console()

    run_demo_live(workdir / "state.db", console)

    drawn = frames(console)
    clocks = [frame.splitlines()[2][:20] for frame in drawn]
    assert clocks == sorted(clocks) and len(set(clocks)) > 100  # the virtual clock, tick by tick
    step_down = next(i for i, frame in enumerate(drawn) if "stepping_down at 50%, down step 1 of 2" in frame)
    assert row(drawn[step_down], "latency-p95")[1] == "breach"
    assert row(drawn[step_down], "error-rate")[1] in ("ok", "pending")
    before = drawn[step_down - 1]
    assert "progressing at 100%, step 3 of 3 (bake 2h)" in before
    assert row(before, "web")[2:4] == ["set_traffic(100%)", "applied"]
    assert any(row(frame, "web")[2:4] == ["set_traffic(50%)", "applied"] for frame in drawn[step_down:])


def test_a_failing_terminal_falls_back_to_plain_lines_and_the_rollout_finishes(
    workdir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every event draws a frame (no ~20 fps cap), so the terminal fails mid-rollout however
    # fast the replay runs.
    monkeypatch.setattr(drive, "REPLAY_REDRAW", 0.0)

    class ClosedAfterFirstFrames(io.StringIO):
        """A terminal that goes away mid-rollout (the window was closed, ssh dropped)."""

        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            if self.writes > 3:
                raise OSError(5, "Input/output error")
            return super().write(text)

    lines = io.StringIO()
    broken = Console(file=ClosedAfterFirstFrames(), force_terminal=True, width=100)

    with caplog.at_level(logging.WARNING, logger="tidegate.cli"):
        code = drive.drive_rollout(
            demo_rollout(), Mode.RUN, None, as_json=False, signals=demo_signals(), echo=lines, console=broken
        )

    assert code == 1
    assert "live view failed (OSError: [Errno 5] Input/output error); plain lines from here" in caplog.text
    plain = lines.getvalue().splitlines()
    assert all(re.match(r"^2026-09-21T\d\d:\d\d:\d\dZ  \w+ +\S", line) for line in plain), plain
    assert any(" transition stepping_down → rolling_back at 0% (rollback)" in line for line in plain)
    assert plain[-1].endswith(
        "transition rolling_back → rolled_back at 0% (complete) — every target rolled back"
    )
    store = open_store(None)
    try:
        (record,) = store.list_rollouts()
        assert record.status.state.value == "rolled_back"
        assert store.verify_audit().ok
    finally:
        store.close()


# --- the console script: pipes keep the plain lines, a terminal gets the view ---------


def test_on_pipes_gate_and_run_print_the_same_plain_lines_as_before(tmp_path: Path) -> None:
    gate_dir, run_dir = tmp_path / "gate", tmp_path / "run"
    gate_dir.mkdir()
    run_dir.mkdir()

    gated = tidegate(gate_dir, "gate", str(write_rollout(gate_dir, bad_from_minute=10)), "--for", "30m")
    ran = tidegate(run_dir, "run", str(write_rollout(run_dir, bad_from_minute=10)))

    assert (gated.returncode, ran.returncode) == (1, 1)
    assert gated.stderr == GATE_LINES
    assert ran.stderr == RUN_LINES
    (row_,) = status(run_dir)
    assert ran.stdout == f"{row_['id']}: rolled back (every target rolled back) (exit 1)\n"
    plain_status = tidegate(run_dir, "status")
    assert plain_status.stdout == STATUS_LINES.format(id=row_["id"])


def test_plain_wins_over_the_environment_and_live_can_be_forced_onto_a_pipe(tmp_path: Path) -> None:
    rollout = str(write_rollout(tmp_path, bad_from_minute=10))
    forced_plain = tidegate(
        tmp_path, "gate", rollout, "--for", "30m", "--plain", env={"TIDEGATE_VIEW": "live"}
    )
    assert forced_plain.stderr == GATE_LINES

    forced_live = tidegate(tmp_path, "gate", rollout, "--for", "30m", "--json", env={"TIDEGATE_VIEW": "live"})

    assert forced_live.returncode == 1
    result = json.loads(forced_live.stdout)  # stdout stays one JSON object
    assert result["state"] == "rolled_back" and forced_live.stdout.count("\n") == 1
    view = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", forced_live.stderr)
    final = view[view.rindex("tidegate gate ·") :]
    assert f"tidegate gate · {result['rollout']}" in final
    assert row(final, "error-rate")[:3] == ["error-rate", "breach", "0.1"]
    assert row(final, "web")[1:4] == ["vercel", "rollback(to 1.9.0)", "applied"]
    flag = tidegate(tmp_path, "gate", rollout, "--for", "30m", "--live", "--json")
    assert flag.returncode == 1 and "tidegate gate ·" in flag.stderr and json.loads(flag.stdout)


def test_an_unknown_view_setting_is_a_usage_error(tmp_path: Path) -> None:
    done = tidegate(tmp_path, "gate", str(write_rollout(tmp_path)), env={"TIDEGATE_VIEW": "fancy"})

    assert done.returncode == 2
    assert "TIDEGATE_VIEW='fancy': expected live or plain" in done.stderr
    assert status(tmp_path) == []


def test_on_a_terminal_run_draws_the_view_and_plain_keeps_the_lines(tmp_path: Path) -> None:
    rollout = str(write_rollout(tmp_path, bad_from_minute=10))

    ran = in_terminal(TIDEGATE, tmp_path, "run", rollout, env=cli_env())

    assert ran.code == 1, ran.text
    final = ran.text[ran.text.rindex("tidegate run ·") :]
    assert "rolled_back at 0%" in final and "(virtual clock, replayed signals)" in final
    assert row(final, "error-rate")[1] == "breach"
    for target, told in (("checkout-flag", "disable"), ("web", "rollback(to 1.9.0)"), ("ios-app", "pause")):
        assert row(final, target)[2:4] == [told, "applied"]
    assert re.search(r"shop-\w+: rolled back \(every target rolled back\) \(exit 1\)", final)

    gated = in_terminal(TIDEGATE, tmp_path, "gate", rollout, "--for", "30m", "--plain", env=cli_env())

    assert gated.code == 1 and "tidegate gate ·" not in gated.text
    assert GATE_LINES.splitlines()[3] in gated.text.splitlines()  # the same line, coloured on a terminal


def test_ctrl_c_during_a_live_run_leaves_the_last_frame_and_the_next_run_resumes(tmp_path: Path) -> None:
    rollout = str(write_rollout(tmp_path, delay=0.5, bad_from_minute=10))  # each web operation: 0.5 s

    interrupted = in_terminal(
        TIDEGATE, tmp_path, "run", rollout, env=cli_env(), interrupt=Interrupt("web ", 4)
    )

    assert interrupted.code == 130, interrupted.text
    assert "Traceback" not in interrupted.text
    assert interrupted.raw.endswith(b"\x1b[?25h")  # the cursor the live display hid is shown again
    final = interrupted.text[interrupted.text.rindex("tidegate run ·") :]
    state_line = final.splitlines()[1]  # where the run was when Ctrl-C came: not finished yet
    assert "rolled_back" not in state_line and "promoted" not in state_line, final

    resumed = tidegate(tmp_path, "run", rollout)

    assert resumed.returncode == 1, resumed.stderr
    assert "(start)" not in resumed.stderr  # the same rollout carried on; it did not begin again
    (only,) = status(tmp_path)
    assert only["state"] == "rolled_back"
