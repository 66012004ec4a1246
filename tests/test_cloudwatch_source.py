"""The `cloudwatch` source with real boto3 GetMetricData calls against moto's server.

moto (started here on a free loopback port) stores put_metric_data and answers GetMetricData
over AWS JSON 1.0. What moto 5.2.5 does not do — NextToken paging, PartialData, and metric
math beyond an expression that is another query's id — is exercised with a scripted caller
standing in for adapters.aws.AwsClient (the same `call` interface).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from adapters.errors import AuthFailed, ConfigError, SignalError
from adapters.sources.cloudwatch import CloudWatchSettings, CloudWatchSource, build
from adapters.sources.registry import SOURCES, SourceContext, build_source

ACCESS_KEY, SECRET_KEY = "AKIDTIDEGATETEST0002", "tIdEgAtE/cLoUdWaTcH+kEy/0123456789abcdef"
ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "eu-west-1"}
T0 = float(int(time.time() // 3600) * 3600 - 3600)  # an hour ago, on the hour: whole periods
MINUTES = 5
REQUESTS = {"namespace": "Shop", "name": "Requests", "dimensions": {"Service": "checkout"}}
ERRORS = {"namespace": "Shop", "name": "Errors", "dimensions": {"Service": "checkout"}}
LATENCY = {"namespace": "Shop", "name": "Latency", "dimensions": {"Service": "checkout"}}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    seed(url)
    yield url
    server.stop()


def seed(url: str) -> None:
    """Minute k (k = 0..4): 100 + k requests, k errors, latency samples 10k and 10k + 20 ms."""
    aws: Any = boto3.client(
        "cloudwatch",
        endpoint_url=url,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )
    data = []
    for k in range(MINUTES):
        at = datetime.fromtimestamp(T0 + 60 * k + 10, UTC)
        dims = [{"Name": "Service", "Value": "checkout"}]
        data += [
            {"MetricName": "Requests", "Dimensions": dims, "Timestamp": at, "Value": 100.0 + k},
            {"MetricName": "Errors", "Dimensions": dims, "Timestamp": at, "Value": float(k)},
            {"MetricName": "Latency", "Dimensions": dims, "Timestamp": at, "Value": 10.0 * k},
            {"MetricName": "Latency", "Dimensions": dims, "Timestamp": at, "Value": 10.0 * k + 20},
        ]
    aws.put_metric_data(Namespace="Shop", MetricData=data)


def source(url: str, signals: dict[str, Any]) -> CloudWatchSource:
    settings = {"endpoint_url": url, "period": "1m", "signals": signals}
    built = build_source("cloudwatch", "cw", settings, SourceContext(env=ENV))
    assert isinstance(built, CloudWatchSource)
    return built


def minutes(*ks: int) -> list[float]:
    return [T0 + 60 * k for k in ks]


def test_cloudwatch_is_a_registered_kind() -> None:
    assert SOURCES["cloudwatch"] is build


def test_plain_signal_is_time_ordered(moto_url: str) -> None:
    src = source(moto_url, {"latency_avg": {"metric": LATENCY, "stat": "Average"}})
    result = src.read(T0 - 60, T0 + 60 * MINUTES)
    assert result.columns == {"latency_avg": (minutes(0, 1, 2, 3, 4), [10.0, 20.0, 30.0, 40.0, 50.0])}
    assert result.queries == 1


def test_moto_answers_newest_first_by_default(moto_url: str) -> None:
    """The ordering trap the source defends against: without ScanBy, newest first."""
    aws: Any = boto3.client(
        "cloudwatch",
        endpoint_url=moto_url,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    answer = aws.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "r",
                "MetricStat": {
                    "Metric": {"Namespace": "Shop", "MetricName": "Requests"},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=datetime.fromtimestamp(T0, UTC),
        EndTime=datetime.fromtimestamp(T0 + 300, UTC),
    )
    assert answer["MetricDataResults"][0]["Values"] == [104.0, 103.0, 102.0, 101.0, 100.0]


def test_ratio_signal_gives_num_and_den(moto_url: str) -> None:
    signals = {
        "error_rate": {"num": {"metric": ERRORS, "stat": "Sum"}, "den": {"metric": REQUESTS, "stat": "Sum"}}
    }
    result = source(moto_url, signals).read(T0 - 60, T0 + 60 * MINUTES)
    assert result.columns == {
        "error_rate:num": (minutes(0, 1, 2, 3, 4), [0.0, 1.0, 2.0, 3.0, 4.0]),
        "error_rate:den": (minutes(0, 1, 2, 3, 4), [100.0, 101.0, 102.0, 103.0, 104.0]),
    }


def test_expression_over_helper_metrics(moto_url: str) -> None:
    # moto evaluates only an expression that names another query; real CloudWatch does the math
    signals = {
        "peak_latency": {"expression": "lat", "metrics": {"lat": {"metric": LATENCY, "stat": "Maximum"}}},
        "requests": {"metric": REQUESTS, "stat": "Sum"},
    }
    src = source(moto_url, signals)
    result = src.read(T0 + 60, T0 + 300)  # (start, end]: the periods starting at minutes 2, 3, 4
    assert result.columns == {
        "peak_latency": (minutes(2, 3, 4), [40.0, 50.0, 60.0]),
        "requests": (minutes(2, 3, 4), [102.0, 103.0, 104.0]),
    }
    assert src.columns() == ["peak_latency", "requests"]
    queries = {q["Id"]: q for q in src._queries}
    assert queries["lat"]["ReturnData"] is False
    assert queries["tg_0"]["Expression"] == "lat"


def test_no_datapoints_is_no_sample(moto_url: str) -> None:
    src = source(moto_url, {"quiet": {"metric": {"namespace": "Shop", "name": "Nothing"}, "stat": "Sum"}})
    assert src.read(T0 - 60, T0 + 60 * MINUTES).columns == {"quiet": ([], [])}


def test_aws_errors_are_signal_errors() -> None:
    settings = CloudWatchSettings.model_validate({"signals": {"x": {"metric": REQUESTS, "stat": "Sum"}}})

    class Refusing:
        def call(self, operation: str, **params: Any) -> dict[str, Any]:
            raise AuthFailed(f"cloudwatch: {operation} → 403 AccessDenied: not allowed")

    with pytest.raises(SignalError, match=r"cloudwatch source 'cw' \(x\): .*AccessDenied"):
        CloudWatchSource("cw", settings, Refusing()).read(T0, T0 + 60)


class Scripted:
    """Pages of GetMetricData answers, newest first within each page, as CloudWatch sends them."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        assert operation == "get_metric_data"
        self.calls.append(dict(params))
        return self.pages[len(self.calls) - 1]


