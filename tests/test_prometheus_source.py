"""The `prometheus` source against a real Prometheus with backfilled, known history.

History (OpenMetrics, backfilled with promtool), starting at T0, a whole hour 6 h ago:
- `tg_latency_seconds{job="web"}`: a gauge sampled every 30 s, value j * 0.25 at T0 + 30 j;
- `tg_requests_total{code="200"|"500"}`: counters scraped every 10 s for 30 minutes.
Expected values are computed here from the same numbers, not read back from Prometheus.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping

import httpx
import pytest

from adapters.errors import SignalError
from adapters.http import RetryPolicy, VendorHttp
from adapters.sources.prometheus import PrometheusSettings, PrometheusSource, build
from adapters.sources.registry import SourceContext
from tests.fakes.server import FakeVendor, Reply, Request
from tests.prometheus_server import PrometheusServer, free_port, require_prometheus

T0 = (int(time.time()) // 3600 - 6) * 3600
STEP = 30
GAUGE_POINTS = 61  # T0 .. T0 + 1800
SCRAPES = 181  # every 10 s, T0 .. T0 + 1800
ERRORS = 'sum(increase(tg_requests_total{code=~"5.."}[30s]))'
REQUESTS = "sum(increase(tg_requests_total[30s]))"


def gauge(j: int) -> float:
    return j * 0.25


def counter(code: str, i: int) -> float:
    """The counter's value at scrape i (T0 + 10 i): a sum of known per-scrape increments."""
    return float(sum(7 if code == "200" else k % 5 for k in range(1, i + 1)))


def openmetrics() -> str:
    lines = ["# HELP tg_latency_seconds p95 latency", "# TYPE tg_latency_seconds gauge"]
    lines += [f'tg_latency_seconds{{job="web"}} {gauge(j)!r} {T0 + STEP * j}' for j in range(GAUGE_POINTS)]
    lines += ["# HELP tg_requests requests served", "# TYPE tg_requests counter"]
    for code in ("200", "500"):
        lines += [
            f'tg_requests_total{{code="{code}"}} {counter(code, i)!r} {T0 + 10 * i}' for i in range(SCRAPES)
        ]
    return "\n".join([*lines, "# EOF", ""])


def expected_step_count(codes: tuple[str, ...], j: int) -> float:
    """Events in the step ending at T0 + 30 j: the counters' difference over that step."""
    return sum(counter(code, 3 * j) - counter(code, 3 * (j - 1)) for code in codes)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer.start(tmp_path_factory.mktemp("prometheus"), openmetrics())
    try:
        yield server
    finally:
        server.stop()


def source(url: str, signals: Mapping[str, object], **extra: object) -> PrometheusSource:
    return build("metrics", {"url": url, "step": "30s", "signals": signals, **extra}, SourceContext(env={}))


def test_plain_read_returns_exact_values_on_the_step_grid(prometheus: PrometheusServer) -> None:
    result = source(prometheus.url, {"latency_p95": "tg_latency_seconds"}).read(T0 - 30, T0 + 300)
    times, values = result.columns["latency_p95"]
    assert times == [float(T0 + STEP * j) for j in range(11)]
    assert values == [gauge(j) for j in range(11)]  # "0.25" parsed from strings, exactly
    assert result.queries == 1
    assert result.bytes_read > 0


def test_ratio_read_returns_per_step_counts(prometheus: PrometheusServer) -> None:
    ratio = {"error_rate": {"num": ERRORS, "den": REQUESTS}}
    result = source(prometheus.url, ratio).read(T0 - 60, T0 + 600)
    num_times, num = result.columns["error_rate:num"]
    den_times, den = result.columns["error_rate:den"]
    # At T0 the [30s] range holds one sample: no increase, so no value (not a zero).
    assert num_times == den_times == [float(T0 + STEP * j) for j in range(1, 21)]
    assert num == [expected_step_count(("500",), j) for j in range(1, 21)]
    assert den == [expected_step_count(("200", "500"), j) for j in range(1, 21)]
    assert result.queries == 2
    assert source(prometheus.url, ratio).columns() == ["error_rate:num", "error_rate:den"]


