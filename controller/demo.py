"""`tidegate demo`: the bundled incident scenario through the real engine, printed."""

from __future__ import annotations

from controller.backtest import run_backtest
from controller.cli.timeline import render_timeline
from controller.simulator import demo_spec, simulate
from policies.loader import load_pack

DEMO_PACK = "library:runbook"


def run_demo() -> int:
    pack = load_pack(DEMO_PACK)
    scenario = simulate(demo_spec())
    result = run_backtest(
        pack.policies, scenario.data, start=scenario.start, interval=pack.interval, events_given=True
    )
    print("tidegate demo: a checkout release whose p95 latency degrades 40 minutes in and whose")
    print("error rate follows at 70 minutes, replayed through the runbook pack.\n")
    for line in render_timeline(result, DEMO_PACK):
        print(line)
    return 0
