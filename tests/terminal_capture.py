"""The live view of `tidegate run` on the demo release, drawn onto a recording rich console.

Shared by tests/test_cli_live.py and the picture in the docs:

    .venv/bin/python -m tests.terminal_capture docs/img/terminal.svg

The demo rollout (controller/demo_rollout.yaml) runs through `drive_rollout`, the code path of
`tidegate run`, on the simulator's release: real engine, journal and five sandbox targets.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.text import Text

from controller.cli.drive import drive_rollout
from controller.demo import demo_rollout, demo_signals
from controller.driver import Mode

WIDTH = 120
STYLE_BEFORE = re.compile(r"\x1b\[[0-9;]*m$")  # an ANSI style code ending where the frame starts


def recording_console(width: int = WIDTH) -> Console:
    """A terminal of fixed size that keeps everything drawn on it (export_text, save_svg)."""
    return Console(
        file=io.StringIO(), record=True, force_terminal=True, width=width, height=60, color_system="truecolor"
    )


def run_demo_live(state: Path, console: Console) -> int:
    """`tidegate run` of the demo rollout with the live view on `console`; its exit code.
    Sandbox targets keep their files next to `state` (TIDEGATE_STATE is set for the run)."""
    before = os.environ.get("TIDEGATE_STATE")
    os.environ["TIDEGATE_STATE"] = str(state)
    try:
        return drive_rollout(
            demo_rollout(), Mode.RUN, str(state), as_json=False, signals=demo_signals(), console=console
        )
    finally:
        if before is None:
            del os.environ["TIDEGATE_STATE"]
        else:
            os.environ["TIDEGATE_STATE"] = before


def last_frame(console: Console, *, styles: bool = False) -> str:
    """The final frame (with its ANSI styles when asked): a live display redraws from its
    heading each time, and the last frame is the one left on the screen."""
    text = console.export_text(styles=styles)
    start = text.rindex("tidegate run ·")
    while match := STYLE_BEFORE.search(text, 0, start):  # keep the heading's own style codes
        start = match.start()
    return text[start:]


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        console = recording_console()
        run_demo_live(Path(folder) / "state.db", console)
    frame = recording_console()
    frame.print(Text.from_ansi(last_frame(console, styles=True)))
    frame.save_svg(out, title="tidegate run (demo release)")


if __name__ == "__main__":
    main(sys.argv[1])
