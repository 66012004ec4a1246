"""AWS CloudWatch (kind `cloudwatch`): GetMetricData per read, metric stats and metric math.

    sources:
      - name: cw
        kind: cloudwatch
        settings:
          region: eu-west-1                   # else AWS_REGION / AWS_DEFAULT_REGION / the profile's
          period: 1m                          # 1s, 5s, 10s, 30s or a multiple of 1m
          signals:
            latency_p95:                      # a metric stat
              metric: {namespace: AWS/ApplicationELB, name: TargetResponseTime,
                       dimensions: {LoadBalancer: app/shop/50dc6c495c0c9188}}
              stat: p95
            error_rate:                       # a ratio: two queries, columns error_rate:num / :den
              num: {metric: {namespace: Shop, name: Errors}, stat: Sum}
              den: {metric: {namespace: Shop, name: Requests}, stat: Sum}
            error_pct:                        # metric math over helper queries (not returned)
              expression: 100 * errors / requests
              metrics:
                errors: {metric: {namespace: Shop, name: Errors}, stat: Sum}
                requests: {metric: {namespace: Shop, name: Requests}, stat: Sum}

Credentials as for every AWS adapter (adapters/aws.py): AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the environment, else `profile`, else boto3's
chain; `endpoint_url` points boto3 elsewhere (tests: moto). Needs `cloudwatch:GetMetricData`.

A read(start, end) is one GetMetricData request for all signals (more when it pages through
NextToken), with ScanBy=TimestampAscending — CloudWatch's default is newest first — and the
samples are sorted by time regardless. A datapoint is stamped with CloudWatch's timestamp,
the start of its period; the read keeps those in (start, end]. Missing datapoints are simply
absent (no sample, never a zero). A result whose StatusCode is not Complete once paging is
done (PartialData, InternalError, Forbidden), or any AWS error, is a `SignalError` naming the
source and the signal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters.aws import AwsClient
from adapters.errors import ActuatorError, ConfigError, SignalError
from adapters.sources.base import SOURCE_RETRY, Columns, ReadResult
from policies.durations import parse_duration

if TYPE_CHECKING:  # the registry imports this module, not the other way round
    from adapters.sources.registry import SourceContext

_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
_RESERVED = "tg_"  # our generated query ids; helper ids must not use it
MAX_PAGES = 100


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    dimensions: dict[str, str] = Field(default_factory=dict)


class MetricQuery(BaseModel):
    """A metric stat, or a metric-math `expression` over the `metrics` it names by id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric | None = None
    stat: str | None = None  # Sum, Average, Maximum, p99, …
    unit: str | None = None
    expression: str | None = None
    metrics: dict[str, MetricQuery] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> MetricQuery:
        if isinstance(self, SignalQuery) and self.num is not None:
            return self  # a ratio: num and den are checked on their own
        if (self.metric is None) == (self.expression is None):
            raise ValueError("give either `metric` (with `stat`) or `expression`")
        if self.metric is not None and not self.stat:
            raise ValueError("`metric` needs a `stat` (Sum, Average, p99, …)")
        if self.metric is not None and self.metrics:
            raise ValueError("`metrics` (helper queries) go with an `expression`")
        for ident, helper in self.metrics.items():
            if _ID.match(ident) is None or ident.startswith(_RESERVED):
                raise ValueError(
                    f"helper id {ident!r} must match ^[a-z][a-zA-Z0-9_]*$ and not start with tg_"
                )
            if helper.metric is None:
                raise ValueError(f"helper {ident!r} must be a metric stat")
        return self


