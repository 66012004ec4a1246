"""`tidegate status` for a person: the rich table on a terminal, `--watch` until Ctrl-C.

Scripts and logs keep the plain lines and the JSON (pinned in tests/test_cli_live.py and
tests/test_cli_rollouts.py); here the console script runs on a pseudo-terminal and is
interrupted as a person would, and the table is drawn in-process onto a recording console.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from controller.cli.status import StatusRow, status_table, watch_status, watch_table
from controller.core.model import RolloutStatus, State
from controller.store.base import SourceHealth
from tests.terminal import Interrupt, in_terminal
from tests.terminal_capture import recording_console
from tests.test_cli_rollouts import TIDEGATE, cli_env, tidegate, write_rollout

START = 1_790_000_000.0


@pytest.fixture(scope="module")
def two_rollouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a promoted `web-app` and a rolled-back `shop`."""
    cwd = tmp_path_factory.mktemp("status")
    for name, bad in (("web-app", None), ("shop", 12)):
        folder = cwd / name
        folder.mkdir()
        done = tidegate(cwd, "run", str(write_rollout(folder, name=name, bad_from_minute=bad)))
        assert done.returncode in (0, 1), done.stderr
    return cwd


def test_status_on_a_terminal_is_a_table_of_every_rollout(two_rollouts: Path) -> None:
    shown = in_terminal(TIDEGATE, two_rollouts, "status", env=cli_env())

    assert shown.code == 0, shown.text
    screen = shown.text
    assert "tidegate status" in screen and "┃ rollout / target" in screen
    shop, web_app = rollout_block(screen, "shop-"), rollout_block(screen, "web-app-")
    assert shop[0][1:] == ["rolled_back", "0%", "2026-09-21T14:30:50Z", "every target rolled back"]
    assert [(r[0], r[1], r[4]) for r in shop[1:]] == [
        ("checkout-flag", "applied", "disable"),
        ("web", "applied", "rollback(to 1.9.0)"),
        ("ios-app", "applied", "pause"),
    ]
    assert web_app[0][1:3] == ["promoted", "100%"] and len(web_app) == 4

    plain = in_terminal(TIDEGATE, two_rollouts, "status", "--plain", env=cli_env()).text
    assert "┃" not in plain and "    web: rollback(to 1.9.0) → applied" in plain.splitlines()


def test_status_watch_redraws_until_ctrl_c_and_exits_0(two_rollouts: Path) -> None:
    watched = in_terminal(
        TIDEGATE,
        two_rollouts,
        "status",
        "--watch",
        "--interval",
        "200ms",
        env=cli_env(),
        interrupt=Interrupt("Ctrl-C to stop", times=3),
    )

    assert watched.code == 0, watched.text
    assert "Traceback" not in watched.text and "aborted" not in watched.text
    assert watched.text.count("every 200ms") >= 3 and "rolled_back" in watched.text
    assert watched.raw.endswith(b"\x1b[?25h")  # the terminal's cursor is back


def test_status_watch_on_a_pipe_prints_one_json_array_per_interval(two_rollouts: Path) -> None:
    process = subprocess.Popen(
        [str(TIDEGATE), "status", "--watch", "--interval", "100ms", "--json"],
        cwd=two_rollouts,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    snapshots = [json.loads(process.stdout.readline()) for _ in range(3)]
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=30)

    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert all(sorted(r["name"] for r in rows) == ["shop", "web-app"] for rows in snapshots)
    assert all(json.loads(line) == snapshots[0] for line in rest.splitlines())


def test_an_interval_that_is_not_a_duration_is_a_usage_error(two_rollouts: Path) -> None:
    done = tidegate(two_rollouts, "status", "--watch", "--interval", "soon")

    assert done.returncode == 2 and "--interval" in done.stderr and "Traceback" not in done.stderr


# --- in-process: the watch loop and the table ----------------------------------------


def test_ctrl_c_ends_a_watch_normally_after_what_it_showed() -> None:
    shown: list[int] = []
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise KeyboardInterrupt

    watch_status(lambda: [], lambda rows: shown.append(len(shown)), 2.0, sleep)

    assert shown == [0, 1, 2] and slept == [2.0, 2.0, 2.0]


def test_the_watched_table_is_redrawn_in_place_and_left_on_screen() -> None:
    console = recording_console(width=140)
    states = iter([State.PROGRESSING, State.STEPPING_DOWN, State.ROLLED_BACK])
    current: list[State] = []

    def collect() -> list[StatusRow]:
        current.append(next(states))
        return [rollout_row(current[-1], [])]

    def sleep(seconds: float) -> None:
        if len(current) == 3:
            raise KeyboardInterrupt

    watch_table(collect, console, 2.0, sleep)

    text = console.export_text()
    assert text.count("every 2s · ") >= 3 and text.count("Ctrl-C to stop") >= 3
    last = text[text.rindex("tidegate status") :]
    assert "rolled_back" in last and "stepping_down" not in last


def test_the_table_shows_each_sources_reads_and_last_error() -> None:
    failing = SourceHealth("health", 2, 5, 3, START + 60, START + 120, "sql source 'health': cannot connect")
    console = recording_console(width=160)

    console.print(status_table([rollout_row(State.PROGRESSING, [failing])]))

    text = console.export_text()
    assert row_cells(text, "live-web-abc123") == ["progressing", "50%", "2026-09-21T14:13:20Z", "healthy"]
    source = row_cells(text, "  source health")
    assert source == ["2 ok / 5 failed", "", "2026-09-21T14:15:20Z", "sql source 'health': cannot connect"]


def rollout_row(state: State, sources: list[SourceHealth]) -> StatusRow:
    status = RolloutStatus(state, 50, 1, START, seq=2, reason="healthy")
    return StatusRow("live-web-abc123", "live-web", status, [], sources)


def rollout_block(screen: str, prefix: str) -> list[list[str]]:
    """The table rows of one rollout: its own, then its targets' and sources' (all cells)."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"│ {prefix}"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.split("│")[1:-1]])
    return rows


def row_cells(text: str, first: str) -> list[str]:
    """The cells after the first of the last table row whose first cell starts with `first`."""
    line = [line for line in text.splitlines() if line.startswith(f"│ {first}")][-1]
    return [cell.strip() for cell in line.split("│")[2:-1]]
