"""The OTEL_* export variables: a pure parser, spec defaults, one warning per bad value."""

from __future__ import annotations

import logging

import pytest

import otel_perf
from otel_perf._export.settings import ExportSettings, load_export_settings
from otel_perf._settings import load_settings


def parse(**env: str) -> tuple[ExportSettings, list[str]]:
    return load_export_settings(env)


def test_nothing_set_means_no_push_export_and_spec_defaults() -> None:
    settings, warnings = parse()
    assert warnings == []
    assert (settings.otlp, settings.console, settings.prometheus) == (False, False, False)
    assert settings.protocol == "http/protobuf"
    assert settings.endpoint == "http://localhost:4318/v1/metrics"
    assert settings.interval_ms == 60_000
    assert settings.timeout_ms == 10_000
    assert settings.temporality == "cumulative"
    assert not settings.delta


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            "http://collector:4318/v1/metrics",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base/"}, "http://c:4318/base/v1/metrics"),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://c/custom"}, "https://c/custom"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://specific:9999/m",
            },
            "http://specific:9999/m",
        ),
    ],
)
def test_an_endpoint_variable_turns_otlp_on_when_the_exporter_list_is_unset(
    env: dict[str, str], endpoint: str
) -> None:
    settings, warnings = load_export_settings(env)
    assert warnings == []
    assert settings.otlp
    assert settings.endpoint == endpoint


def test_grpc_uses_the_base_url_as_given_and_its_own_default() -> None:
    settings, _ = parse(OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_METRICS_EXPORTER="otlp")
    assert (settings.protocol, settings.endpoint) == ("grpc", "http://localhost:4317")
    settings, _ = parse(
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4317"
    )
    assert (settings.otlp, settings.endpoint) == (True, "http://c:4317")


def test_the_metrics_protocol_wins_over_the_generic_one() -> None:
    settings, _ = parse(
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="http/protobuf"
    )
    assert settings.protocol == "http/protobuf"
    settings, _ = parse(OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=" GRPC ")
    assert settings.protocol == "grpc"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("otlp", (True, False, False)),
        ("console", (False, True, False)),
        ("prometheus", (False, False, True)),
        (" OTLP , Console ", (True, True, False)),
        ("otlp,prometheus", (True, False, True)),
        ("none", (False, False, False)),
    ],
)
def test_the_exporter_list(value: str, expected: tuple[bool, bool, bool]) -> None:
    settings, warnings = parse(OTEL_METRICS_EXPORTER=value)
    assert warnings == []
    assert (settings.otlp, settings.console, settings.prometheus) == expected


def test_an_explicit_list_without_otlp_wins_over_an_endpoint() -> None:
    settings, _ = parse(OTEL_METRICS_EXPORTER="console", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:1")
    assert (settings.otlp, settings.console) == (False, True)


def test_none_with_others_warns_and_wins() -> None:
    settings, warnings = parse(OTEL_METRICS_EXPORTER="none,otlp")
    assert not settings.otlp
    assert len(warnings) == 1
    assert "OTEL_METRICS_EXPORTER" in warnings[0]


def test_unknown_exporters_are_ignored_with_a_warning() -> None:
    settings, warnings = parse(OTEL_METRICS_EXPORTER="zipkin,otlp")
    assert settings.otlp
    assert len(warnings) == 1
    assert "OTEL_METRICS_EXPORTER" in warnings[0]
    assert "zipkin" in warnings[0]

    # Nothing usable named: the default applies (OTLP only if an endpoint is set).
    settings, warnings = parse(
        OTEL_METRICS_EXPORTER="jaeger", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318"
    )
    assert settings.otlp
    assert any("'otlp'" in w for w in warnings)


@pytest.mark.parametrize(
    ("name", "value", "field", "default"),
    [
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "interval_ms", 60_000),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", "interval_ms", 60_000),
        ("OTEL_METRIC_EXPORT_INTERVAL", "-5", "interval_ms", 60_000),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1.5", "interval_ms", 60_000),
        ("OTEL_METRIC_EXPORT_INTERVAL", "99999999999", "interval_ms", 60_000),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten", "timeout_ms", 10_000),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "0", "timeout_ms", 10_000),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "sometimes",
            "temporality",
            "cumulative",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp", "protocol", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "protocol", "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "localhost:4318",
            "endpoint",
            "http://localhost:4318/v1/metrics",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://c:21",
            "endpoint",
            "http://localhost:4318/v1/metrics",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:99999",
            "endpoint",
            "http://localhost:4318/v1/metrics",
        ),
    ],
)
def test_a_bad_value_warns_once_naming_the_variable_and_the_default_applies(
    name: str, value: str, field: str, default: object
) -> None:
    settings, warnings = load_export_settings({name: value})
    assert getattr(settings, field) == default
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{name}=")
    assert repr(default) in warnings[0]


def test_intervals_and_timeouts_are_milliseconds_and_the_smaller_timeout_applies() -> None:
    settings, warnings = parse(
        OTEL_METRIC_EXPORT_INTERVAL="250",
        OTEL_EXPORTER_OTLP_TIMEOUT="4000",
        OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="3000",
    )
    assert warnings == []
    assert (settings.interval_ms, settings.timeout_ms) == (250, 3000)
    settings, _ = parse(OTEL_EXPORTER_OTLP_TIMEOUT="20000", OTEL_METRIC_EXPORT_TIMEOUT="1500")
    assert settings.timeout_ms == 1500


@pytest.mark.parametrize(
    ("value", "delta"), [("delta", True), ("LowMemory", True), ("cumulative", False)]
)
def test_temporality_preference(value: str, delta: bool) -> None:
    settings, warnings = parse(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=value)
    assert warnings == []
    assert settings.delta is delta


def test_empty_values_count_as_unset() -> None:
    settings, warnings = parse(
        OTEL_METRICS_EXPORTER="", OTEL_EXPORTER_OTLP_ENDPOINT="  ", OTEL_METRIC_EXPORT_INTERVAL=""
    )
    assert warnings == []
    assert settings == ExportSettings()


def test_load_settings_carries_the_export_settings_and_their_warnings() -> None:
    settings, warnings = load_settings(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRIC_EXPORT_INTERVAL": "x"}
    )
    assert settings.export.otlp
    assert settings.export.interval_ms == 60_000
    assert [w for w in warnings if w.startswith("OTEL_METRIC_EXPORT_INTERVAL")]


def test_configure_accepts_an_export_override_and_rejects_a_wrong_type() -> None:
    export = ExportSettings(console=True, interval_ms=3_600_000)
    metrics = otel_perf.configure(export=export)
    assert metrics.settings.export == export
    with pytest.raises(ValueError, match="export"):
        otel_perf.configure(export={"otlp": True})


def test_configure_logs_each_bad_variable_once_and_keeps_working(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "fast")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        otel_perf.configure()
        otel_perf.configure()  # same settings: no second round of warnings
        otel_perf.record_tool_call("t", True, 1.0)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("OTEL_METRIC_EXPORT_INTERVAL" in m for m in messages) == 1
    assert sum("OTEL_EXPORTER_OTLP_PROTOCOL" in m for m in messages) == 1
    assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1


def test_asking_for_prometheus_without_the_endpoint_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        metrics = otel_perf.configure(json_enabled=False)
    assert metrics.url is None
    assert any("/metrics/prometheus" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        otel_perf.configure(json_enabled=True)
    assert not any("/metrics/prometheus" in r.getMessage() for r in caplog.records)
