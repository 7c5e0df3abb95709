"""What otel-perf is compared with: the bare SDK floor, a naive OTel recorder, an origin-style
recorder, and prometheus_client.

- :class:`BareSdk`: an SDK ``MeterProvider`` with one ``InMemoryMetricReader`` and otel-perf's
  own views, so a single instrument call on it is the floor any OTel-based design pays.
- :class:`NaiveOtelRecorder`: how a tool call is often instrumented by hand — an UpDownCounter
  +1/-1 around the call, a histogram record and a call counter, each with an attribute dict
  built per call — on its own provider with the SDK's default aggregations.
- :class:`OriginStyleCollector`: the origin note's design — one re-entrant lock, per-tool
  counters and a ``deque(maxlen=window)`` of latency samples, percentiles by
  ``statistics.quantiles`` at read time (without the origin's tuple-unpack bug).
- :func:`prometheus_subjects`: a prometheus_client histogram with labels per call, and a
  pre-bound child, plus an in-progress gauge.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Histogram as PromHistogram

from otel_perf import _semconv as n
from otel_perf._pipeline import _views
from otel_perf._recorder import Recorder
from otel_perf._settings import Settings

#: The attributes of the series a successful tracked call records (the semantic conventions'
#: three: method, operation and tool name), so the bare record is the floor for the same data.
TOOL_ATTRS = {
    n.MCP_METHOD_NAME: n.METHOD_TOOLS_CALL,
    n.GEN_AI_OPERATION_NAME: n.OPERATION_EXECUTE_TOOL,
    n.GEN_AI_TOOL_NAME: "search",
}
CACHE_HIT_ATTRS = {n.CACHE_NAME: "semantic_cache", n.CACHE_RESULT: n.CACHE_HIT}


class BareSdk:
    """One SDK provider, one in-memory reader, otel-perf's views: the OTel floor."""

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            metric_readers=[self.reader], views=_views(settings), shutdown_on_exit=False
        )
        meter = self.provider.get_meter("bench.bare")
        self.histogram = meter.create_histogram(
            n.MCP_SERVER_OPERATION_DURATION,
            unit=n.UNIT_SECONDS,
            explicit_bucket_boundaries_advisory=n.MCP_DURATION_BUCKETS,
        )
        self.counter = meter.create_counter(n.CACHE_REQUESTS, unit=n.UNIT_REQUESTS)

    def shutdown(self) -> None:
        self.provider.shutdown()


class BareRecorderSdk:
    """otel-perf's own instruments (a :class:`Recorder`) on a provider with an in-memory
    reader: the "same instruments, views and data" that a bare ``get_metrics_data()`` reads."""

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            metric_readers=[self.reader], views=_views(settings), shutdown_on_exit=False
        )
        self.recorder = Recorder(settings)
        self.recorder.attach(self.provider.get_meter(n.METER_NAME))

    def shutdown(self) -> None:
        self.provider.shutdown()


class _NaiveCall:
    __slots__ = ("_attrs", "_owner", "_start")

    def __init__(self, owner: NaiveOtelRecorder, tool: str) -> None:
        self._owner = owner
        self._attrs = {n.MCP_METHOD_NAME: n.METHOD_TOOLS_CALL, n.GEN_AI_TOOL_NAME: tool}
        self._start = 0.0

    def __enter__(self) -> None:
        self._owner.active.add(1, self._attrs)
        self._start = perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        owner = self._owner
        owner.duration.record(perf_counter() - self._start, self._attrs)
        owner.calls.add(1, self._attrs)
        owner.active.add(-1, self._attrs)


class NaiveOtelRecorder:
    """A hand-written OTel tool-call recorder: four SDK calls per tool call."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)
        meter = self.provider.get_meter("bench.naive")
        self.active = meter.create_up_down_counter("mcp.server.active_requests")
        self.duration = meter.create_histogram(n.MCP_SERVER_OPERATION_DURATION, unit="s")
        self.calls = meter.create_counter("mcp.server.tool_calls")

    def track(self, tool: str) -> _NaiveCall:
        return _NaiveCall(self, tool)

    def shutdown(self) -> None:
        self.provider.shutdown()


@dataclass
class _OriginTool:
    window: int
    total: int = 0
    successful: int = 0
    failed: int = 0
    total_latency: float = 0.0
    min_latency: float = float("inf")
    max_latency: float = 0.0
    latencies: deque[float] = field(default_factory=deque)
    error_types: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.latencies = deque(maxlen=self.window)


class OriginStyleCollector:
    """The origin note's collector: everything under one ``RLock``, samples in deques."""

    def __init__(self, window: int = 1000) -> None:
        self._window = window
        self._lock = threading.RLock()
        self._tools: dict[str, _OriginTool] = {}
        self._total_requests = 0
        self._start = time.time()

    def record_tool_call(
        self, tool_name: str, success: bool, latency_ms: float, error_type: str | None = None
    ) -> None:
        with self._lock:
            tool = self._tools.get(tool_name)
            if tool is None:
                tool = self._tools[tool_name] = _OriginTool(self._window)
            tool.total += 1
            if success:
                tool.successful += 1
            else:
                tool.failed += 1
                if error_type:
                    tool.error_types[error_type] = tool.error_types.get(error_type, 0) + 1
            tool.total_latency += latency_ms
            tool.min_latency = min(tool.min_latency, latency_ms)
            tool.max_latency = max(tool.max_latency, latency_ms)
            tool.latencies.append(latency_ms)
            self._total_requests += 1

    def get_all_metrics(self) -> dict[str, Any]:
        with self._lock:
            tools = {}
            for name, tool in self._tools.items():
                samples = list(tool.latencies)
                if len(samples) >= 2:
                    cuts = statistics.quantiles(samples, n=100, method="inclusive")
                    p50, p95, p99 = cuts[49], cuts[94], cuts[98]
                else:
                    p50 = p95 = p99 = samples[0] if samples else 0.0
                tools[name] = {
                    "tool_name": name,
                    "total_calls": tool.total,
                    "successful_calls": tool.successful,
                    "failed_calls": tool.failed,
                    "success_rate": round(100.0 * tool.successful / tool.total, 2),
                    "avg_latency_ms": round(tool.total_latency / tool.total, 2),
                    "p50_latency_ms": round(p50, 2),
                    "p95_latency_ms": round(p95, 2),
                    "p99_latency_ms": round(p99, 2),
                    "min_latency_ms": round(tool.min_latency, 2),
                    "max_latency_ms": round(tool.max_latency, 2),
                    "error_types": dict(tool.error_types),
                }
            return {
                "enabled": True,
                "timestamp": time.time(),
                "tool_metrics": tools,
                "system_metrics": {"total_requests": self._total_requests},
            }


@dataclass
class PrometheusSubjects:
    """A prometheus_client histogram (with an in-progress gauge) and one pre-bound child."""

    registry: CollectorRegistry
    histogram: PromHistogram
    bound: Any
    in_progress: Gauge


def prometheus_subjects() -> PrometheusSubjects:
    registry = CollectorRegistry()
    histogram = PromHistogram(
        "mcp_server_operation_duration_seconds",
        "Duration of MCP requests",
        ["mcp_method_name", "gen_ai_tool_name"],
        registry=registry,
        buckets=n.MCP_DURATION_BUCKETS,
    )
    in_progress = Gauge("mcp_server_active_requests", "In-flight requests", registry=registry)
    return PrometheusSubjects(
        registry, histogram, histogram.labels(n.METHOD_TOOLS_CALL, "search"), in_progress
    )