class SignalQuery(MetricQuery):
    """A plain signal (one MetricQuery) or a ratio (`num` and `den`)."""

    num: MetricQuery | None = None
    den: MetricQuery | None = None

    @model_validator(mode="before")
    @classmethod
    def _ratio_has_no_plain_part(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("num" in data or "den" in data):
            if "num" not in data or "den" not in data:
                raise ValueError("a ratio signal needs both `num` and `den`")
            extra = sorted(set(data) - {"num", "den"})
            if extra:
                raise ValueError(f"a ratio signal has only `num` and `den`, not {', '.join(extra)}")
        return data


class CloudWatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    period: str = "1m"
    signals: dict[str, SignalQuery] = Field(min_length=1)

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        seconds = parse_duration(value)
        if seconds not in (1, 5, 10, 30) and (seconds < 60 or seconds % 60):
            raise ValueError("must be 1s, 5s, 10s, 30s or a multiple of 1m")
        return value

    @model_validator(mode="after")
    def _helper_ids_unique(self) -> CloudWatchSettings:
        seen: dict[str, str] = {}
        for signal, query in self.signals.items():
            for part in (query.num, query.den) if query.num is not None else (query,):
                assert part is not None
                for ident in part.metrics:
                    if ident in seen:
                        raise ValueError(f"helper id {ident!r} is used by {seen[ident]!r} and {signal!r}")
                    seen[ident] = signal
        return self

    def period_seconds(self) -> int:
        return int(parse_duration(self.period))


class Caller(Protocol):
    def call(self, operation: str, **params: Any) -> dict[str, Any]: ...


class CloudWatchSource:
    def __init__(self, name: str, settings: CloudWatchSettings, aws: Caller) -> None:
        self._name = name
        self.settings = settings
        self._aws = aws
        self._queries, self._columns = self._plan()

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> list[str]:
        return list(self.settings.signals)

    def read(self, start: float, end: float) -> ReadResult:
        params: dict[str, Any] = {
            "MetricDataQueries": self._queries,
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end + 1, UTC),  # EndTime is exclusive; ours is inclusive
            "ScanBy": "TimestampAscending",
        }
        points: dict[str, list[tuple[float, float]]] = {ident: [] for ident in self._columns}
        status: dict[str, str] = {}
        pages = 0
        while True:
            pages += 1
            try:
                answer = self._aws.call("get_metric_data", **params)
            except ActuatorError as error:
                raise SignalError(f"{self._where()} ({', '.join(self.settings.signals)}): {error}") from None
            for result in answer.get("MetricDataResults", []):
                ident = str(result.get("Id", ""))
                if ident not in points:
                    continue
                stamps, values = result.get("Timestamps", []), result.get("Values", [])
                if len(stamps) != len(values):
                    raise SignalError(f"{self._where()} signal {self._signal(ident)!r}: timestamps ≠ values")
                points[ident].extend((_seconds(t), float(v)) for t, v in zip(stamps, values, strict=True))
                status[ident] = str(result.get("StatusCode", "Complete"))
                if status[ident] not in ("Complete", "PartialData"):
                    raise SignalError(self._status_error(ident, status[ident], result))
            token = answer.get("NextToken")
            if not token:
                break
            if pages >= MAX_PAGES:
                raise SignalError(f"{self._where()}: more than {MAX_PAGES} pages of GetMetricData")
            params["NextToken"] = token
        for ident, code in status.items():
            if code != "Complete":
                raise SignalError(self._status_error(ident, code, {}))
        columns: Columns = {}
        for ident, column in self._columns.items():
            kept = sorted((t, v) for t, v in points[ident] if start < t <= end)
            columns[column] = ([t for t, _ in kept], [v for _, v in kept])
        return ReadResult(columns=columns, queries=pages)

    def _plan(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The MetricDataQueries for every signal, and which returned id is which column."""
        period = self.settings.period_seconds()
        queries: list[dict[str, Any]] = []
        columns: dict[str, str] = {}
        for index, (signal, query) in enumerate(self.settings.signals.items()):
            parts = [("num", query.num), ("den", query.den)] if query.num is not None else [("", query)]
            for part, metric_query in parts:
                assert metric_query is not None
                ident = f"{_RESERVED}{index}{'_' + part if part else ''}"
                columns[ident] = f"{signal}:{part}" if part else signal
                for helper_id, helper in metric_query.metrics.items():
                    queries.append(_query(helper_id, helper, period, returned=False))
                queries.append(_query(ident, metric_query, period, returned=True))
        return queries, columns

    def _signal(self, ident: str) -> str:
        return self._columns.get(ident, ident).partition(":")[0]

    def _status_error(self, ident: str, code: str, result: Mapping[str, Any]) -> str:
        messages = "; ".join(f"{m.get('Code')}: {m.get('Value')}" for m in result.get("Messages", []))
        detail = f" ({messages})" if messages else ""
        return f"{self._where()} signal {self._signal(ident)!r}: GetMetricData status {code}{detail}"

    def _where(self) -> str:
        return f"cloudwatch source {self._name!r}"


def _query(ident: str, query: MetricQuery, period: int, *, returned: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"Id": ident, "ReturnData": returned}
    if query.metric is not None:
        metric: dict[str, Any] = {"Namespace": query.metric.namespace, "MetricName": query.metric.name}
        if query.metric.dimensions:
            metric["Dimensions"] = [{"Name": k, "Value": v} for k, v in query.metric.dimensions.items()]
        stat: dict[str, Any] = {"Metric": metric, "Period": period, "Stat": query.stat}
        if query.unit:
            stat["Unit"] = query.unit
        body["MetricStat"] = stat
    else:
        body["Expression"] = query.expression
        body["Period"] = period
    return body


def _seconds(stamp: object) -> float:
    if isinstance(stamp, datetime):
        return stamp.timestamp() if stamp.tzinfo else stamp.replace(tzinfo=UTC).timestamp()
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp)
    raise SignalError(f"cloudwatch: unexpected timestamp {stamp!r}")


def build(name: str, settings: Mapping[str, object], context: SourceContext) -> CloudWatchSource:
    try:
        model = CloudWatchSettings.model_validate(settings)
    except ValidationError as error:
        problem = error.errors()[0]
        raise ConfigError(
            f"source {name!r}: {'.'.join(map(str, problem['loc'])) or 'settings'}: {problem['msg']}",
            path=tuple(problem["loc"]),
        ) from None
    aws = AwsClient(
        "cloudwatch",
        context.env,
        region=model.region,
        profile=model.profile,
        endpoint_url=model.endpoint_url,
        retry=SOURCE_RETRY,
    )
    return CloudWatchSource(name, model, aws)
