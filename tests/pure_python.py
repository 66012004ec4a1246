"""pytest plugin: run the evaluator's hot modules from their .py sources.

`make install` compiles those modules with mypyc (scripts/build_native.py) and Python then
prefers the extension beside each source. The pure-Python modules remain the fallback for
any install without a compiler, so they are tested too: tests/test_native_build.py runs the
evaluator's property tests again with `-p tests.pure_python`, which puts this finder first
on `sys.meta_path` before anything imports `policies`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
HOT: list[str] = runpy.run_path(str(ROOT / "scripts" / "build_native.py"))["HOT"]
MODULES = {path.removesuffix(".py").replace("/", "."): ROOT / path for path in HOT}


class SourceFirst(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = MODULES.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


if any(name in sys.modules for name in MODULES):
    raise RuntimeError("tests.pure_python must load before policies is imported (use -p)")
sys.meta_path.insert(0, SourceFirst())
