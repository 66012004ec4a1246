"""Compile the evaluator's hot modules with mypyc (optional; `make install` runs it).

The live tick and the backtest spend their time in a few small modules: the series, the
rule kinds and the evaluator loop. mypyc (it ships with the pinned mypy) turns their
annotated Python into C extensions, 2-3x faster (docs/performance.md), without a second
implementation: the .py files stay the source of truth and the fallback. Python prefers an
extension module over the .py beside it, so:

- the extensions are built in place, next to their sources, from exactly those sources;
  a stamp (policies/native.sha256) records the sources' hash and the build is redone when
  they change (`make install` depends on them);
- before building, old extensions are removed, so a failed build leaves pure Python,
  never stale code. tests/test_native_build.py fails when a loaded extension does not
  match its source;
- a failed build is not an error: everything runs, slower. `TIDEGATE_PURE=1 make install`
  (or `python scripts/build_native.py --remove`) removes the extensions.

    python scripts/build_native.py [--remove]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOT = [
    "policies/series.py",
    "policies/rules/base.py",
    "policies/rules/ratio.py",
    "policies/rules/threshold.py",
    "policies/rules/drift.py",
    "policies/rules/count.py",
    "policies/evaluator.py",
]
GROUP = "policies.native"  # the shared library lands in policies/, beside the modules
STAMP = ROOT / "policies" / "native.sha256"
BUILD = ROOT / "build" / "native"


def source_hash() -> str:
    """What the extensions are built from: the sources, the compiler and the interpreter."""
    import mypy.version

    digest = hashlib.sha256(f"{mypy.version.__version__} {sys.version}".encode())
    for path in HOT:
        digest.update(path.encode() + b"\0" + (ROOT / path).read_bytes() + b"\0")
    return digest.hexdigest()


def extensions() -> list[Path]:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    found = [ROOT / path.replace(".py", suffix) for path in HOT]
    found.append(ROOT / (GROUP.replace(".", "/") + "__mypyc" + suffix))
    return [path for path in found if path.exists()]


def remove() -> None:
    for path in extensions():
        path.unlink()
    STAMP.unlink(missing_ok=True)


def build() -> bool:
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    os.chdir(ROOT)  # mypycify takes paths relative to the project
    modules = mypycify(HOT, group_name=GROUP, opt_level="3", target_dir=str(BUILD / "c"))
    setup(
        name="tidegate-native",
        ext_modules=modules,
        script_args=["--quiet", "build_ext", "--inplace", "--build-temp", str(BUILD / "temp")],
    )
    return len(extensions()) == len(HOT) + 1


def main() -> int:
    if "--remove" in sys.argv or os.environ.get("TIDEGATE_PURE") == "1":
        remove()
        print("native build: removed; the evaluator runs as pure Python")
        return 0
    wanted = source_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and len(extensions()) == len(HOT) + 1:
        return 0
    remove()
    try:
        built = build()
    except (Exception, SystemExit) as exc:  # any failure: keep the pure-Python modules
        print(f"native build failed ({exc!r}); the evaluator runs as pure Python", file=sys.stderr)
        remove()
        return 0
    if not built:
        print("native build incomplete; the evaluator runs as pure Python", file=sys.stderr)
        remove()
        return 0
    STAMP.write_text(wanted + "\n")
    shutil.rmtree(BUILD / "temp", ignore_errors=True)
    print(f"native build: {len(HOT)} modules compiled with mypyc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
