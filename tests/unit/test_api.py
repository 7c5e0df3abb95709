"""The public API: its exact surface, origin compatibility, trackers and their error handling."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from pathlib import Path

import pytest

import otel_perf
from otel_perf import _state

EXPECTED_ALL = [
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


def test_public_surface_is_exactly_the_contract() -> None:
    assert sorted(otel_perf.__all__) == EXPECTED_ALL
    for name in otel_perf.__all__:
        assert hasattr(otel_perf, name), name
    assert (Path(otel_perf.__file__).parent / "py.typed").exists()
    assert otel_perf.__version__.count(".") >= 2


@pytest.mark.parametrize(
    ("function", "params"),
    [
        ("record_tool_call", ["tool_name", "success", "latency_ms", "error_type"]),
        ("record_cache_hit", ["cache_name"]),
        ("record_cache_miss", ["cache_name"]),
        ("record_cache_eviction", ["cache_name"]),
        ("record_cache_size_rejection", ["cache_name"]),
        ("set_active_sessions", ["count"]),
        ("set_concurrent_requests", ["count"]),
        ("get_all_metrics", []),
        ("get_collector", []),
        (
            "record_provider_call",
            [
                "provider",
                "success",
                "latency_ms",
                "error_type",
                "model",
                "input_tokens",
                "output_tokens",
                "operation",
            ],
        ),
        ("track_provider", ["provider", "model", "operation"]),
        ("track_tool", ["tool_name"]),
        ("track_session", []),
        ("snapshot", []),
        ("shutdown", ["timeout_s"]),
    ],
)
def test_signatures_keep_the_origin_argument_order(function: str, params: list[str]) -> None:
    signature = inspect.signature(getattr(otel_perf, function))
    assert list(signature.parameters) == params
    if function == "record_tool_call":
        assert signature.parameters["error_type"].default is None


def test_origin_style_code_works_unchanged() -> None:
    # What code written against the origin's performance_metrics module does.
    from otel_perf import PerformanceMetricsCollector, get_all_metrics, get_collector

    collector = get_collector()
    assert collector is PerformanceMetricsCollector()
    collector.record_tool_call("chat", True, 2100.0)
    collector.record_tool_call("chat", False, 4500.0, "TimeoutError")
    collector.record_tool_call("chat", False, 6200.0, error_type="ValueError")
    collector.record_cache_hit("semantic_cache")
    collector.record_cache_miss("semantic_cache")
    collector.record_cache_eviction("semantic_cache")
    collector.record_cache_size_rejection("semantic_cache")
    collector.set_active_sessions(3)
    collector.set_concurrent_requests(1)

    chat = collector.get_tool_metrics("chat")
    assert chat["total_calls"] == 3
    assert chat["successful_calls"] == 1
    assert chat["failed_calls"] == 2
    assert chat["success_rate"] == 33.33
    assert chat["error_types"] == {"TimeoutError": 1, "ValueError": 1}
    cache = collector.get_cache_metrics("semantic_cache")
    assert cache == {
        "cache_name": "semantic_cache",
        "hits": 1,
        "misses": 1,
        "total_requests": 2,
        "hit_rate": 50.0,
        "evictions": 1,
        "size_rejections": 1,
    }
    system = collector.get_system_metrics()
    assert system["active_sessions"] == 3
    assert system["concurrent_requests"] == 1
    assert system["total_requests"] == 3
    assert get_all_metrics()["tool_metrics"]["chat"]["total_calls"] == 3
    assert collector.get_all_metrics()["cache_metrics"]["semantic_cache"]["hits"] == 1

    collector.reset_metrics()
    assert collector.get_tool_metrics("chat")["total_calls"] == 0
    assert get_all_metrics()["tool_metrics"] == {}


def test_unknown_tool_and_cache_give_zero_entries() -> None:
    collector = otel_perf.get_collector()
    tool = collector.get_tool_metrics("never")
    assert tool["total_calls"] == 0
    assert tool["p99_latency_ms"] == 0.0
    assert tool["error_types"] == {}
    assert collector.get_cache_metrics("never")["hit_rate"] == 0.0


def test_calls_before_configure_configure_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_WINDOW_SIZE", "77")
    assert _state.runtime is None
    otel_perf.record_cache_hit("c")  # the very first call, before any configure()
    assert _state.runtime is not None
    assert _state.runtime.settings.window_size == 77
    assert otel_perf.get_all_metrics()["cache_metrics"]["c"]["hits"] == 1


@pytest.mark.parametrize(
    "first_call",
    [
        lambda: otel_perf.record_tool_call("a", True, 1.0),
        lambda: otel_perf.track_tool("a").__enter__().__exit__(None, None, None),
        lambda: otel_perf.set_active_sessions(1),
        lambda: otel_perf.record_provider_call("p", True, 1.0),
        otel_perf.get_all_metrics,
        lambda: otel_perf.get_collector().get_system_metrics(),
    ],
)
def test_any_first_call_works(first_call: object) -> None:
    first_call()  # type: ignore[operator]
    assert otel_perf.get_all_metrics()["enabled"] is True


def test_track_tool_context_manager_and_decorators() -> None:
    with otel_perf.track_tool("cm"):
        pass

    @otel_perf.track_tool("sync_fn")
    def add(a: int, b: int) -> int:
        return a + b

    @otel_perf.track_tool("async_fn")
    async def mul(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a * b

    async def use_async_with() -> None:
        async with otel_perf.track_tool("acm"):
            await asyncio.sleep(0)

    assert add(2, 3) == 5
    assert asyncio.run(mul(2, 3)) == 6
    asyncio.run(use_async_with())
    assert add.__name__ == "add"
    assert inspect.iscoroutinefunction(mul)
    assert list(inspect.signature(add).parameters) == ["a", "b"]
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    for name in ("cm", "sync_fn", "async_fn", "acm"):
        assert tools[name]["total_calls"] == 1
        assert tools[name]["successful_calls"] == 1


def test_the_callers_exception_propagates_unchanged_and_is_counted() -> None:
    class QuotaExceeded(Exception):
        pass

    original = QuotaExceeded("over quota")

    def fail() -> None:
        raise original

    with pytest.raises(QuotaExceeded) as caught, otel_perf.track_tool("q"):
        fail()
    assert caught.value is original
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert "fail" in frames  # the traceback still reaches the raising function

    @otel_perf.track_tool("q")
    def decorated() -> None:
        fail()

    with pytest.raises(QuotaExceeded) as caught_again:
        decorated()
    assert caught_again.value is original

    tool = otel_perf.get_all_metrics()["tool_metrics"]["q"]
    assert tool["failed_calls"] == 2
    assert tool["error_types"] == {"QuotaExceeded": 2}


def test_cancelled_error_is_counted_and_reraised() -> None:
    started = asyncio.Event()

    @otel_perf.track_tool("slow")
    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    async def main() -> None:
        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    tool = otel_perf.get_all_metrics()["tool_metrics"]["slow"]
    assert tool["error_types"] == {"CancelledError": 1}
    assert otel_perf.get_all_metrics()["system_metrics"]["concurrent_requests"] == 0


def test_generator_functions_are_refused_at_decoration() -> None:
    def gen() -> object:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        otel_perf.track_tool("g")(gen)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    def __bool__(self) -> bool:
        raise RuntimeError("no truth either")


HOSTILE = [
    None,
    "",
    "x" * 1_000_000,
    "tab\tnew\nline\x00nul",
    123,
    4.5,
    ["unhashable"],
    {"a": 1},
    _Unprintable(),
    float("nan"),
    b"bytes",
]
HOSTILE_LATENCIES = [
    float("nan"),
    float("inf"),
    -float("inf"),
    -5.0,
    1e300,
    "12",
    None,
    [],
    object(),
]


def test_no_record_call_raises_whatever_it_is_given() -> None:
    for value in HOSTILE:
        for latency in HOSTILE_LATENCIES:
            otel_perf.record_tool_call(value, value, latency, value)  # type: ignore[arg-type]
            otel_perf.record_provider_call(value, value, latency, value, value, value, value)  # type: ignore[arg-type]
        otel_perf.record_cache_hit(value)  # type: ignore[arg-type]
        otel_perf.record_cache_miss(value)  # type: ignore[arg-type]
        otel_perf.record_cache_eviction(value)  # type: ignore[arg-type]
        otel_perf.record_cache_size_rejection(value)  # type: ignore[arg-type]
        otel_perf.set_active_sessions(value)  # type: ignore[arg-type]
        otel_perf.set_concurrent_requests(value)  # type: ignore[arg-type]
        with otel_perf.track_tool(value):  # type: ignore[arg-type]
            pass
        with otel_perf.track_provider(value, value) as call:  # type: ignore[arg-type]
            call.set_tokens(value, value)  # type: ignore[arg-type]
    document = otel_perf.get_all_metrics()
    assert document["enabled"] is True
    for name in document["tool_metrics"]:
        assert len(name) <= 256
        assert name.isprintable()


def test_bad_latencies_have_their_documented_outcome() -> None:
    otel_perf.record_tool_call("neg", True, -5.0)
    otel_perf.record_tool_call("huge", True, 1e300)
    otel_perf.record_tool_call("nan", True, float("nan"))
    otel_perf.record_tool_call("text", True, "abc")  # type: ignore[arg-type]
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["neg"]["max_latency_ms"] == 0.0  # clamped to 0, counted
    assert tools["neg"]["total_calls"] == 1
    assert tools["huge"]["max_latency_ms"] == 86_400_000.0  # clamped to one day, counted
    assert "nan" not in tools  # dropped
    assert "text" not in tools  # dropped


def test_names_are_sanitised() -> None:
    otel_perf.record_tool_call(None, True, 1.0)  # type: ignore[arg-type]
    otel_perf.record_tool_call("", True, 1.0)
    otel_perf.record_tool_call(7, True, 1.0)  # type: ignore[arg-type]
    otel_perf.record_tool_call("a\nb", True, 1.0)
    otel_perf.record_tool_call("y" * 1000, True, 1.0)
    otel_perf.record_tool_call("t", False, 1.0)  # failure without an error type
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["unknown"]["total_calls"] == 2
    assert tools["7"]["total_calls"] == 1
    assert tools["a?b"]["total_calls"] == 1
    assert tools["y" * 256]["total_calls"] == 1
    assert tools["t"]["error_types"] == {"_OTHER": 1}


def test_caps_fold_extra_names_into_other(caplog: pytest.LogCaptureFixture) -> None:
    otel_perf.configure(max_tools=5, max_error_types=3, max_caches=2)
    for i in range(50):
        otel_perf.record_tool_call(f"tool-{i}", False, 1.0, f"Error{i}")
        otel_perf.record_cache_hit(f"cache-{i}")
    document = otel_perf.get_all_metrics()
    tools = document["tool_metrics"]
    assert len(tools) == 6  # five kept, one _OTHER
    assert tools["_OTHER"]["total_calls"] == 45
    assert sum(t["total_calls"] for t in tools.values()) == 50  # totals stay exact
    error_types: set[str] = set()
    for tool in tools.values():
        error_types.update(tool["error_types"])
    assert error_types == {"Error0", "Error1", "Error2", "_OTHER"}
    assert len(document["cache_metrics"]) == 3
    assert document["cache_metrics"]["_OTHER"]["hits"] == 48
    cap_warnings = [r for r in caplog.records if "distinct tool names" in r.getMessage()]
    assert len(cap_warnings) == 1


def test_provider_calls_and_tokens() -> None:
    otel_perf.record_provider_call(
        "openai", True, 800.0, model="gpt-4o", input_tokens=100, output_tokens=20
    )
    otel_perf.record_provider_call("openai", False, 1500.0, "RateLimitError", model="gpt-4o")
    with otel_perf.track_provider("anthropic", model="claude") as call:
        call.set_tokens(input_tokens=50, output_tokens=5)
    with pytest.raises(ConnectionError), otel_perf.track_provider("anthropic", model="claude"):
        raise ConnectionError("down")
    providers = otel_perf.get_all_metrics()["provider_metrics"]
    openai = providers["openai"]
    assert openai["total_calls"] == 2
    assert openai["failed_calls"] == 1
    assert openai["error_types"] == {"RateLimitError": 1}
    assert openai["input_tokens"] == 100
    assert openai["output_tokens"] == 20
    assert openai["models"]["gpt-4o"]["total_calls"] == 2
    assert openai["max_latency_ms"] == 1500.0
    anthropic = providers["anthropic"]
    assert anthropic["error_types"] == {"ConnectionError": 1}
    assert anthropic["models"]["claude"]["input_tokens"] == 50


def test_track_session_counts_while_inside() -> None:
    with otel_perf.track_session():
        with otel_perf.track_session():
            inside = otel_perf.get_all_metrics()["system_metrics"]["active_sessions"]
        assert inside == 2
    otel_perf.set_active_sessions(5)
    assert otel_perf.get_all_metrics()["system_metrics"]["active_sessions"] == 5


def test_shutdown_then_use_again_configures_anew() -> None:
    otel_perf.record_tool_call("a", True, 1.0)
    otel_perf.shutdown()
    assert _state.runtime is None
    otel_perf.record_tool_call("b", True, 1.0)
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert list(tools) == ["b"]
