"""``PerformanceMetricsCollector``: the origin module's singleton, backed by the OTel pipeline.

Code written against the origin (``collector = get_collector(); collector.record_tool_call(...)``)
works unchanged; every method forwards to the module-level functions.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from otel_perf import _api, _state
from otel_perf._exphist import EMPTY
from otel_perf._limits import sanitize
from otel_perf._view import latency_fields


class PerformanceMetricsCollector:
    """The process-wide collector; ``PerformanceMetricsCollector()`` always returns the same one.

    >>> PerformanceMetricsCollector() is get_collector()
    True
    """

    _instance: PerformanceMetricsCollector | None = None
    _instance_lock = threading.Lock()

    def __new__(cls) -> PerformanceMetricsCollector:
        if cls._instance is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = super().__new__(cls)
        return cls._instance

    @property
    def enabled(self) -> bool:
        """Whether metrics are being recorded (``PERFORMANCE_METRICS_ENABLED``)."""
        return _state.get_runtime().enabled

    @property
    def window_size(self) -> int:
        return _state.get_runtime().settings.window_size

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
        _state.reset_metrics()


def _reinit_after_fork() -> None:
    # Another thread may have held the lock at fork(); in the child nobody would release it.
    PerformanceMetricsCollector._instance_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def get_collector() -> PerformanceMetricsCollector:
    """The process-wide :class:`PerformanceMetricsCollector`."""
    return PerformanceMetricsCollector()
