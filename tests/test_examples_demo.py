"""examples/demo holds exactly what `tidegate simulate --out examples/demo` writes, so the
files users backtest by hand and the scenario `tidegate demo` replays cannot drift apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "demo"


def test_examples_demo_files_are_the_simulators_demo_scenario(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli.main", "simulate", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("data.csv", "events.jsonl"):
        assert (tmp_path / name).read_text() == (EXAMPLES / name).read_text(), f"regenerate {name}"