def test_an_empty_result_is_no_samples_not_zero(prometheus: PrometheusServer) -> None:
    result = source(prometheus.url, {"absent": "tg_no_such_metric"}).read(T0, T0 + 600)
    assert result.columns == {"absent": ([], [])}
    before = source(prometheus.url, {"latency": "tg_latency_seconds"}).read(T0 - 3600, T0 - 600)
    assert before.columns == {"latency": ([], [])}


def test_nan_and_infinite_samples_are_dropped(prometheus: PrometheusServer) -> None:
    # 0/0 at T0 is NaN, j*0.25/0 afterwards is +Inf: none of it is a value.
    result = source(prometheus.url, {"broken": "tg_latency_seconds / 0"}).read(T0 - 30, T0 + 300)
    assert result.columns == {"broken": ([], [])}


def test_bad_promql_is_a_signal_error_naming_the_source_and_query(prometheus: PrometheusServer) -> None:
    with pytest.raises(SignalError) as raised:
        source(prometheus.url, {"bad": "sum(tg_latency_seconds"}).read(T0, T0 + 300)
    message = str(raised.value)
    assert message.startswith("source 'metrics' (prometheus): query 'sum(tg_latency_seconds': ")
    assert "400" in message and "parse error" in message


def test_several_series_are_an_error_asking_for_aggregation(prometheus: PrometheusServer) -> None:
    with pytest.raises(SignalError, match=r"query 'tg_requests_total': returned 2 series, expected one"):
        source(prometheus.url, {"requests": "tg_requests_total"}).read(T0, T0 + 300)


def test_a_closed_port_is_a_signal_error_after_bounded_retries() -> None:
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    with httpx.Client() as client:
        http = VendorHttp(
            client,
            vendor="prometheus",
            base_url=url,
            retry=RetryPolicy(attempts=3, initial=0.01),
            sleep=waits.append,
        )
        settings = PrometheusSettings.model_validate({"url": url, "signals": {"latency": "up"}})
        with pytest.raises(SignalError, match=r"^source 'metrics' \(prometheus\): query 'up': "):
            PrometheusSource("metrics", settings, http).read(T0, T0 + 60)
    assert http.calls == 3
    assert len(waits) == 2


def test_incremental_reads_return_every_sample_exactly_once(prometheus: PrometheusServer) -> None:
    signals = {"latency": "tg_latency_seconds", "error_rate": {"num": ERRORS, "den": REQUESTS}}
    reader = source(prometheus.url, signals)
    whole = reader.read(T0 - 30, T0 + 900)
    # Window edges on the grid, between grid points, and a window holding no grid point at all.
    edges = [T0 - 30, T0, T0 + 30, T0 + 45, T0 + 59.5, T0 + 60, T0 + 61, T0 + 200, T0 + 600, T0 + 900]
    pieces = [reader.read(a, b) for a, b in itertools.pairwise(edges)]
    for column, (times, values) in whole.columns.items():
        joined_times = [t for piece in pieces for t in piece.columns[column][0]]
        joined_values = [v for piece in pieces for v in piece.columns[column][1]]
        assert joined_times == times, column
        assert joined_values == values, column
        assert len(set(joined_times)) == len(joined_times)
    # (T0+30, T0+45] and (T0+45, T0+59.5] hold no grid point: no query, no samples.
    assert pieces[2].queries == pieces[3].queries == 0
    assert pieces[3].columns["latency"] == ([], [])
    assert pieces[4].columns["latency"] == ([T0 + 60.0], [gauge(2)])  # (T0+59.5, T0+60]


def test_a_boundary_sample_belongs_to_the_window_it_ends(prometheus: PrometheusServer) -> None:
    reader = source(prometheus.url, {"latency": "tg_latency_seconds"})
    assert reader.read(T0, T0 + 60).columns["latency"] == ([T0 + 30.0, T0 + 60.0], [gauge(1), gauge(2)])


