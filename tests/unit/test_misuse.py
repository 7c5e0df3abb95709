"""Misuse of the trackers gets the right measurement (or a clear warning once), never a wrong
number in silence and never a replaced exception."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest

import otel_perf


def _tool(name: str) -> dict[str, Any]:
    tool: dict[str, Any] = otel_perf.get_all_metrics()["tool_metrics"][name]
    return tool


def test_a_sync_function_returning_a_coroutine_is_measured_until_it_finishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def work(fail: bool) -> str:
        await asyncio.sleep(0.05)
        if fail:
            raise KeyError("late")
        return "done"

    def not_async(fail: bool) -> Any:  # a plain function that returns a coroutine
        return work(fail)

    tracked = otel_perf.track_tool("late")(not_async)

    async def main() -> None:
        assert await tracked(False) == "done"
        with pytest.raises(KeyError):
            await tracked(True)

    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        asyncio.run(main())
    tool = _tool("late")
    assert tool["total_calls"] == 2
    assert tool["failed_calls"] == 1  # the failure inside the coroutine was seen
    assert tool["error_types"] == {"KeyError": 1}
    assert tool["min_latency_ms"] >= 40  # the coroutine's time, not a ~0 ms return
    assert len([r for r in caplog.records if "async def" in r.getMessage()]) == 1


def test_a_partial_of_an_async_function_is_awaited_properly() -> None:
    async def work(delay: float) -> None:
        await asyncio.sleep(delay)

    tracked = otel_perf.track_tool("partial")(functools.partial(work, 0.02))
    asyncio.run(tracked())
    assert _tool("partial")["min_latency_ms"] >= 15


def test_one_tracker_shared_by_concurrent_tasks_counts_every_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = otel_perf.track_tool("shared")

    async def one(i: int) -> None:
        async with shared:
            await asyncio.sleep(0.001 * (i % 7))
            if i % 10 == 0:
                raise ValueError(i)

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(1000)), return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        asyncio.run(main())
    metrics = otel_perf.get_all_metrics()
    tool = metrics["tool_metrics"]["shared"]
    assert tool["total_calls"] == 1000  # was 1
    assert tool["failed_calls"] == 100
    assert metrics["system_metrics"]["concurrent_requests"] == 0  # was stuck at 999
    assert len([r for r in caplog.records if "entered again" in r.getMessage()]) == 1


def test_one_tracker_nested_in_one_thread_counts_both() -> None:
    shared = otel_perf.track_tool("nested")
    with shared, shared:
        pass
    metrics = otel_perf.get_all_metrics()
    assert metrics["tool_metrics"]["nested"]["total_calls"] == 2
    assert metrics["system_metrics"]["concurrent_requests"] == 0


class _NamelessMeta(type):
    @property
    def __name__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("no name for you")


class Nameless(Exception, metaclass=_NamelessMeta):
    pass


def test_an_exception_class_whose_name_raises_comes_out_unchanged() -> None:
    original = Nameless("mine")
    with pytest.raises(Nameless) as caught, otel_perf.track_tool("nameless"):
        raise original
    assert caught.value is original

    @otel_perf.track_tool("nameless")
    def decorated() -> None:
        raise original

    with pytest.raises(Nameless) as caught:
        decorated()
    assert caught.value is original
    with pytest.raises(Nameless) as caught, otel_perf.track_provider("p"):
        raise original
    assert caught.value is original
    tool = _tool("nameless")
    assert tool["failed_calls"] == 2
    assert tool["error_types"] == {"unknown": 2}
