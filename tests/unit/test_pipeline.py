"""The OTel pipeline: one provider, one reader, exponential histograms in seconds, one record."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics._internal.measurement_consumer import (
    SynchronousMeasurementConsumer,
)
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    MetricsData,
    NumberDataPoint,
)

import otel_perf
from otel_perf import _semconv as _names
from otel_perf import _state
from otel_perf._document import build_document
from otel_perf._extract import extract
from otel_perf._window import WindowTracker


def _metrics_by_name(data: MetricsData | None) -> dict[str, Any]:
    assert data is not None
    return {
        metric.name: metric
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }


@pytest.fixture
def sdk_records(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of instruments that received a synchronous measurement (a spy on the real SDK)."""
    seen: list[str] = []
    real = SynchronousMeasurementConsumer.consume_measurement

    def spy(self: SynchronousMeasurementConsumer, measurement: Any) -> None:
        seen.append(measurement.instrument.name)
        real(self, measurement)

    monkeypatch.setattr(SynchronousMeasurementConsumer, "consume_measurement", spy)
    return seen


def test_one_provider_with_one_reader() -> None:
    metrics = otel_perf.configure()
    provider = metrics.meter_provider
    assert provider is not None
    # Each reader has its own aggregation storage; there must be exactly one.
    readers = list(provider._measurement_consumer._reader_storages)
    assert metrics.pipeline is not None
    assert readers == [metrics.pipeline.reader]


def test_a_tracked_tool_call_is_exactly_one_sdk_record(sdk_records: list[str]) -> None:
    metrics = otel_perf.configure()
    assert metrics.pipeline is not None
    recorder = metrics.pipeline.recorder
    with otel_perf.track_tool("t"):
        pass
    assert sdk_records == []  # queued: the SDK gets it off the request path
    assert recorder.flush() == 1
    assert sdk_records == [_names.MCP_SERVER_OPERATION_DURATION]

    @otel_perf.track_tool("t")
    def work() -> None:
        return None

    work()
    with pytest.raises(KeyError), otel_perf.track_tool("t"):
        raise KeyError("x")
    otel_perf.record_tool_call("t", True, 1.0)
    assert recorder.flush() == 3
    assert sdk_records == [_names.MCP_SERVER_OPERATION_DURATION] * 4


def test_durations_are_seconds_in_exponential_histograms() -> None:
    metrics = otel_perf.configure()
    otel_perf.record_tool_call("t", True, 250.0)
    otel_perf.record_tool_call("t", False, 750.0, "ValueError")
    otel_perf.record_provider_call("p", True, 1500.0, model="m")
    assert metrics.pipeline is not None
    by_name = _metrics_by_name(metrics.pipeline.collect())

    tool = by_name[_names.MCP_SERVER_OPERATION_DURATION]
    assert tool.unit == "s"
    assert isinstance(tool.data, ExponentialHistogram)
    points = {tuple(sorted(p.attributes.items())): p for p in tool.data.data_points}
    op = ("gen_ai.operation.name", "execute_tool")
    ok = points[(op, ("gen_ai.tool.name", "t"), ("mcp.method.name", "tools/call"))]
    assert isinstance(ok, ExponentialHistogramDataPoint)
    assert ok.count == 1
    assert ok.sum == pytest.approx(0.25)
    failed = points[
        (
            ("error.type", "ValueError"),
            op,
            ("gen_ai.tool.name", "t"),
            ("mcp.method.name", "tools/call"),
        )
    ]
    assert failed.sum == pytest.approx(0.75)

    provider = by_name[_names.GEN_AI_CLIENT_OPERATION_DURATION]
    assert provider.unit == "s"
    assert isinstance(provider.data, ExponentialHistogram)
    (point,) = provider.data.data_points
    assert point.sum == pytest.approx(1.5)
    assert point.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "p",
        "gen_ai.request.model": "m",
    }


def test_sessions_requests_and_uptime_are_observable_instruments(
    sdk_records: list[str],
) -> None:
    metrics = otel_perf.configure()
    with otel_perf.track_session(), otel_perf.track_tool("busy"):
        assert metrics.pipeline is not None
        by_name = _metrics_by_name(metrics.pipeline.collect())
        sessions = by_name[_names.ACTIVE_SESSIONS].data.data_points[0]
        requests = by_name[_names.ACTIVE_REQUESTS].data.data_points[0]
        uptime = by_name[_names.PROCESS_UPTIME].data.data_points[0]
        assert isinstance(sessions, NumberDataPoint)
        assert sessions.value == 1
        assert requests.value == 1
        assert uptime.value >= 0.0
    # Entering and leaving a session or a request made no synchronous SDK call of its own.
    assert _names.ACTIVE_SESSIONS not in sdk_records
    assert _names.ACTIVE_REQUESTS not in sdk_records


def test_the_view_is_a_pure_function_of_the_collected_data() -> None:
    metrics = otel_perf.configure()
    for i in range(100):
        otel_perf.record_tool_call("t", i % 4 != 0, float(i), "E")
    otel_perf.record_cache_miss("c")
    assert metrics.pipeline is not None
    data = metrics.pipeline.collect()
    first = build_document(data, WindowTracker(1000), timestamp=1.0, start_time=0.5)
    second = build_document(data, WindowTracker(1000), timestamp=1.0, start_time=0.5)
    assert first == second
    assert first["tool_metrics"]["t"]["failed_calls"] == 25
    assert extract(data).tools["t"].error_types == {"E": 25}
    assert extract(None).tools == {}


