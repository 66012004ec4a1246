"""Many rollouts, one Prometheus query: `select:` and the shared PrometheusBatcher.

Against a real Prometheus with backfilled history, starting at T0 (a whole hour 5 h ago),
for three rollouts `checkout-1..3` (and none for `checkout-9`):
- `tg_roll_requests_total{rollout, code="200"|"500"}`: counters scraped every 10 s for 20 min;
- `tg_roll_latency_seconds{rollout}`: a gauge sampled every 30 s.
Requests are counted by an httpx event hook on the client: what really went out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping

import httpx
import pytest

from adapters.errors import ConfigError, SignalError
from adapters.http import RetryPolicy, VendorHttp
from adapters.sources.prometheus import PrometheusSettings, PrometheusSource, build
from adapters.sources.prometheus_batch import Answer, PrometheusBatcher, RangeKey
from adapters.sources.registry import SourceContext
from tests.prometheus_server import PrometheusServer, free_port, require_prometheus

T0 = (int(time.time()) // 3600 - 5) * 3600
ROLLOUTS = ("checkout-1", "checkout-2", "checkout-3")
SCRAPES = 121  # every 10 s, T0 .. T0 + 1200
BATCHED = {
    "latency": "max by (rollout) (tg_roll_latency_seconds)",
    "error_rate": {
        "num": 'sum by (rollout) (increase(tg_roll_requests_total{code="500"}[30s]))',
        "den": "sum by (rollout) (increase(tg_roll_requests_total[30s]))",
    },
}


def alone(rollout: str) -> dict[str, object]:
    """The same three queries written for one rollout, as before `select` existed."""
    return {
        "latency": f'max(tg_roll_latency_seconds{{rollout="{rollout}"}})',
        "error_rate": {
            "num": f'sum(increase(tg_roll_requests_total{{rollout="{rollout}",code="500"}}[30s]))',
            "den": f'sum(increase(tg_roll_requests_total{{rollout="{rollout}"}}[30s]))',
        },
    }


def latency(r: int, j: int) -> float:
    return r * 10 + j * 0.5


def errors(r: int, j: int) -> float:
    """Code-500 requests of rollout r in the step ending at T0 + 30 j (scrapes 3j-2 .. 3j)."""
    return float(sum(i % (r + 2) for i in range(3 * j - 2, 3 * j + 1)))


def openmetrics() -> str:
    lines = ["# TYPE tg_roll_latency_seconds gauge"]
    for r, rollout in enumerate(ROLLOUTS):
        lines += [
            f'tg_roll_latency_seconds{{rollout="{rollout}"}} {latency(r, j)!r} {T0 + 30 * j}'
            for j in range(41)
        ]
    lines.append("# TYPE tg_roll_requests counter")
    for r, rollout in enumerate(ROLLOUTS):
        for code in ("200", "500"):
            total = 0
            for i in range(SCRAPES):
                total += (5 + r) if code == "200" else i % (r + 2)
                lines.append(
                    f'tg_roll_requests_total{{rollout="{rollout}",code="{code}"}} {total} {T0 + 10 * i}'
                )
    return "\n".join([*lines, "# EOF", ""])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer.start(tmp_path_factory.mktemp("prometheus-batch"), openmetrics())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def counted() -> Iterator[tuple[httpx.Client, list[httpx.Request]]]:
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}) as client:
        yield client, sent


def source(
    context: SourceContext, url: str, signals: Mapping[str, object], name: str = "metrics", **extra: object
) -> PrometheusSource:
    return build(name, {"url": url, "step": "30s", "signals": signals, **extra}, context)


def test_batched_reads_equal_per_rollout_reads(prometheus: PrometheusServer) -> None:
    shared = SourceContext(env={})
    for r, rollout in enumerate(ROLLOUTS):
        batched = source(shared, prometheus.url, BATCHED, select={"rollout": rollout})
        unbatched = source(SourceContext(env={}), prometheus.url, alone(rollout))
        for start, end in [(T0 - 60, T0 + 900), (T0 + 300, T0 + 330), (T0 + 1140, T0 + 1500)]:
            got, want = batched.read(start, end), unbatched.read(start, end)
            assert got.columns == want.columns, (rollout, start, end)
        whole = batched.read(T0 - 60, T0 + 900).columns
        assert whole["latency"] == (
            [float(T0 + 30 * j) for j in range(31)],
            [latency(r, j) for j in range(31)],
        )
        # (T0, T0+900]: T0 itself has no increase, so no value; then the exact per-step counts.
        assert whole["error_rate:num"] == (
            [float(T0 + 30 * j) for j in range(1, 31)],
            [errors(r, j) for j in range(1, 31)],
        )
        assert whole["error_rate:den"][1] == [3.0 * (5 + r) + errors(r, j) for j in range(1, 31)]


def test_rollouts_sharing_queries_issue_one_request_per_distinct_query(
    prometheus: PrometheusServer, counted: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    client, sent = counted
    context = SourceContext(env={}, http=client)
    sources = [source(context, prometheus.url, BATCHED, select={"rollout": r}) for r in ROLLOUTS * 20]
    with context.prometheus.tick():
        results = [s.read(T0 + 600, T0 + 630) for s in sources]
    assert len(sent) == 3  # latency, error_rate:num, error_rate:den — for 60 rollouts
    assert sum(result.queries for result in results) == 3
    assert [result.queries for result in results[:2]] == [3, 0]
    assert sum(result.bytes_read for result in results) == results[0].bytes_read > 0
    assert all(len(result.columns["latency"][0]) == 1 for result in results)
    assert len(context.prometheus) == 0  # dropped when the tick ended
    with context.prometheus.tick():
        for s in sources:
            s.read(T0 + 630, T0 + 660)
    assert len(sent) == 6  # the next tick is another window: asked anew, once


def test_a_different_credential_is_a_different_request(
    prometheus: PrometheusServer, counted: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    client, sent = counted
    context = SourceContext(env={"TOKEN_A": "token-a", "TOKEN_B": "token-b"}, http=client)
    plain = {"latency": BATCHED["latency"]}
    for token in ("TOKEN_A", "TOKEN_A", "TOKEN_B"):
        source(context, prometheus.url, plain, select={"rollout": "checkout-1"}, token_env=token).read(
            T0 + 600, T0 + 630
        )
    assert [request.headers["authorization"] for request in sent] == ["Bearer token-a", "Bearer token-b"]


def test_sources_reading_at_once_wait_for_one_request(
    prometheus: PrometheusServer, counted: tuple[httpx.Client, list[httpx.Request]]
) -> None:
    client, sent = counted
    context = SourceContext(env={}, http=client)
    sources = [source(context, prometheus.url, BATCHED, select={"rollout": r}) for r in ROLLOUTS * 4]
    ready = threading.Barrier(len(sources))
    results: list[object] = [None] * len(sources)

    def read(i: int) -> None:
        ready.wait()
        results[i] = sources[i].read(T0 + 600, T0 + 660).columns

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(sources))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(sent) == 3
    one_by_one = [source(SourceContext(env={}), prometheus.url, alone(r)) for r in ROLLOUTS * 4]
    assert results == [s.read(T0 + 600, T0 + 660).columns for s in one_by_one]


def test_a_rollout_without_data_has_no_samples_not_zeros(prometheus: PrometheusServer) -> None:
    result = source(SourceContext(env={}), prometheus.url, BATCHED, select={"rollout": "checkout-9"}).read(
        T0, T0 + 600
    )
    assert result.columns == {"latency": ([], []), "error_rate:num": ([], []), "error_rate:den": ([], [])}


def test_two_series_matching_select_are_an_error(prometheus: PrometheusServer) -> None:
    reader = source(
        SourceContext(env={}),
        prometheus.url,
        {"requests": "tg_roll_requests_total"},
        select={"rollout": "checkout-2"},
    )
    with pytest.raises(SignalError) as raised:
        reader.read(T0, T0 + 300)
    assert str(raised.value) == (
        "source 'metrics' (prometheus): query 'tg_roll_requests_total': returned 2 series matching "
        "select {'rollout': 'checkout-2'}, expected one (group by (rollout))"
    )


def test_a_query_without_the_selected_label_is_an_error(prometheus: PrometheusServer) -> None:
    reader = source(
        SourceContext(env={}),
        prometheus.url,
        {"latency": "max(tg_roll_latency_seconds)"},
        select={"rollout": "x"},
    )
    with pytest.raises(SignalError, match=r"query 'max\(tg_roll_latency_seconds\)': no series has the label"):
        reader.read(T0, T0 + 300)


def test_batched_nan_is_dropped_and_long_windows_are_split(prometheus: PrometheusServer) -> None:
    context = SourceContext(env={})
    broken = source(context, prometheus.url, {"x": "max by (rollout) (tg_roll_latency_seconds) / 0"},
                    select={"rollout": "checkout-2"})  # fmt: skip
    assert broken.read(T0 - 30, T0 + 300).columns == {"x": ([], [])}
    settings = {"url": prometheus.url, "step": "1s"}
    select = {"rollout": "checkout-3"}
    batched = build("m", {**settings, "select": select, "signals": {"latency": BATCHED["latency"]}}, context)
    one = build(
        "m", {**settings, "signals": {"latency": alone("checkout-3")["latency"]}}, SourceContext(env={})
    )
    got = batched.read(T0 - 1, T0 + 12_000)
    assert got.queries == 2  # 12,000 one-second points: over the 11,000 per query limit
    assert got.columns == one.read(T0 - 1, T0 + 12_000).columns
    assert got.columns["latency"][1][60] == latency(2, 2)


def test_a_failure_is_shared_and_named_by_each_source() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    waits: list[float] = []
    batcher, names = PrometheusBatcher(), ("one", "two", "three")
    settings = PrometheusSettings.model_validate(
        {"url": url, "select": {"rollout": "a"}, "signals": {"up": "up"}}
    )
    messages = []
    with httpx.Client() as client:
        https = [
            VendorHttp(
                client,
                vendor=f"prometheus source {name!r}",
                base_url=url,
                retry=RetryPolicy(attempts=3, initial=0.01),
                sleep=waits.append,
            )
            for name in names
        ]
        for name, http in zip(names, https, strict=True):
            with pytest.raises(SignalError) as raised:
                PrometheusSource(name, settings, http, batcher).read(T0, T0 + 60)
            messages.append(str(raised.value))
    assert [http.calls for http in https] == [3, 0, 0]  # the dead server is asked (and retried) once
    for name, message in zip(names, messages, strict=True):
        assert message.startswith(
            f"source '{name}' (prometheus): query 'up': POST /api/v1/query_range failed"
        )
        assert [other for other in names if f"'{other}'" in message] == [name]


def test_select_must_name_labels() -> None:
    with pytest.raises(ConfigError, match=r"select: '1x' is not a Prometheus label name"):
        source(SourceContext(env={}), "http://127.0.0.1:9", {"x": "up"}, select={"1x": "a"})
    with pytest.raises(ConfigError, match=r"select: "):
        source(SourceContext(env={}), "http://127.0.0.1:9", {"x": "up"}, select={})


# --- the batcher on its own: keys, waiting, expiry, bounds -----------------------------------


def key(query: str = "q", start: float = 0.0) -> RangeKey:
    return RangeKey("http://p", "id", query, start, 60.0, 30.0)


def loader(answer: Answer, calls: list[int]) -> Callable[[], Answer]:
    def load() -> Answer:
        calls.append(1)
        return answer

    return load


def test_readers_of_a_key_in_flight_wait_for_its_one_request() -> None:
    batcher, release, calls = PrometheusBatcher(), threading.Event(), []
    answer = Answer([], size=10)

    def slow() -> Answer:
        calls.append(1)
        assert release.wait(10)
        return answer

    got: list[tuple[Answer, bool]] = []
    threads = [threading.Thread(target=lambda: got.append(batcher.fetch(key(), slow))) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while batcher.shared < 5 and time.monotonic() < deadline:  # five readers now wait on the one
        release.wait(0.01)
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert calls == [1]
    assert sorted(sent for _, sent in got) == [False] * 5 + [True]
    assert all(a is answer for a, _ in got)


def test_a_reader_whose_leader_failed_makes_the_request_itself() -> None:
    batcher, started, release = PrometheusBatcher(), threading.Event(), threading.Event()

    def broken() -> Answer:
        started.set()
        assert release.wait(10)
        raise KeyboardInterrupt  # not an Answer: nothing is stored for the others

    def leader() -> None:
        with pytest.raises(KeyboardInterrupt):
            batcher.fetch(key(), broken)

    first = threading.Thread(target=leader)
    first.start()
    assert started.wait(10)
    got: list[tuple[Answer, bool]] = []
    second = threading.Thread(target=lambda: got.append(batcher.fetch(key(), lambda: Answer(size=1))))
    second.start()
    deadline = time.monotonic() + 10
    while batcher.shared < 1 and time.monotonic() < deadline:
        release.wait(0.01)
    release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert got[0][1] is True and got[0][0].size == 1


def test_answers_expire_after_ttl_and_stay_within_max_bytes() -> None:
    now = [0.0]
    batcher, calls = PrometheusBatcher(ttl=10, max_bytes=250, clock=lambda: now[0]), []
    load = loader(Answer(size=100), calls)
    batcher.fetch(key(), load)
    now[0] = 9.9
    assert batcher.fetch(key(), load) == (Answer(size=100), False)
    now[0] = 10.0
    assert batcher.fetch(key(), load)[1] is True  # expired: asked again
    batcher.fetch(key(start=30), load)
    batcher.fetch(key(start=60), load)  # 300 bytes > 250: the oldest goes
    assert len(batcher) == 2
    assert batcher.fetch(key(start=60), load)[1] is False
    assert batcher.fetch(key(), load)[1] is True  # it was dropped; kept again, start=30 goes
    batcher.fetch(key("huge"), loader(Answer(size=251), calls))  # larger than the bound: not kept
    assert batcher.fetch(key("huge"), load)[1] is True
    assert len(calls) == 7


def test_a_batcher_without_ttl_only_coalesces_concurrent_reads() -> None:
    batcher, calls = PrometheusBatcher(ttl=0), []
    batcher.fetch(key(), loader(Answer(), calls))
    batcher.fetch(key(), loader(Answer(), calls))
    assert len(calls) == 2 and len(batcher) == 0
