"""The optional mypyc build of the evaluator's hot modules (scripts/build_native.py).

Compiled modules must be built from exactly the sources beside them (a stale extension
would test and run old code), CI must run the compiled core it ships, and the pure-Python
fallback must pass the evaluator's properties as well.
"""

from __future__ import annotations

import importlib
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = runpy.run_path(str(ROOT / "scripts" / "build_native.py"))
MODULES = [path.removesuffix(".py").replace("/", ".") for path in BUILD["HOT"]]


def compiled() -> list[str]:
    return [name for name in MODULES if not (importlib.import_module(name).__file__ or "").endswith(".py")]


def test_compiled_modules_are_all_or_none_and_built_from_the_current_sources() -> None:
    built = compiled()
    if not built:
        return
    assert built == MODULES, "some hot modules are compiled, some are not: run make install"
    stamp = ROOT / "policies" / "native.sha256"
    assert stamp.exists() and stamp.read_text().strip() == BUILD["source_hash"](), (
        "the compiled modules are stale (a source changed since the build): run make install"
    )


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="without CI=true the build is optional")
def test_ci_runs_the_compiled_core() -> None:
    assert compiled() == MODULES, "make install did not compile the hot modules (scripts/build_native.py)"


@pytest.mark.slow
def test_the_pure_python_fallback_passes_the_evaluator_properties() -> None:
    if not compiled():
        pytest.skip("the suite itself runs the pure-Python modules")
    tests = [f"tests/test_{name}.py" for name in ("evaluator_properties", "bench_naive", "threshold_rule")]
    check = "import policies.series as s, sys; sys.exit(not s.__file__.endswith('.py'))"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", f"import tests.pure_python; {check}"], check=False, cwd=ROOT, env=env
    )
    assert probe.returncode == 0, "tests.pure_python did not load the .py sources"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.pure_python", "-q", "-p", "no:cacheprovider", *tests],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
