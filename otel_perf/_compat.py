"""``PerformanceMetricsCollector``: the origin module's singleton, backed by the OTel pipeline.

Code written against the origin (``collector = get_collector(); collector.record_tool_call(...)``)
works unchanged; every method forwards to the module-level functions.
"""

from __future__ import annotations

from typing import Any

from otel_perf import _api, _configure, _state
from otel_perf._exphist import EMPTY
from otel_perf._latency import latency_fields
from otel_perf._sanitize import sanitize


class PerformanceMetricsCollector:
    """The process-wide collector; ``PerformanceMetricsCollector()`` always returns the same one.

    >>> PerformanceMetricsCollector() is get_collector()
    True
    """

    def __new__(cls) -> PerformanceMetricsCollector:
        instance = _state.compat_collector
        if not isinstance(instance, PerformanceMetricsCollector):
            with _state.compat_lock:
                instance = _state.compat_collector
                if not isinstance(instance, PerformanceMetricsCollector):
                    instance = _state.compat_collector = super().__new__(cls)
        return instance

    @property
    def enabled(self) -> bool:
        """Whether metrics are being recorded (``PERFORMANCE_METRICS_ENABLED``)."""
        return _configure.get_runtime().enabled

    @property
    def window_size(self) -> int:
        return _configure.get_runtime().settings.window_size

    def record_tool_call(
        self, tool_name: str, success: bool, latency_ms: float, error_type: str | None = None
    ) -> None:
        _api.record_tool_call(tool_name, success, latency_ms, error_type)

    def record_cache_hit(self, cache_name: str) -> None:
        _api.record_cache_hit(cache_name)

    def record_cache_miss(self, cache_name: str) -> None:
        _api.record_cache_miss(cache_name)

    def record_cache_eviction(self, cache_name: str) -> None:
        _api.record_cache_eviction(cache_name)

    def record_cache_size_rejection(self, cache_name: str) -> None:
        _api.record_cache_size_rejection(cache_name)

    def set_active_sessions(self, count: int) -> None:
        _api.set_active_sessions(count)

    def set_concurrent_requests(self, count: int) -> None:
        _api.set_concurrent_requests(count)

    def get_tool_metrics(self, tool_name: str) -> dict[str, Any]:
        """One tool's entry of the document; an all-zero entry for a tool never called."""
        name = sanitize(tool_name)
        entry = _api.get_all_metrics()["tool_metrics"].get(name)
        if entry is not None:
            return dict(entry)
        return {
            "tool_name": name,
            "total_calls": 0,
            "successful_calls": 0,
            "failed_calls": 0,
            "success_rate": 0.0,
            **latency_fields(EMPTY),
            "error_types": {},
        }

    def get_cache_metrics(self, cache_name: str) -> dict[str, Any]:
        """One cache's entry of the document; an all-zero entry for a cache never used."""
        name = sanitize(cache_name)
        entry = _api.get_all_metrics()["cache_metrics"].get(name)
        if entry is not None:
            return dict(entry)
        return {
            "cache_name": name,
            "hits": 0,
            "misses": 0,
            "total_requests": 0,
            "hit_rate": 0.0,
            "evictions": 0,
            "size_rejections": 0,
        }

    def get_system_metrics(self) -> dict[str, Any]:
        """The ``system_metrics`` section of the document."""
        return dict(_api.get_all_metrics()["system_metrics"])

    def get_all_metrics(self) -> dict[str, Any]:
        return _api.get_all_metrics()

    def reset_metrics(self) -> None:
        """Zero everything (a new MeterProvider); the endpoint keeps running."""
        _configure.reset_metrics()


def get_collector() -> PerformanceMetricsCollector:
    """The process-wide :class:`PerformanceMetricsCollector`."""
    return PerformanceMetricsCollector()
