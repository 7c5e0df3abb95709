"""otel-perf: OpenTelemetry-based performance metrics for Python MCP servers.

>>> import otel_perf
>>> with otel_perf.track_tool("search"):
...     pass
>>> otel_perf.get_all_metrics()["tool_metrics"]["search"]["total_calls"]
1
"""

from __future__ import annotations

import importlib

from otel_perf._version import __version__

# Not ``typing.TYPE_CHECKING``: importing typing is a measurable share of this package's own
# start-up, and type checkers treat any constant of this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
    from otel_perf._errors import CollectionError
    from otel_perf._metrics import Metrics
    from otel_perf._settings import Settings

# Every public name loads from its module on first use (PEP 562), then is an ordinary module
# attribute. Start-up counts for stdio servers, which MCP clients spawn on demand: the
# ``otel-perf`` command, ``otel-perf run`` and a server that only imports ``otel_perf.mcp`` pay
# for what they use. ``Metrics`` and ``CollectionError`` bring in the OpenTelemetry SDK, which
# recording needs only from the first configuration on.
_API = (
    "ProviderTracker",
    "SessionTracker",
    "ToolTracker",
    "get_all_metrics",
    "record_cache_eviction",
    "record_cache_hit",
    "record_cache_miss",
    "record_cache_size_rejection",
    "record_provider_call",
    "record_tool_call",
    "set_active_sessions",
    "set_concurrent_requests",
    "snapshot",
    "track_provider",
    "track_session",
    "track_tool",
)
_API_MODULE = "otel_perf._api"
_SOURCES: dict[str, str] = {
    **dict.fromkeys(_API, _API_MODULE),
    "PerformanceMetricsCollector": "otel_perf._compat",
    "get_collector": "otel_perf._compat",
    "configure": "otel_perf._configure",
    "shutdown": "otel_perf._configure",
    "Metrics": "otel_perf._metrics",
    "CollectionError": "otel_perf._errors",
    "Settings": "otel_perf._settings",
}


#: Record calls that return nothing, so they can be made later (see ``__getattr__``).
_DEFERRABLE = frozenset(name for name in _API if name.startswith(("record_", "set_")))
#: Calls made by a signal handler while their module was half imported, in order.
_EARLY: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'otel_perf' has no attribute {name!r}")
    module = importlib.import_module(source)
    try:
        value = getattr(module, name)
    except AttributeError:
        # ``source`` is half imported: a signal handler interrupted its import on this thread
        # (the thread cannot wait for itself). A record call is kept and made as soon as the
        # import is done; anything else is an error the caller can read.
        if name not in _DEFERRABLE:
            raise AttributeError(
                f"otel_perf.{name} was used while {source} was being imported on the same "
                "thread (from a signal handler?); use it after the first import completes"
            ) from None
        return _later(name)
    globals()[name] = value
    while _EARLY and source == _API_MODULE:  # the interrupted import is done: make them now
        early, args, kwargs = _EARLY.pop(0)
        getattr(module, early)(*args, **kwargs)
    return value


def _later(name: str) -> Any:
    def call_later(*args: Any, **kwargs: Any) -> None:
        _EARLY.append((name, args, kwargs))

    return call_later


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))


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
