"""Recording through the application's own SDK MeterProvider, explicit and global.

Real SDK providers with the application's own ``InMemoryMetricReader``: the application's
reader must see otel-perf's instruments, and otel-perf's JSON view must stay what it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    View,
)

import otel_perf
from otel_perf import _configure
from otel_perf import _semconv as n
from tests.support.helpers import global_meter_provider


def points(data: MetricsData | None, name: str) -> list[tuple[str, Any]]:
    """(scope name, data point) of every point of metric ``name``."""
    found: list[tuple[str, Any]] = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    found.extend((scope_metrics.scope.name, p) for p in metric.data.data_points)
    return found


def record_some() -> None:
    for i in range(50):
        otel_perf.record_tool_call("search", True, 10.0 + i)
    otel_perf.record_tool_call("search", False, 99.0, "TimeoutError")
    otel_perf.record_provider_call(
        "openai", True, 120.0, model="gpt-4o", input_tokens=100, output_tokens=20
    )
    otel_perf.record_cache_hit("lookups")


@pytest.fixture
def app_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def app_provider(app_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[app_reader], shutdown_on_exit=False)
    yield provider
    otel_perf.testing.reset()  # detach before the provider goes
    provider.shutdown()


def test_explicit_provider_gets_otel_perfs_metrics_and_the_json_view_still_works(
    app_provider: MeterProvider, app_reader: InMemoryMetricReader
) -> None:
    metrics = otel_perf.configure(meter_provider=app_provider, json_enabled=False)
    assert metrics.meter_provider is app_provider
    record_some()

    data = app_reader.get_metrics_data()
    durations = points(data, n.MCP_SERVER_OPERATION_DURATION)
    assert sum(p.count for _scope, p in durations) == 51
    assert {scope for scope, _p in durations} == {n.METER_NAME}
    assert points(data, n.GEN_AI_CLIENT_OPERATION_DURATION)
    assert points(data, n.CACHE_REQUESTS)
    assert points(data, n.ACTIVE_REQUESTS)  # observable instruments too

    search = otel_perf.get_all_metrics()["tool_metrics"]["search"]
    assert (search["total_calls"], search["failed_calls"]) == (51, 1)
    # percentiles from otel-perf's exponential buckets, though the application's reader
    # aggregates the same instrument with its own (explicit) buckets
    assert 30.0 < search["p50_latency_ms"] < 40.0
    assert 55.0 < search["p95_latency_ms"] <= 60.0 + 1.0
    assert isinstance(points(data, n.MCP_SERVER_OPERATION_DURATION)[0][1], HistogramDataPoint)


def test_global_sdk_provider_is_used_by_default_with_one_info_line(
    app_provider: MeterProvider, app_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    with global_meter_provider(app_provider), caplog.at_level(logging.INFO, "otel_perf"):
        metrics = otel_perf.configure(json_enabled=False)
        assert metrics.meter_provider is app_provider
        record_some()
        assert points(app_reader.get_metrics_data(), n.MCP_SERVER_OPERATION_DURATION)
        assert otel_perf.configure(json_enabled=False) is metrics  # idempotent
    lines = [r.getMessage() for r in caplog.records if "global MeterProvider" in r.getMessage()]
    assert len(lines) == 1
    assert "METRICS_USE_GLOBAL_METER_PROVIDER=false" in lines[0]


def test_implicit_configuration_on_first_record_uses_the_global_provider(
    app_provider: MeterProvider, app_reader: InMemoryMetricReader
) -> None:
    with global_meter_provider(app_provider):
        otel_perf.record_tool_call("search", True, 5.0)  # configures from the environment
        assert points(app_reader.get_metrics_data(), n.MCP_SERVER_OPERATION_DURATION)


def test_opting_out_builds_otel_perfs_own_provider(
    app_provider: MeterProvider, app_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRICS_USE_GLOBAL_METER_PROVIDER", "false")
    with global_meter_provider(app_provider):
        metrics = otel_perf.configure(json_enabled=False)
        assert metrics.meter_provider is not app_provider
        record_some()
        assert not points(app_reader.get_metrics_data(), n.MCP_SERVER_OPERATION_DURATION)
        assert otel_perf.get_all_metrics()["tool_metrics"]["search"]["total_calls"] == 51


class _OtherApiProvider(ApiMeterProvider):
    """Another implementation of the metrics API (not the SDK): it takes no readers."""

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> NoOpMeter:
        return NoOpMeter(name)


def test_a_provider_that_is_not_the_sdks_is_refused_plainly() -> None:
    with pytest.raises(TypeError, match=r"needs an opentelemetry\.sdk\.metrics\.MeterProvider"):
        otel_perf.configure(meter_provider=_OtherApiProvider())
    with pytest.raises(TypeError, match="add_metric_reader"):
        otel_perf.configure(meter_provider="not a provider")


def test_a_global_provider_that_is_not_the_sdks_warns_and_otel_perf_uses_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with global_meter_provider(_OtherApiProvider()), caplog.at_level(logging.WARNING):
        metrics = otel_perf.configure(json_enabled=False)
        otel_perf.record_tool_call("search", True, 5.0)
    assert isinstance(metrics.meter_provider, MeterProvider)
    assert otel_perf.get_all_metrics()["tool_metrics"]["search"]["total_calls"] == 1
    warnings = [r.getMessage() for r in caplog.records if "not the OpenTelemetry SDK" in r.message]
    assert len(warnings) == 1
    assert "_OtherApiProvider" in warnings[0]


def test_a_view_forcing_explicit_buckets_warns_once_naming_the_histogram(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="mcp.*", aggregation=ExplicitBucketHistogramAggregation())],
        shutdown_on_exit=False,
    )
    with caplog.at_level(logging.WARNING, "otel_perf"):
        otel_perf.configure(meter_provider=provider, json_enabled=False)
        otel_perf.record_tool_call("search", True, 10.0)
        otel_perf.record_tool_call("search", True, 30.0)
        search = otel_perf.get_all_metrics()["tool_metrics"]["search"]
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "otel_perf" and "View" in r.message
    ]
    assert len(warnings) == 1
    assert "mcp.server.operation.duration" in warnings[0]
    assert "ExplicitBucketHistogramAggregation" in warnings[0]
    assert "'mcp.*'" in warnings[0]
    # degraded, not wrong: the mean in place of the percentiles
    assert search["total_calls"] == 2
    assert search["p50_latency_ms"] == search["p99_latency_ms"] == search["avg_latency_ms"] == 20.0
    otel_perf.testing.reset()
    provider.shutdown()


def test_a_view_dropping_otel_perfs_instrument_is_named() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="cache.requests", aggregation=DropAggregation())],
        shutdown_on_exit=False,
    )
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("otel_perf").addHandler(handler)
    try:
        otel_perf.configure(meter_provider=provider, json_enabled=False)
    finally:
        logging.getLogger("otel_perf").removeHandler(handler)
        otel_perf.testing.reset()
        provider.shutdown()
    assert any("drops otel-perf's cache.requests" in m for m in messages), messages


def test_no_second_otlp_export_when_the_application_provider_exports(
    app_provider: MeterProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    with caplog.at_level(logging.INFO, "otel_perf"):
        metrics = otel_perf.configure(meter_provider=app_provider, json_enabled=False)
    assert metrics.settings.export.otlp  # what otel-perf would have exported on its own
    assert metrics.pipeline is not None
    assert metrics.pipeline.forwarders == []
    assert any("not starting its own OTLP" in r.getMessage() for r in caplog.records)


def test_application_instruments_of_the_same_name_do_not_count_in_otel_perfs_view(
    app_provider: MeterProvider,
) -> None:
    otel_perf.configure(meter_provider=app_provider, json_enabled=False)
    theirs = app_provider.get_meter("some.other.instrumentation").create_histogram(
        n.MCP_SERVER_OPERATION_DURATION, unit="s"
    )
    theirs.record(0.5, {n.MCP_METHOD_NAME: "tools/call", n.GEN_AI_TOOL_NAME: "search"})
    otel_perf.record_tool_call("search", True, 10.0)
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"]["search"]["total_calls"] == 1
    assert document["system_metrics"]["total_requests"] == 1


def test_reset_and_restart_on_a_shared_provider_re_point_the_observables(
    app_provider: MeterProvider, app_reader: InMemoryMetricReader
) -> None:
    otel_perf.configure(meter_provider=app_provider, json_enabled=False)
    otel_perf.set_active_sessions(3)
    otel_perf.record_tool_call("search", True, 10.0)
    _configure.reset_metrics()
    otel_perf.set_active_sessions(5)
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"] == {}  # a clean slate for otel-perf's view
    assert document["system_metrics"]["active_sessions"] == 5
    # the application's reader is cumulative and unaffected, and reads the new recorder
    data = app_reader.get_metrics_data()
    assert sum(p.count for _s, p in points(data, n.MCP_SERVER_OPERATION_DURATION)) == 1
    assert [p.value for _s, p in points(data, n.ACTIVE_SESSIONS)] == [5]

    otel_perf.configure(meter_provider=app_provider, json_enabled=False, window_size=10)
    otel_perf.set_active_sessions(7)
    assert otel_perf.get_all_metrics()["system_metrics"]["active_sessions"] == 7
    assert [p.value for _s, p in points(app_reader.get_metrics_data(), n.ACTIVE_SESSIONS)] == [7]


def test_shutdown_detaches_and_leaves_the_application_provider_running(
    app_provider: MeterProvider, app_reader: InMemoryMetricReader
) -> None:
    otel_perf.configure(meter_provider=app_provider, json_enabled=False)
    otel_perf.record_tool_call("search", True, 10.0)
    otel_perf.shutdown()
    theirs = app_provider.get_meter("app").create_counter("app.requests")
    theirs.add(1)
    data = app_reader.get_metrics_data()
    assert points(data, "app.requests")[0][1].value == 1
    assert sum(p.count for _s, p in points(data, n.MCP_SERVER_OPERATION_DURATION)) == 1
    assert points(data, n.ACTIVE_SESSIONS) == []  # a retired recorder reports nothing


def test_otel_perfs_reader_uses_exponential_buckets_on_the_applications_provider(
    app_provider: MeterProvider,
) -> None:
    metrics = otel_perf.configure(meter_provider=app_provider, json_enabled=False)
    otel_perf.record_tool_call("search", True, 10.0)
    assert metrics.pipeline is not None
    ours = points(metrics.pipeline.collect(), n.MCP_SERVER_OPERATION_DURATION)
    assert ours
    assert all(isinstance(p, ExponentialHistogramDataPoint) for _s, p in ours)
    assert otel_metrics.get_meter_provider() is not app_provider  # never set as global by us
