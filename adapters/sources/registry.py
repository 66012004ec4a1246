"""Source kinds: the one place a rollout.yaml source `kind:` becomes a Source.

One explicit dict, no discovery; an unknown kind is a ConfigError naming the known ones.
Each entry maps a kind to a builder taking (name, settings mapping, BuildContext-like env
and http client). Adding a source kind is one module, one line here, and its test module
`tests/test_<kind>_source.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from adapters.errors import ConfigError
from adapters.sources import cloudwatch, opsgenie, pagerduty, prometheus, pushed, sentry, sql
from adapters.sources.base import Source
from adapters.sources.prometheus_batch import PrometheusBatcher


@dataclass(frozen=True)
class SourceContext:
    """What every source built for a process shares: the environment, the HTTP client, and
    the batcher through which `prometheus` sources with the same query share one request."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    http: httpx.Client | None = None
    inbox: pushed.Inbox | None = None  # the store's webhook inbox, under `tidegate serve`
    prometheus: PrometheusBatcher = field(default_factory=PrometheusBatcher)

    def client(self) -> httpx.Client:
        return self.http if self.http is not None else httpx.Client()


SourceBuilder = Callable[[str, Mapping[str, object], SourceContext], Source]

SOURCES: dict[str, SourceBuilder] = {
    "prometheus": prometheus.build,
    "cloudwatch": cloudwatch.build,
    "sql": sql.build,
    "pagerduty": pagerduty.build,
    "sentry": sentry.build,
    "opsgenie": opsgenie.build,
    "pushed": pushed.build,
}


def build_source(kind: str, name: str, settings: Mapping[str, object], context: SourceContext) -> Source:
    try:
        builder = SOURCES[kind]
    except KeyError:
        known = ", ".join(sorted(SOURCES)) or "none yet"
        raise ConfigError(f"unknown source kind {kind!r} (known: {known})") from None
    return builder(name, settings, context)
