"""Type-checked usage of the public API (``dev.py test`` runs ``mypy --strict`` on this file).

If a public signature changes in a way that breaks callers, this file stops type-checking.
It also runs under pytest as a smoke test of the same calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

import otel_perf


@otel_perf.track_tool("typed_sync")
def typed_sync(x: int) -> str:
    return str(x)


@otel_perf.track_tool("typed_async")
async def typed_async(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def use_everything() -> dict[str, Any]:
    metrics: otel_perf.Metrics = otel_perf.configure(json_port=0)
    url: str | None = metrics.url
    assert url is None or url.startswith("http")
    text: str = typed_sync(3)
    doubled: int = asyncio.run(typed_async(2))
    assert (text, doubled) == ("3", 4)
    otel_perf.record_tool_call("t", True, 1.5)
    otel_perf.record_tool_call("t", False, 2.5, "ValueError")
    otel_perf.record_cache_hit("c")
    otel_perf.record_cache_miss("c")
    otel_perf.record_cache_eviction("c")
    otel_perf.record_cache_size_rejection("c")
    otel_perf.set_active_sessions(1)
    otel_perf.set_concurrent_requests(0)
    otel_perf.record_provider_call(
        "p", True, 10.0, model="m", input_tokens=1, output_tokens=2, operation="chat"
    )
    tracker: otel_perf.ToolTracker
    with otel_perf.track_tool("t") as tracker:
        assert tracker.tool_name == "t"
    call: otel_perf.ProviderTracker
    with otel_perf.track_provider("p", "m") as call:
        call.set_tokens(input_tokens=3, output_tokens=4)
    with otel_perf.track_session():
        pass
    collector: otel_perf.PerformanceMetricsCollector = otel_perf.get_collector()
    tool: dict[str, Any] = collector.get_tool_metrics("t")
    assert tool["total_calls"] == 3
    document: dict[str, Any] = otel_perf.snapshot()
    return document


def test_typed_usage_runs() -> None:
    document = use_everything()
    assert document["tool_metrics"]["typed_sync"]["total_calls"] == 1
    assert document["tool_metrics"]["typed_async"]["total_calls"] == 1
