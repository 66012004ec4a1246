"""The `prometheus` source: one PromQL range query per signal (two for a ratio signal).

rollout.yaml:

    sources:
      metrics:
        kind: prometheus
        url: https://prometheus.example.com    # the API root; /api/v1/query_range is appended
        step: 30s                              # one sample per step, on the step grid
        staleness: 5m                          # handed to the runtime: older than this = no value
        token_env: PROM_TOKEN                  # bearer auth, or: username + password_env (basic)
        select: {rollout: checkout-42}         # optional: this rollout's series of per-rollout queries
        signals:
          latency_p95: histogram_quantile(0.95, sum by (le) (rate(http_request_seconds_bucket[5m])))
          error_rate:                          # a ratio signal: two per-step COUNTS, not rates
            num: sum(increase(http_requests_total{code=~"5.."}[30s]))
            den: sum(increase(http_requests_total[30s]))

What the user must write
- A plain signal: any PromQL that yields ONE series (aggregate with `sum`/`max`/... if needed);
  its value at each step is the signal's value at that time.
- A ratio signal: `num` and `den` must each yield ONE series whose value at time t is the
  COUNT of events in the step that ends at t — `sum(increase(COUNTER[STEP]))` with the range
  equal to `step` (e.g. `[30s]` for `step: 30s`), never `rate(...)` (per second) and never a
  longer range (consecutive steps would count the same events twice). The evaluator sums
  these per-step counts over the rule's window. With Prometheus 2.x the range `[30s]` is
  closed, so it holds the samples at both step boundaries and `increase` is the exact
  difference; the scrape interval should be shorter than `step`.

Many rollouts, one query (`select`)
- With `select: {label: value, ...}` every query may return one series PER rollout
  (`sum by (rollout) (increase(http_requests_total{code=~"5.."}[30s]))`), and the source
  keeps the one series whose labels include all of `select`. No such series: no samples
  (that rollout has no data; never a zero). Several: a SignalError naming the source and the
  query (group by every selected label). Series, but none carrying the selected labels at
  all: a SignalError too (the query lacks `by (label)`).
- Requests go through the context's `PrometheusBatcher` (prometheus_batch.py): sources
  built from one SourceContext whose queries have the same text, URL, credential and window
  share ONE HTTP request, so 1,000 rollouts cost one request per distinct query per tick.
  `ReadResult.queries` / `bytes_read` count what this read itself sent and received; a read
  served by another's request counts zero.

Reads
- `read(start, end)` returns the samples at the step-grid times t (multiples of `step`) with
  start < t <= end, in time order. Prometheus range queries are inclusive at both ends, so
  the query asks for exactly those grid points (first grid point after `start`, last one at
  or before `end`) and anything outside (start, end] is dropped as well: consecutive
  incremental reads (a, b], (b, c] return each sample exactly once.
- Values arrive as strings ("0.25", "NaN", "+Inf"): NaN and ±Inf are dropped (no value),
  never turned into a number; an empty result is a column with no samples (never a zero).
- A window over Prometheus' 11,000-points-per-series limit is split into several queries.
- Any failure — connection refused (after VendorHttp's bounded retries), an error status
  (400 bad_data for bad PromQL, 422, 503), a malformed answer, a query returning several
  series — is a `SignalError` naming the source and the query; credentials are never in it.
- A plain query is subject to Prometheus' 5-minute lookback: a series that stopped being
  scraped keeps its last value for 5 minutes. Write `last_over_time(x[30s])` for a stricter
  freshness.

Columns: `name` for a plain signal, `name:num` and `name:den` for a ratio signal.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from adapters.credentials import secret
from adapters.errors import ActuatorError, ConfigError, SignalError
from adapters.http import VendorHttp
from adapters.sources.base import SOURCE_RETRY, Columns, ReadResult
from adapters.sources.prometheus_batch import Answer, PrometheusBatcher, RangeKey, answer_from, auth_identity
from policies.durations import parse_duration

if TYPE_CHECKING:
    from adapters.sources.registry import SourceContext

QUERY_RANGE = "/api/v1/query_range"
MAX_POINTS = 11_000  # Prometheus rejects a range query with more points per series
CHUNK_POINTS = 10_000  # points per query when a long window is split
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # Prometheus' label name syntax


def _duration(text: str) -> str:
    seconds = parse_duration(text)  # ValueError → a pydantic error naming the field
    if seconds <= 0:
        raise ValueError(f"expected a positive duration like 30s, got {text!r}")
    return text


class RatioQuery(BaseModel):
    """A ratio signal: two PromQL queries, each yielding per-step counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num: str = Field(min_length=1)
    den: str = Field(min_length=1)


