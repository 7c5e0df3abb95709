"""Environment configuration: every variable, bad values, the alias, and when it is read."""

from __future__ import annotations

import logging

import pytest

import otel_perf
from otel_perf import _state
from otel_perf._settings import Settings, load_settings


def test_defaults() -> None:
    settings, warnings = load_settings({})
    assert settings == Settings()
    assert warnings == []
    assert settings.json_host == "127.0.0.1"
    assert settings.json_port == 9109
    assert settings.window_size == 1000
    assert settings.cors_origins == ()  # pages on this machine only
    assert settings.allowed_hosts == ()


def test_every_variable_is_read() -> None:
    env = {
        "PERFORMANCE_METRICS_ENABLED": "TRUE",
        "METRICS_WINDOW_SIZE": "250",
        "METRICS_JSON_ENDPOINT_ENABLED": "no",
        "METRICS_JSON_HOST": "::1",
        "METRICS_JSON_PORT": "0",
        "METRICS_CORS_ORIGINS": "https://a.example, https://b.example",
        "METRICS_AUTH_TOKEN": "s3cret",
        "METRICS_MAX_TOOLS": "10",
        "METRICS_MAX_PROVIDERS": "11",
        "METRICS_MAX_MODELS": "12",
        "METRICS_MAX_CACHES": "13",
        "METRICS_MAX_ERROR_TYPES": "14",
        "METRICS_HISTOGRAM_BUCKETS": "640",
    }
    settings, warnings = load_settings(env)
    assert warnings == []
    assert settings == Settings(
        enabled=True,
        window_size=250,
        json_enabled=False,
        json_host="::1",
        json_port=0,
        cors_origins=("https://a.example", "https://b.example"),
        auth_token="s3cret",
        max_tools=10,
        max_providers=11,
        max_models=12,
        max_caches=13,
        max_error_types=14,
        histogram_buckets=640,
    )


def test_json_enabled_alias_and_precedence() -> None:
    assert load_settings({"METRICS_JSON_ENABLED": "false"})[0].json_enabled is False
    both = {"METRICS_JSON_ENDPOINT_ENABLED": "true", "METRICS_JSON_ENABLED": "false"}
    assert load_settings(both)[0].json_enabled is True


def test_otel_sdk_disabled_switches_otel_perf_off() -> None:
    assert load_settings({"OTEL_SDK_DISABLED": "true"})[0].enabled is False
    assert load_settings({"OTEL_SDK_DISABLED": "false"})[0].enabled is True
    settings, warnings = load_settings({"OTEL_SDK_DISABLED": "perhaps"})
    assert settings.enabled is True
    assert len(warnings) == 1
    assert "OTEL_SDK_DISABLED" in warnings[0]
    assert "default False" in warnings[0]


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("PERFORMANCE_METRICS_ENABLED", "maybe", "enabled"),
        ("PERFORMANCE_METRICS_ENABLED", "", "enabled"),
        ("METRICS_WINDOW_SIZE", "abc", "window_size"),
        ("METRICS_WINDOW_SIZE", "0", "window_size"),
        ("METRICS_WINDOW_SIZE", "-5", "window_size"),
        ("METRICS_WINDOW_SIZE", "1e3", "window_size"),
        ("METRICS_WINDOW_SIZE", "99999999999999999999", "window_size"),
        ("METRICS_JSON_ENDPOINT_ENABLED", "yess", "json_enabled"),
        ("METRICS_JSON_HOST", "", "json_host"),
        ("METRICS_JSON_HOST", "bad host", "json_host"),
        ("METRICS_JSON_HOST", "héllo", "json_host"),
        ("METRICS_JSON_PORT", "70000", "json_port"),
        ("METRICS_JSON_PORT", "-1", "json_port"),
        ("METRICS_JSON_PORT", "http", "json_port"),
        ("METRICS_CORS_ORIGINS", " , ", "cors_origins"),
        ("METRICS_MAX_TOOLS", "0", "max_tools"),
        ("METRICS_MAX_ERROR_TYPES", "many", "max_error_types"),
        ("METRICS_HISTOGRAM_BUCKETS", "10", "histogram_buckets"),
        ("METRICS_HISTOGRAM_BUCKETS", "100000", "histogram_buckets"),
    ],
)
def test_bad_value_warns_naming_variable_and_default(variable: str, value: str, field: str) -> None:
    settings, warnings = load_settings({variable: value})
    default = getattr(Settings(), field)
    assert getattr(settings, field) == default
    assert len(warnings) == 1
    assert variable in warnings[0]
    assert repr(default) in warnings[0]


def test_configure_logs_one_warning_per_bad_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("METRICS_WINDOW_SIZE", "abc")
    monkeypatch.setenv("METRICS_JSON_PORT", "70000")
    monkeypatch.setenv("METRICS_JSON_HOST", "127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        metrics = otel_perf.configure(json_port=0)
        otel_perf.configure(json_port=0)  # same settings: no second round of warnings
    messages = [r.getMessage() for r in caplog.records]
    assert sum("METRICS_WINDOW_SIZE" in m for m in messages) == 1
    assert sum("METRICS_JSON_PORT" in m for m in messages) == 1
    assert metrics.settings.window_size == 1000
    otel_perf.record_tool_call("still", True, 1.0)
    assert otel_perf.get_all_metrics()["tool_metrics"]["still"]["total_calls"] == 1


def test_overrides_win_and_bad_overrides_raise() -> None:
    settings, _ = load_settings({"METRICS_WINDOW_SIZE": "10"}, {"window_size": 20})
    assert settings.window_size == 20
    with pytest.raises(TypeError, match="unknown setting"):
        load_settings({}, {"window": 5})
    with pytest.raises(ValueError, match="window_size"):
        load_settings({}, {"window_size": 0})
    with pytest.raises(ValueError, match="json_port"):
        otel_perf.configure(json_port=70000)


def test_reconfigure_with_new_settings_replaces_the_instance() -> None:
    first = otel_perf.configure(window_size=5)
    assert otel_perf.configure(window_size=5) is first
    second = otel_perf.configure(window_size=6)
    assert second is not first
    assert first.url is None  # the old endpoint was stopped
    assert _state.runtime is second