def page(ident: str, ks: list[int], values: list[float], status: str, token: str | None) -> dict[str, Any]:
    stamps = [datetime.fromtimestamp(T0 + 60 * k, UTC) for k in ks]
    answer: dict[str, Any] = {
        "MetricDataResults": [{"Id": ident, "Timestamps": stamps, "Values": values, "StatusCode": status}]
    }
    if token:
        answer["NextToken"] = token
    return answer


def scripted_source(pages: list[dict[str, Any]]) -> tuple[CloudWatchSource, Scripted]:
    settings = CloudWatchSettings.model_validate({"signals": {"req": {"metric": REQUESTS, "stat": "Sum"}}})
    caller = Scripted(pages)
    return CloudWatchSource("cw", settings, caller), caller


def test_pages_through_next_token_and_orders_by_time() -> None:
    src, caller = scripted_source(
        [
            page("tg_0", [4, 3], [104.0, 103.0], "PartialData", "t1"),
            page("tg_0", [2, 1], [102.0, 101.0], "PartialData", "t2"),
            page("tg_0", [0], [100.0], "Complete", None),
        ]
    )
    result = src.read(T0 - 60, T0 + 300)
    assert result.columns == {"req": (minutes(0, 1, 2, 3, 4), [100.0, 101.0, 102.0, 103.0, 104.0])}
    assert result.queries == 3
    assert [c.get("NextToken") for c in caller.calls] == [None, "t1", "t2"]
    assert caller.calls[0]["ScanBy"] == "TimestampAscending"


def test_partial_data_at_the_end_is_a_signal_error() -> None:
    src, _ = scripted_source([page("tg_0", [1], [1.0], "PartialData", None)])
    with pytest.raises(SignalError, match="signal 'req': GetMetricData status PartialData"):
        src.read(T0, T0 + 300)


def test_internal_error_is_a_signal_error() -> None:
    src, _ = scripted_source([page("tg_0", [], [], "InternalError", None)])
    with pytest.raises(SignalError, match="status InternalError"):
        src.read(T0, T0 + 300)


@pytest.mark.parametrize(
    "signal",
    [
        {"metric": REQUESTS},  # no stat
        {"metric": REQUESTS, "stat": "Sum", "expression": "m1"},
        {"num": {"metric": REQUESTS, "stat": "Sum"}},
        {"expression": "e", "metrics": {"E": {"metric": REQUESTS, "stat": "Sum"}}},
        {"metric": REQUESTS, "stat": "Sum", "colour": "red"},
    ],
)
def test_bad_signals_are_config_errors(signal: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        build("cw", {"signals": {"s": signal}}, SourceContext(env=ENV))


def test_period_must_be_one_cloudwatch_allows() -> None:
    with pytest.raises(ConfigError, match="period"):
        build("cw", {"period": "90s", "signals": {"s": {"metric": REQUESTS, "stat": "Sum"}}}, SourceContext())
