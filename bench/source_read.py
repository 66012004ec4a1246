"""One tick's signal reads for 1,000 rollouts × 10 signals from ONE real Prometheus.

Target (issue 6): under 2 s on this machine; reported with the HTTP requests issued per tick
and the bytes read.

Data: a real Prometheus (Debian package, as in the tests: tests/prometheus_server.py) over
blocks backfilled with `promtool tsdb create-blocks-from openmetrics`: ten minutes of 10 s
scrapes, a few hours old, of twelve series per rollout, each labelled `rollout="rollout-NNNN"`
— request counters by code, checkout and session counters, and eight gauges.

Sources: each rollout's `prometheus` source is built as rollout.yaml binds it (the YAML below,
parsed, handed to the registry), all from one SourceContext — one process, one HTTP client,
one batcher. The ten signals (two ratios, so twelve queries) are `… by (rollout) (…)`
queries, the same text for every rollout, and `select: {rollout: rollout-NNNN}` picks the
rollout's own series.

Measured: one tick = every rollout's source reads (T − 30 s, T] one after another, inside
`batcher.tick()`, as a runtime driving all rollouts would. Each repetition is a fresh tick
at a later T (nothing carried over). Requests are counted twice, independently: by an httpx
event hook on the client (what really went out) and by summing `ReadResult.queries`. Every
value read is checked against the generated data, so a fast wrong answer cannot pass.

For comparison, one more tick reads the rollouts with per-rollout queries
(`sum(…{rollout="rollout-NNNN"}…)`, no `select`): one request per query per rollout, as
before `select` existed. `--unbatched N` limits that to the first N rollouts; the time for
all of them is then extrapolated from those N, and labelled so.

    .venv/bin/python -m bench.source_read [--rollouts 1000] [--runs 7] [--unbatched N] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import yaml

from adapters.sources.base import ReadResult, Source
from adapters.sources.registry import SourceContext, build_source
from bench.workload import PLAINS, RATIOS
from tests.prometheus_server import PrometheusServer, unavailable

TARGET_S = 2.0
STEP = 30
SCRAPE = 10
SCRAPES = 61  # ten minutes at 10 s
FIRST_TICK = 120  # seconds after the data starts: every [30s] range and lookback is full
COUNTERS: dict[str, Callable[[int], int]] = {  # series → its increase per scrape for rollout r
    'tg_http_requests_total{code="200"}': lambda r: 20 + r % 7,
    'tg_http_requests_total{code="500"}': lambda r: r % 3,
    "tg_checkouts_total": lambda r: 1 + r % 4,
    "tg_sessions_total": lambda r: 10 + r % 5,
}
RATIO_QUERIES = {
    "error_rate": ('tg_http_requests_total{{{sel}code=~"5.."}}', "tg_http_requests_total{{{sel}}}"),
    "checkout_conversion": ("tg_checkouts_total{{{sel}}}", "tg_sessions_total{{{sel}}}"),
}


@dataclass(frozen=True)
class SourceReadResult:
    rollouts: int
    signals: int
    columns: int  # queries per rollout (a ratio signal is two)
    runs: int
    tick_s_median: float
    tick_s_max: float
    tick_cpu_s_median: float
    first_read_s_median: float  # the first rollout's read: it makes every request of the tick
    requests_per_tick: int  # counted by an httpx event hook
    queries_per_tick: int  # the sum of ReadResult.queries
    bytes_per_tick: int
    unbatched_rollouts: int
    unbatched_s: float  # for unbatched_rollouts, measured
    unbatched_requests: int
    unbatched_bytes: int
    unbatched_s_all: float  # extrapolated to `rollouts`
    backfill_s: float
    startup_s: float
    build_s: float
    rss_mb: float
    target_s: float
    met: bool


def rollout_name(r: int) -> str:
    return f"rollout-{r:04d}"


def gauge(name: str, r: int, j: int) -> float:
    """Gauge `name` of rollout r at scrape j: distinct per rollout, per signal and per scrape."""
    return float(PLAINS.index(name) * 1000 + r) + j / 4


def openmetrics(rollouts: int, t0: int) -> Iterator[str]:
    """The backfill, family by family, series by series, in time order (as OpenMetrics wants)."""
    families: dict[str, list[str]] = {}
    for series in COUNTERS:
        families.setdefault(series.split("{")[0].removesuffix("_total"), []).append(series)
    for family, members in families.items():
        yield f"# TYPE {family} counter\n"
        for series in members:
            name, _, labels = series.partition("{")
            step = COUNTERS[series]
            for r in range(rollouts):
                head = f'{name}{{rollout="{rollout_name(r)}"' + (f",{labels}" if labels else "}")
                yield "".join(f"{head} {step(r) * j} {t0 + SCRAPE * j}\n" for j in range(SCRAPES))
    for name in PLAINS:
        yield f"# TYPE tg_{name} gauge\n"
        for r in range(rollouts):
            head = f'tg_{name}{{rollout="{rollout_name(r)}"}}'
            yield "".join(f"{head} {gauge(name, r, j)!r} {t0 + SCRAPE * j}\n" for j in range(SCRAPES))
    yield "# EOF\n"


def signal_queries(rollout: str | None) -> dict[str, object]:
    """The ten signals: `… by (rollout) (…)` for every rollout, or one rollout's own queries."""
    sel = "" if rollout is None else f'rollout="{rollout}",'
    agg = "sum by (rollout)" if rollout is None else "sum"
    signals: dict[str, object] = {
        signal: {
            "num": f"{agg} (increase({num.format(sel=sel)}[30s]))",
            "den": f"{agg} (increase({den.format(sel=sel)}[30s]))",
        }
        for signal, (num, den) in RATIO_QUERIES.items()
    }
    for name in PLAINS:
        matcher = "" if rollout is None else f'{{rollout="{rollout}"}}'
        signals[name] = f"{'max by (rollout)' if rollout is None else 'max'} (tg_{name}{matcher})"
    return signals


