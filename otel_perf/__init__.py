"""otel-perf: OpenTelemetry-based performance metrics for Python MCP servers.

>>> import otel_perf
>>> with otel_perf.track_tool("search"):
...     pass
>>> otel_perf.get_all_metrics()["tool_metrics"]["search"]["total_calls"]
1
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from otel_perf._api import (
    ProviderTracker,
    SessionTracker,
    ToolTracker,
    get_all_metrics,
    record_cache_eviction,
    record_cache_hit,
    record_cache_miss,
    record_cache_size_rejection,
    record_provider_call,
    record_tool_call,
    set_active_sessions,
    set_concurrent_requests,
    snapshot,
    track_provider,
    track_session,
    track_tool,
)
from otel_perf._compat import PerformanceMetricsCollector, get_collector
from otel_perf._configure import configure, shutdown
from otel_perf._settings import Settings
from otel_perf._version import __version__

if TYPE_CHECKING:
    from otel_perf._metrics import Metrics
    from otel_perf._pipeline import CollectionError

# Loaded on first use: they bring in the OpenTelemetry SDK, which recording does not need
# until the first configuration (see ``configure``). ``import otel_perf`` stays cheap.
_LAZY = {"Metrics": "otel_perf._metrics", "CollectionError": "otel_perf._pipeline"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_perf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CollectionError",
    "Metrics",
    "PerformanceMetricsCollector",
    "ProviderTracker",
    "SessionTracker",
    "Settings",
    "ToolTracker",
    "__version__",
    "configure",
    "get_all_metrics",
    "get_collector",
    "record_cache_eviction",
    "record_cache_hit",
    "record_cache_miss",
    "record_cache_size_rejection",
    "record_provider_call",
    "record_tool_call",
    "set_active_sessions",
    "set_concurrent_requests",
    "shutdown",
    "snapshot",
    "track_provider",
    "track_session",
    "track_tool",
]