def test_document_schema_units_and_rounding() -> None:
    otel_perf.record_tool_call("chat", True, 2100.123)
    otel_perf.record_tool_call("chat", False, 4500.0, "TimeoutError")
    otel_perf.record_tool_call("chat", True, 850.0)
    otel_perf.record_cache_hit("semantic_cache")
    otel_perf.record_cache_miss("semantic_cache")
    otel_perf.record_cache_miss("semantic_cache")
    document = otel_perf.get_all_metrics()
    assert list(document) == [
        "enabled",
        "timestamp",
        "tool_metrics",
        "cache_metrics",
        "system_metrics",
        "provider_metrics",
    ]
    chat = document["tool_metrics"]["chat"]
    assert list(chat) == [
        "tool_name",
        "total_calls",
        "successful_calls",
        "failed_calls",
        "client_errors",
        "success_rate",
        "avg_latency_ms",
        "p50_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "min_latency_ms",
        "max_latency_ms",
        "error_types",
    ]
    assert chat["success_rate"] == 66.67
    assert chat["avg_latency_ms"] == round((2100.123 + 4500 + 850) / 3, 2)
    assert chat["max_latency_ms"] == 4500.0
    assert chat["min_latency_ms"] == 850.0
    for key, value in chat.items():
        if isinstance(value, float):
            assert value == round(value, 2), key
    cache = document["cache_metrics"]["semantic_cache"]
    assert list(cache) == [
        "cache_name",
        "hits",
        "misses",
        "total_requests",
        "hit_rate",
        "evictions",
        "size_rejections",
    ]
    assert cache["hit_rate"] == 33.33
    system = document["system_metrics"]
    assert list(system) == [
        "active_sessions",
        "concurrent_requests",
        "total_requests",
        "start_time",
        "uptime_seconds",
        "uptime_hours",
        "processes",
    ]
    assert system["processes"] == 1  # live processes included (see "Many processes")
    assert system["total_requests"] == 3
    assert system["start_time"] <= document["timestamp"]
    assert isinstance(document["timestamp"], float)


def test_concurrent_threads_give_exact_totals() -> None:
    otel_perf.configure()
    threads_n, calls = 16, 10_000

    def work(index: int) -> None:
        for i in range(calls):
            if i % 10 == 0:
                otel_perf.record_tool_call("shared", False, 1.0, f"E{index % 2}")
            else:
                with otel_perf.track_tool("shared"):
                    pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    tool = otel_perf.get_all_metrics()["tool_metrics"]["shared"]
    assert tool["total_calls"] == threads_n * calls
    assert tool["failed_calls"] == threads_n * calls // 10
    assert tool["error_types"] == {"E0": 8000, "E1": 8000}
    assert otel_perf.get_all_metrics()["system_metrics"]["concurrent_requests"] == 0


def test_a_thousand_concurrent_tasks_show_up_as_concurrent_requests() -> None:
    otel_perf.configure()

    async def main() -> tuple[int, int]:
        release = asyncio.Event()
        entered = 0

        async def tool() -> None:
            nonlocal entered
            async with otel_perf.track_tool("parallel"):
                entered += 1
                await release.wait()

        tasks = [asyncio.create_task(tool()) for _ in range(1000)]
        while entered < 1000:
            await asyncio.sleep(0.01)
        during = otel_perf.get_all_metrics()["system_metrics"]["concurrent_requests"]
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        after = otel_perf.get_all_metrics()["system_metrics"]["concurrent_requests"]
        return during, after

    during, after = asyncio.run(main())
    assert during == 1000
    assert after == 0
    assert otel_perf.get_all_metrics()["tool_metrics"]["parallel"]["total_calls"] == 1000


def test_reset_gives_a_new_provider_and_clean_slate() -> None:
    metrics = otel_perf.configure()
    old_provider = metrics.meter_provider
    otel_perf.record_tool_call("t", True, 1.0)
    otel_perf.get_collector().reset_metrics()
    assert metrics.meter_provider is not old_provider
    assert _state.current is metrics.recorder
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"] == {}
    assert document["system_metrics"]["total_requests"] == 0
    otel_perf.record_tool_call("t", True, 1.0)
    assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1


def test_other_code_recording_semconv_names_shows_up() -> None:
    metrics = otel_perf.configure()
    assert metrics.meter_provider is not None
    meter = metrics.meter_provider.get_meter("someone-else")
    histogram = meter.create_histogram(_names.MCP_SERVER_OPERATION_DURATION, unit="s")
    histogram.record(0.2, {"mcp.method.name": "tools/call", "gen_ai.tool.name": "theirs"})
    histogram.record(0.1, {"mcp.method.name": "tools/list"})
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"]["theirs"]["total_calls"] == 1
    assert document["tool_metrics"]["theirs"]["p50_latency_ms"] == 200.0
    assert document["system_metrics"]["total_requests"] == 2
