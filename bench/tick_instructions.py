"""Machine instructions per rollout per live tick, counted by valgrind (callgrind).

On a shared machine wall and even CPU times move with whatever else runs; an instruction
count does not. This builds rollouts exactly as `bench.live_tick` does, then runs its
measured step (one new sample per signal, one tick) a few times; the ticks are wrapped in a
`functools.reduce` call so that callgrind can count them alone:

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=bench/out/tick.callgrind \\
        .venv/bin/python -m bench.tick_instructions [--rollouts 100] [--runs 3] [--pure]
    .venv/bin/python -m bench.tick_instructions --report bench/out/tick.callgrind

`--pure` runs the pure-Python modules even when the compiled ones are installed.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
from functools import reduce
from pathlib import Path


def run(rollouts: int, runs: int) -> None:
    from bench import live_tick
    from bench.workload import KINDS
    from policies.evaluator import Evaluator

    built = live_tick.build(lambda p, s: Evaluator(p, start=s, kinds=KINDS), rollouts, tick_history=True)
    gc.collect()
    pool = [live_tick.scrapes(1000 + run, live_tick.POOL, 0.0) for run in range(3)]
    for run in range(runs):
        at = live_tick.NOW + run * live_tick.STEP
        for index, rollout in enumerate(built):
            live_tick.feed(rollout, pool[run % 3][index % live_tick.POOL], at, live_tick.scale_of(index))

        def tick_all(_: int, __: int, at: float = at) -> int:
            for rollout in built:
                rollout.tick(at)
            return 0

        reduce(tick_all, [0, 0])  # the only reduce: callgrind counts inside it


def report(path: Path, rollouts: int, runs: int) -> None:
    totals = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.MULTILINE)
    if totals is None:
        sys.exit(f"{path}: no callgrind totals")
    per_tick = int(totals.group(1)) / (rollouts * runs)
    print(f"{per_tick:,.0f} instructions per rollout per tick ({rollouts} rollouts × {runs} ticks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pure", action="store_true", help="the .py modules, not the compiled ones")
    parser.add_argument("--report", type=Path, help="print the count from a callgrind output file")
    options = parser.parse_args()
    if options.report:
        report(options.report, options.rollouts, options.runs)
        return
    if options.pure:
        import tests.pure_python  # noqa: F401 - installs the source-first finder
    run(options.rollouts, options.runs)


if __name__ == "__main__":
    main()