def rollout_yaml(url: str, r: int, *, batched: bool) -> str:
    """The `sources:` block of rollout r's rollout.yaml."""
    settings: dict[str, object] = {"url": url, "step": f"{STEP}s"}
    if batched:
        settings["select"] = {"rollout": rollout_name(r)}
    settings["signals"] = signal_queries(None if batched else rollout_name(r))
    return yaml.safe_dump({"sources": [{"name": "metrics", "kind": "prometheus", "settings": settings}]})


def build_sources(url: str, rollouts: range, context: SourceContext, *, batched: bool) -> list[Source]:
    sources = []
    for r in rollouts:
        (bound,) = yaml.safe_load(rollout_yaml(url, r, batched=batched))["sources"]
        sources.append(build_source(bound["kind"], bound["name"], bound["settings"], context))
    return sources


def expected(r: int, column: str, j: int) -> float:
    """What rollout r's column holds at scrape j (a multiple of 3: a tick on the step grid)."""
    if column in PLAINS:
        return gauge(column, r, j)
    per_step = {
        "error_rate:num": COUNTERS['tg_http_requests_total{code="500"}'](r),
        "error_rate:den": COUNTERS['tg_http_requests_total{code="200"}'](r)
        + COUNTERS['tg_http_requests_total{code="500"}'](r),
        "checkout_conversion:num": COUNTERS["tg_checkouts_total"](r),
        "checkout_conversion:den": COUNTERS["tg_sessions_total"](r),
    }[column]
    return float(per_step * STEP // SCRAPE)


def check(results: list[ReadResult], rollouts: range, t0: int, end: int) -> None:
    """Every column of every rollout holds exactly its own value at `end`."""
    j = (end - t0) // SCRAPE
    for r, result in zip(rollouts, results, strict=True):
        for column, (times, values) in result.columns.items():
            if times != [float(end)] or values != [expected(r, column, j)]:
                raise SystemExit(f"{rollout_name(r)} {column}: read {times} {values}, expected {end}")


@dataclass(frozen=True)
class Tick:
    results: list[ReadResult]
    wall_s: float
    cpu_s: float
    first_s: float  # of which the first source's read


def read_tick(sources: list[Source], context: SourceContext, end: int) -> Tick:
    """One tick: every source reads (end − step, end], one after another."""
    wall, cpu = time.perf_counter(), time.process_time()
    with context.prometheus.tick():
        results = [sources[0].read(end - STEP, end)]
        first = time.perf_counter() - wall
        results += [source.read(end - STEP, end) for source in sources[1:]]
    return Tick(results, time.perf_counter() - wall, time.process_time() - cpu, first)


def counting_client() -> tuple[httpx.Client, Callable[[], int]]:
    sent = [0]

    def count(request: httpx.Request) -> None:
        sent[0] += 1

    return httpx.Client(event_hooks={"request": [count]}), lambda: sent[0]


def measure(rollouts: int, runs: int, unbatched: int) -> SourceReadResult:
    reason = unavailable()
    if reason is not None:
        raise SystemExit(f"a real Prometheus is needed: {reason}")
    t0 = (int(time.time()) // 3600 - 3) * 3600
    with tempfile.TemporaryDirectory(prefix="tidegate-source-read-") as folder:
        began = time.perf_counter()
        text = "".join(openmetrics(rollouts, t0))
        server = PrometheusServer.start(Path(folder), text)
        backfill = time.perf_counter() - began - server.startup_seconds
        del text
        client, sent = counting_client()
        try:
            return _measure(server, client, sent, t0, rollouts, runs, unbatched, backfill)
        finally:
            client.close()
            server.stop()


def _measure(
    server: PrometheusServer,
    client: httpx.Client,
    sent: Callable[[], int],
    t0: int,
    rollouts: int,
    runs: int,
    unbatched: int,
    backfill: float,
) -> SourceReadResult:
    context = SourceContext(env={}, http=client)
    began = time.perf_counter()
    sources = build_sources(server.url, range(rollouts), context, batched=True)
    build = time.perf_counter() - began
    ticks, requests, queries, sizes = [], set(), set(), set()
    for run in range(runs):
        end, before = t0 + FIRST_TICK + STEP * run, sent()
        tick = read_tick(sources, context, end)
        check(tick.results, range(rollouts), t0, end)
        ticks.append(tick)
        requests.add(sent() - before)
        queries.add(sum(result.queries for result in tick.results))
        sizes.add(sum(result.bytes_read for result in tick.results))
    if len(requests) != 1 or requests != queries:
        raise SystemExit(f"requests per tick differ: {requests} sent, {queries} counted")
    one_by_one = build_sources(server.url, range(unbatched), context, batched=False)
    end, before = t0 + FIRST_TICK, sent()
    alone = read_tick(one_by_one, context, end) if unbatched else Tick([], 0.0, 0.0, 0.0)
    check(alone.results, range(unbatched), t0, end)
    columns, walls = len(sources[0].columns()), [tick.wall_s for tick in ticks]
    return SourceReadResult(
        rollouts=rollouts,
        signals=len(RATIOS) + len(PLAINS),
        columns=columns,
        runs=runs,
        tick_s_median=statistics.median(walls),
        tick_s_max=max(walls),
        tick_cpu_s_median=statistics.median(tick.cpu_s for tick in ticks),
        first_read_s_median=statistics.median(tick.first_s for tick in ticks),
        requests_per_tick=requests.pop(),
        queries_per_tick=queries.pop(),
        bytes_per_tick=max(sizes),
        unbatched_rollouts=unbatched,
        unbatched_s=alone.wall_s,
        unbatched_requests=sent() - before,
        unbatched_bytes=sum(result.bytes_read for result in alone.results),
        unbatched_s_all=alone.wall_s * rollouts / unbatched if unbatched else 0.0,
        backfill_s=backfill,
        startup_s=server.startup_seconds,
        build_s=build,
        rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        target_s=TARGET_S,
        met=statistics.median(walls) < TARGET_S,
    )


def report(result: SourceReadResult) -> list[str]:
    r = result
    lines = [
        f"{r.rollouts:,} rollouts × {r.signals} signals ({r.columns} queries each) from one real Prometheus, "
        f"one tick, {r.runs} ticks:",
        f"  batched (`by (rollout)` + select): median {r.tick_s_median * 1000:.0f} ms, "
        f"max {r.tick_s_max * 1000:.0f} ms (CPU {r.tick_cpu_s_median * 1000:.0f} ms); "
        f"{r.requests_per_tick} HTTP requests per tick, {r.bytes_per_tick:,} bytes read",
        f"    of which the first rollout's read, which sends them all: median "
        f"{r.first_read_s_median * 1000:.0f} ms; the {r.rollouts - 1:,} others are served from memory",
    ]
    if r.unbatched_rollouts:
        lines.append(
            f"  unbatched (a query per rollout), {r.unbatched_rollouts:,} rollouts, one tick: "
            f"{r.unbatched_s:.2f} s, {r.unbatched_requests:,} HTTP requests, {r.unbatched_bytes:,} bytes read"
        )
        if r.unbatched_rollouts < r.rollouts:
            lines.append(
                f"    EXTRAPOLATED to {r.rollouts:,} rollouts (× {r.rollouts / r.unbatched_rollouts:g}): "
                f"~{r.unbatched_s_all:.1f} s, "
                f"{r.unbatched_requests * r.rollouts // r.unbatched_rollouts:,} requests"
            )
    lines += [
        f"  setup: backfill {r.backfill_s:.1f} s, Prometheus ready in {r.startup_s * 1000:.0f} ms, "
        f"{r.rollouts:,} sources built in {r.build_s:.1f} s; peak RSS {r.rss_mb:.0f} MB",
        f"  target: under {r.target_s:.0f} s — {'met' if r.met else 'NOT met'}",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7, help="ticks measured (at most 16)")
    parser.add_argument("--unbatched", type=int, help="rollouts read one query each (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args()
    unbatched = options.rollouts if options.unbatched is None else options.unbatched
    if not 1 <= options.runs <= 16 or not 0 <= unbatched <= options.rollouts:
        parser.error("--runs must be 1..16 and --unbatched 0..--rollouts")
    result = measure(options.rollouts, options.runs, unbatched)
    print(json.dumps(asdict(result)) if options.json else "\n".join(report(result)))


if __name__ == "__main__":
    main()
