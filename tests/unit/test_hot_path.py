"""The tuned hot paths (track_tool's inlined exit, record_tool_call's fast path, the lock-free
in-flight counter) record exactly what the general path records, whatever the input."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import otel_perf
from otel_perf import _configure
from otel_perf._sanitize import MAX_NAME_LENGTH


class _Name(str):
    """A str subclass: never taken by the fast paths, which only cache exact ``str`` names."""


#: Names the fast paths never take, each with the name it is recorded under.
_UNUSUAL_NAMES = [
    (_Name("sub"), "sub"),
    ("x" * (MAX_NAME_LENGTH + 10), "x" * MAX_NAME_LENGTH),
    ("bad\nname", "bad?name"),
    (42, "42"),
    (None, "unknown"),
]


def _tools() -> dict[str, Any]:
    tools: dict[str, Any] = otel_perf.get_all_metrics()["tool_metrics"]
    return tools


def test_first_and_later_calls_of_a_tool_count_alike() -> None:
    for _ in range(3):  # the first call builds the series, the others take the fast path
        with otel_perf.track_tool("t"):
            pass
        otel_perf.record_tool_call("t", True, 5.0)
    tool = _tools()["t"]
    assert tool["total_calls"] == 6
    assert tool["failed_calls"] == 0
    assert tool["max_latency_ms"] == 5.0


@pytest.mark.parametrize(("raw", "expected"), _UNUSUAL_NAMES)
def test_unusual_names_take_the_general_path(raw: Any, expected: str) -> None:
    for _ in range(2):
        with otel_perf.track_tool(raw):
            pass
        otel_perf.record_tool_call(raw, True, 1.0)

    @otel_perf.track_tool(raw)
    def tool() -> None:
        return None

    tool()
    tool()
    assert _tools()[expected]["total_calls"] == 6


def test_first_and_later_hits_and_misses_of_a_cache_count_alike() -> None:
    for _ in range(3):  # the first call builds each series, the others take the fast path
        otel_perf.record_cache_hit("c")
        otel_perf.record_cache_miss("c")
    otel_perf.record_cache_hit("c")
    cache = otel_perf.get_all_metrics()["cache_metrics"]["c"]
    assert (cache["hits"], cache["misses"]) == (4, 3)


@pytest.mark.parametrize(("raw", "expected"), _UNUSUAL_NAMES)
def test_unusual_cache_names_take_the_general_path(raw: Any, expected: str) -> None:
    for _ in range(2):
        otel_perf.record_cache_hit(raw)
        otel_perf.record_cache_miss(raw)
    cache = otel_perf.get_all_metrics()["cache_metrics"][expected]
    assert (cache["hits"], cache["misses"]) == (2, 2)


def test_an_unhashable_name_is_recorded_not_raised() -> None:
    name: Any = ["a", "list"]
    with otel_perf.track_tool(name):
        pass
    otel_perf.record_tool_call(name, True, 1.0)
    assert _tools()["['a', 'list']"]["total_calls"] == 2


def test_failures_and_bad_latencies_keep_their_outcomes() -> None:
    with pytest.raises(KeyError), otel_perf.track_tool("f"):
        raise KeyError("x")
    otel_perf.record_tool_call("f", True, 1.0)  # cached now: fast path
    otel_perf.record_tool_call("f", True, float("nan"))  # dropped
    otel_perf.record_tool_call("f", True, -5.0)  # clamped to 0
    otel_perf.record_tool_call("f", True, 1e12)  # clamped to a day
    otel_perf.record_tool_call("f", True, "oops")  # type: ignore[arg-type]  # dropped
    otel_perf.record_tool_call("f", False, 2.0)
    tool = _tools()["f"]
    assert tool["total_calls"] == 5
    assert tool["failed_calls"] == 2
    assert tool["error_types"] == {"KeyError": 1, "_OTHER": 1}
    assert tool["min_latency_ms"] == 0.0
    assert tool["max_latency_ms"] == 86_400_000.0


def test_in_flight_counts_blocked_calls_and_returns_to_zero() -> None:
    inside = threading.Barrier(5)
    release = threading.Event()

    def blocked() -> None:
        with otel_perf.track_tool("slow"):
            inside.wait()
            release.wait(10)

    def busy() -> None:
        for _ in range(2000):
            with otel_perf.track_tool("fast"):
                pass

    blockers = [threading.Thread(target=blocked) for _ in range(4)]
    workers = [threading.Thread(target=busy) for _ in range(3)]
    for thread in blockers:
        thread.start()
    inside.wait(10)
    for thread in workers:
        thread.start()
    seen = []
    while any(worker.is_alive() for worker in workers):
        seen.append(_configure.get_runtime().snapshot()["system_metrics"]["concurrent_requests"])
    for worker in workers:
        worker.join()
    assert min(seen, default=4) >= 4  # the four blocked calls are always counted
    assert otel_perf.get_all_metrics()["system_metrics"]["concurrent_requests"] == 4
    release.set()
    for thread in blockers:
        thread.join()
    metrics = otel_perf.get_all_metrics()
    assert metrics["system_metrics"]["concurrent_requests"] == 0
    assert metrics["tool_metrics"]["fast"]["total_calls"] == 6000


def test_a_configuration_change_mid_call_finishes_on_the_recorder_it_started_on() -> None:
    first = otel_perf.configure(window_size=10)
    recorder = first.recorder
    assert recorder is not None
    with otel_perf.track_tool("moved"):
        assert recorder.in_flight == 1
        otel_perf.configure(window_size=20)  # replaces the instance while the call runs
    assert recorder.in_flight == 0
    second = _configure.get_runtime().recorder
    assert second is not None
    assert second.in_flight == 0