def test_a_window_beyond_the_point_limit_is_split(prometheus: PrometheusServer) -> None:
    # 12,000 one-second points: one query would be refused (11,000 points per series at most).
    reader = build(
        "metrics",
        {"url": prometheus.url, "step": "1s", "signals": {"latency": "tg_latency_seconds"}},
        SourceContext(env={}),
    )
    result = reader.read(T0 - 1, T0 + 12_000)
    times, values = result.columns["latency"]
    assert result.queries == 2
    # The 5-minute lookback repeats the last sample until T0 + 1800 + 300.
    assert times == [float(T0 + s) for s in range(0, 2101)]
    assert values[:31] == [0.0] * 30 + [gauge(1)]


class EchoingAuth(FakeVendor):
    """A proxy that refuses every request and quotes its Authorization header back."""

    def authorize(self, request: Request) -> Reply | None:
        said = request.headers.get("authorization", "")
        return Reply(401, {"status": "error", "errorType": "auth", "error": f"refused {said}"})


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_credentials_are_never_in_errors(auth: str) -> None:
    token = "s3cr3t-token-value-9f8e7d"
    env = {"PROM_TOKEN": token}
    creds: dict[str, object] = (
        {"token_env": "PROM_TOKEN"} if auth == "bearer" else {"username": "ops", "password_env": "PROM_TOKEN"}
    )
    with EchoingAuth() as fake:
        settings = {"url": fake.url, "signals": {"latency": "up"}, **creds}
        with httpx.Client() as client, pytest.raises(SignalError) as raised:
            build("metrics", settings, SourceContext(env=env, http=client)).read(T0, T0 + 60)
        sent = fake.requests[0].headers["authorization"]
    message = str(raised.value)
    assert "401" in message and "refused" in message
    assert token not in message
    assert sent.split()[1] not in message  # nor the base64 of user:password
    assert sent.startswith("Bearer " if auth == "bearer" else "Basic ")


class Answers(FakeVendor):
    def __init__(self, body: object) -> None:
        super().__init__()
        self.body = body
        self.route("POST", r"/api/v1/query_range", lambda request: Reply(200, self.body))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>proxy error</html>", "the answer is not JSON"),
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "expected a matrix"),
        ({"status": "success", "data": {"resultType": "matrix", "result": {}}}, "result is not a list"),
        ({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}}]}}, "no values"),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": [{"values": [[1, 0.5]]}]}},
            "malformed sample",
        ),
        ({"status": "error", "error": "boom"}, "status is not success: 'boom'"),
    ],
)
def test_malformed_answers_are_signal_errors(body: object, reason: str) -> None:
    with Answers(body) as fake, httpx.Client() as client:
        reader = build(
            "metrics", {"url": fake.url, "signals": {"x": "up"}}, SourceContext(env={}, http=client)
        )
        with pytest.raises(SignalError, match=rf"^source 'metrics' \(prometheus\): query 'up': .*{reason}"):
            reader.read(0, 60)


def test_string_values_are_parsed_and_non_finite_ones_dropped() -> None:
    values = [[30, "1.5"], [60, "NaN"], [90, "+Inf"], [120, "-Inf"], [150, "2e-3"]]
    body = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]},
    }
    with Answers(body) as fake, httpx.Client() as client:
        reader = build(
            "metrics", {"url": fake.url, "signals": {"x": "up"}}, SourceContext(env={}, http=client)
        )
        result = reader.read(0, 150)
        form = fake.requests[0].body.decode()
    assert result.columns == {"x": ([30.0, 150.0], [1.5, 0.002])}
    assert form == "query=up&start=30&end=150&step=30"  # (0, 150]: the first grid point after 0


def test_settings_expose_step_and_staleness_in_seconds() -> None:
    reader = source("http://127.0.0.1:9", {"x": "up"}, staleness="2m")
    assert (reader.step, reader.staleness) == (30.0, 120.0)