class PrometheusSettings(BaseModel):
    """A `prometheus` source's settings in rollout.yaml; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://")
    step: str = "30s"
    staleness: str = "5m"
    token_env: str | None = Field(default=None, min_length=1)  # bearer
    username: str | None = Field(default=None, min_length=1)  # basic, with password_env
    password_env: str | None = Field(default=None, min_length=1)
    select: dict[str, str] | None = Field(default=None, min_length=1)  # label → value
    signals: dict[str, str | RatioQuery] = Field(min_length=1)

    @field_validator("step", "staleness")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        return _duration(value)

    @field_validator("signals")
    @classmethod
    def _queries_not_empty(cls, value: dict[str, str | RatioQuery]) -> dict[str, str | RatioQuery]:
        for name, query in value.items():
            if isinstance(query, str) and not query.strip():
                raise ValueError(f"signal {name!r} has an empty query")
            if ":" in name or not name:
                raise ValueError(f"signal name {name!r} must be a plain name (no ':')")
        return value

    @field_validator("select")
    @classmethod
    def _label_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for label in value or {}:
            if not LABEL_NAME.fullmatch(label):
                raise ValueError(f"{label!r} is not a Prometheus label name")
        return value

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusSettings:
        if self.token_env is not None and (self.username is not None or self.password_env is not None):
            raise ValueError("give either token_env (bearer) or username + password_env (basic), not both")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("basic auth needs both username and password_env")
        return self

    @property
    def step_seconds(self) -> float:
        return parse_duration(self.step)

    @property
    def staleness_seconds(self) -> float:
        return parse_duration(self.staleness)

    def secret_variables(self) -> tuple[str, ...]:
        return tuple(v for v in (self.token_env, self.password_env) if v is not None)


@dataclass(frozen=True)
class Auth:
    """Request headers carrying the credential, and every spelling of it to redact."""

    headers: dict[str, str]
    secrets: tuple[str, ...]


def auth_from(settings: PrometheusSettings, env: Mapping[str, str], name: str) -> Auth:
    """Credentials from the environment (AuthFailed naming the variable when one is unset)."""
    if settings.token_env is not None:
        token = secret(env, settings.token_env, name)
        return Auth({"Authorization": f"Bearer {token}"}, (token,))
    if settings.username is not None and settings.password_env is not None:
        password = secret(env, settings.password_env, name)
        encoded = base64.b64encode(f"{settings.username}:{password}".encode()).decode("ascii")
        return Auth({"Authorization": f"Basic {encoded}"}, (password, encoded))
    return Auth({}, ())


class PrometheusSource:
    """Reads the bound signals with /api/v1/query_range on the step grid."""

    def __init__(
        self,
        name: str,
        settings: PrometheusSettings,
        http: VendorHttp,
        batcher: PrometheusBatcher | None = None,
    ) -> None:
        self._name = name
        self.settings = settings
        self.http = http
        self.batcher = batcher if batcher is not None else PrometheusBatcher()
        self._identity = auth_identity(http.headers)
        self.step = settings.step_seconds
        self.staleness = settings.staleness_seconds
        self._queries: dict[str, str] = {}  # column → PromQL
        for signal, query in settings.signals.items():
            if isinstance(query, RatioQuery):
                self._queries[f"{signal}:num"] = query.num
                self._queries[f"{signal}:den"] = query.den
            else:
                self._queries[signal] = query

    @property
    def name(self) -> str:
        return self._name

    def columns(self) -> list[str]:
        return list(self._queries)

    def read(self, start: float, end: float) -> ReadResult:
        """Samples at grid times in (start, end]; SignalError naming the query on any failure."""
        first = (math.floor(start / self.step) + 1) * self.step  # the first grid point > start
        last = math.floor(end / self.step) * self.step  # the last grid point <= end
        columns: Columns = {column: ([], []) for column in self._queries}
        queries = bytes_read = 0
        if first > last:
            return ReadResult(columns, [], 0, 0)
        for column, query in self._queries.items():
            times, values = columns[column]
            chunk_start = first
            while chunk_start <= last:
                chunk_end = min(last, chunk_start + (CHUNK_POINTS - 1) * self.step)
                key = RangeKey(self.http.base_url, self._identity, query, chunk_start, chunk_end, self.step)
                answer, sent = self.batcher.fetch(key, partial(self._query_range, key))
                if sent:
                    queries += 1
                    bytes_read += answer.size
                for time, value in self._samples(query, answer):
                    if start < time <= end:
                        times.append(time)
                        values.append(value)
                chunk_start = chunk_end + self.step
        return ReadResult(columns, [], queries, bytes_read)

    def _query_range(self, key: RangeKey) -> Answer:
        """One HTTP request; every failure becomes an Answer whose error each reader raises."""
        form = {
            "query": key.query,
            "start": _number(key.start),
            "end": _number(key.end),
            "step": _number(key.step),
        }
        try:
            response = self.http.request(
                "POST",  # form body: long queries fit, and the query never sits in a URL or log line
                QUERY_RANGE,
                content=urlencode(form).encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                ok=(200,),
            )
        except ActuatorError as error:  # shared: the leader's own name is not part of the reason
            return Answer(error=str(error).removeprefix(f"{self.http.vendor}: "))
        try:
            body = response.json()
        except ValueError:
            return Answer(size=len(response.content), error="the answer is not JSON")
        return answer_from(body, len(response.content))

    def _samples(self, query: str, answer: Answer) -> list[tuple[float, float]]:
        if answer.error is not None:
            raise self._error(query, answer.error)
        select = self.settings.select
        result = answer.series if select is None else answer.matching(select)
        if result is None:
            labels = ", ".join(sorted(select or {}))
            raise self._error(query, f"no series has the label(s) {labels} of `select` (add `by ({labels})`)")
        if not result:
            return []  # no data: no samples, never a zero
        if len(result) > 1:
            raise self._error(query, self._several(len(result)))
        series = result[0]
        raw = series.get("values") if isinstance(series, dict) else None
        if not isinstance(raw, list):
            raise self._error(query, "malformed answer: a series has no values")
        samples: list[tuple[float, float]] = []
        for pair in raw:
            try:
                stamp, text = pair
                if not isinstance(text, str) or isinstance(stamp, bool):
                    raise TypeError(text)
                time, value = float(stamp), float(text)
            except (TypeError, ValueError):
                raise self._error(query, f"malformed sample {pair!r}") from None
            if math.isfinite(value) and math.isfinite(time):  # NaN / ±Inf: no value
                samples.append((time, value))
        samples.sort(key=lambda sample: sample[0])
        return samples

    def _several(self, count: int) -> str:
        if self.settings.select is None:
            return f"returned {count} series, expected one (aggregate it, e.g. sum(...))"
        labels = ", ".join(sorted(self.settings.select))
        wanted = self.settings.select
        return f"returned {count} series matching select {wanted}, expected one (group by ({labels}))"

    def _error(self, query: str, reason: str) -> SignalError:
        text = f"source {self._name!r} (prometheus): query {query!r}: {reason}"
        for value in self.http.secrets:  # belt and braces: a query could quote a credential
            text = text.replace(value, "***")
        return SignalError(text)


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def parse_settings(name: str, settings: Mapping[str, object]) -> PrometheusSettings:
    """Validated settings; ConfigError naming the field (and its path) when they are wrong."""
    try:
        return PrometheusSettings.model_validate(settings)
    except ValidationError as error:
        problems = error.errors()
        message = "; ".join(_explain(problem) for problem in problems)
        raise ConfigError(
            f"source {name!r} (prometheus): {message}", path=tuple(problems[0]["loc"])
        ) from None


def _explain(problem: ErrorDetails) -> str:
    field = ".".join(str(part) for part in problem["loc"]) or "settings"
    if problem["type"] == "extra_forbidden":
        return f"unknown setting {field!r} (known: {', '.join(PrometheusSettings.model_fields)})"
    if problem["type"] == "missing":
        return f"{field}: required"
    return f"{field}: {problem['msg'].removeprefix('Value error, ')} (got {problem['input']!r})"


def build(name: str, settings: Mapping[str, object], context: SourceContext) -> PrometheusSource:
    """The registry's builder: ConfigError for bad settings, AuthFailed for an unset credential."""
    parsed = parse_settings(name, settings)
    auth = auth_from(parsed, context.env, f"source {name}")
    http = VendorHttp(
        context.client(),
        vendor=f"prometheus source {name!r}",
        base_url=parsed.url,
        headers=auth.headers,
        secrets=auth.secrets,
        retry=SOURCE_RETRY,
    )
    return PrometheusSource(name, parsed, http, context.prometheus)
