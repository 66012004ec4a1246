"""The source-kind registry: explicit kinds, clear errors naming the field."""

from __future__ import annotations

import pytest

from adapters.errors import AuthFailed, ConfigError
from adapters.sources.prometheus import PrometheusSource
from adapters.sources.registry import SOURCES, SourceContext, build_source

PROMETHEUS = {"url": "http://127.0.0.1:9090", "signals": {"latency": "up"}}


def test_unknown_kind_is_an_error_listing_the_known_kinds() -> None:
    with pytest.raises(ConfigError) as raised:
        build_source("graphite", "metrics", {}, SourceContext(env={}))
    assert str(raised.value) == f"unknown source kind 'graphite' (known: {', '.join(sorted(SOURCES))})"
    assert raised.value.path == ()
    assert "prometheus" in SOURCES


def test_prometheus_builds_from_settings() -> None:
    settings = {
        **PROMETHEUS,
        "step": "15s",
        "token_env": "PROM_TOKEN",
        "signals": {"latency": "up", "errors": {"num": "sum(a)", "den": "sum(b)"}},
    }
    source = build_source("prometheus", "metrics", settings, SourceContext(env={"PROM_TOKEN": "t0k"}))
    assert isinstance(source, PrometheusSource)
    assert source.name == "metrics"
    assert source.columns() == ["latency", "errors:num", "errors:den"]
    assert source.step == 15.0
    assert source.http.headers == {"Authorization": "Bearer t0k"}


@pytest.mark.parametrize(
    ("change", "path", "text"),
    [
        ({"step": "30 seconds"}, ("step",), "step: expected a duration like 5m, got '30 seconds'"),
        ({"staleness": "0"}, ("staleness",), "staleness: expected a positive duration"),
        ({"url": "prometheus:9090"}, ("url",), "url: "),
        ({"stepp": "30s"}, ("stepp",), "unknown setting 'stepp' (known: url, step, "),
        ({"signals": {}}, ("signals",), "signals: "),
        (
            {"signals": {"e": {"num": "sum(a)"}}},
            ("signals", "e", "str"),
            "signals.e.RatioQuery.den: required",
        ),
        ({"token_env": "T", "username": "u", "password_env": "P"}, (), "either token_env (bearer)"),
        ({"username": "u"}, (), "basic auth needs both username and password_env"),
    ],
)
def test_bad_prometheus_settings_name_the_field(
    change: dict[str, object], path: tuple[str, ...], text: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        build_source("prometheus", "metrics", {**PROMETHEUS, **change}, SourceContext(env={}))
    message = str(raised.value)
    assert message.startswith("source 'metrics' (prometheus): ")
    assert text in message
    assert raised.value.path == path


def test_an_unset_credential_is_named_not_guessed() -> None:
    with pytest.raises(AuthFailed, match="environment variable PROM_TOKEN is not set"):
        build_source(
            "prometheus", "metrics", {**PROMETHEUS, "token_env": "PROM_TOKEN"}, SourceContext(env={})
        )
