"""Record calls never wait on a collection, and a collection asked for from inside one fails
at once instead of waiting on itself (in-process cases; the signal and fork cases run in child
interpreters in tests/integration/test_never_block.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import pytest
from opentelemetry.metrics import CallbackOptions, Observation

import otel_perf
from otel_perf import _guard
from otel_perf._configure import get_runtime


def test_records_go_on_while_a_collection_waits_in_a_callback() -> None:
    provider = otel_perf.configure(json_enabled=False).meter_provider
    assert provider is not None
    inside, release = threading.Event(), threading.Event()

    def slow(_options: CallbackOptions) -> Iterable[Observation]:
        inside.set()
        release.wait(20)
        return (Observation(1),)

    provider.get_meter("test").create_observable_gauge("test.slow", callbacks=[slow])
    otel_perf.record_tool_call("t", True, 1.0)  # the series exists before the collection
    collector = threading.Thread(target=otel_perf.get_all_metrics)
    collector.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        for _ in range(2000):
            otel_perf.record_tool_call("t", True, 1.0)
            with otel_perf.track_tool("new-during-collection"):
                pass
            otel_perf.record_cache_hit("c")
        # Done while the collection is still stuck in its callback: nothing waited for it.
        assert collector.is_alive()
        assert time.monotonic() - started < 15
    finally:
        release.set()
        collector.join(20)
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["t"]["total_calls"] == 2001
    assert tools["new-during-collection"]["total_calls"] == 2000


def test_get_all_metrics_inside_an_observable_callback_fails_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = otel_perf.configure(json_enabled=False).meter_provider
    assert provider is not None
    seen: list[BaseException] = []

    def nested(_options: CallbackOptions) -> Iterable[Observation]:
        try:
            otel_perf.get_all_metrics()
        except otel_perf.CollectionError as exc:
            seen.append(exc)
        return (Observation(1),)

    provider.get_meter("test").create_observable_gauge("test.nested", callbacks=[nested])
    otel_perf.record_tool_call("t", True, 1.0)
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        started = time.monotonic()
        for _ in range(3):
            document = otel_perf.get_all_metrics()
        elapsed = time.monotonic() - started
    assert elapsed < 5  # it stalled every collection for 30 s
    assert document["tool_metrics"]["t"]["total_calls"] == 1
    assert len(seen) == 3
    assert "inside a collection" in str(seen[0])
    nested_warnings = [r for r in caplog.records if "inside a collection" in r.getMessage()]
    assert len(nested_warnings) == 1  # once, however often it happens


def test_a_record_on_a_busy_thread_is_queued_not_dropped() -> None:
    # What a signal handler sees when it interrupts the SDK: this thread is inside it (holding
    # one of its locks). A record only queues, so it neither waits on that lock nor is lost.
    otel_perf.configure(json_enabled=False)
    otel_perf.record_tool_call("t", True, 1.0)
    recorder = get_runtime().recorder
    assert recorder is not None
    _guard.state.busy = True
    try:
        otel_perf.record_tool_call("t", True, 1.0)
        with otel_perf.track_tool("t"):
            pass
        otel_perf.record_cache_miss("c")
        with otel_perf.track_provider("p"):
            pass
    finally:
        _guard.state.busy = False
    assert recorder.drops.count == 0
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"]["t"]["total_calls"] == 3
    assert document["cache_metrics"]["c"]["misses"] == 1
    assert document["provider_metrics"]["p"]["total_calls"] == 1
    assert document["system_metrics"]["concurrent_requests"] == 0


def test_a_collection_on_a_busy_thread_is_refused_at_once() -> None:
    # A signal handler asking for the document while its thread holds an SDK lock (inside a
    # replay of the queue or a collection) would wait on itself for ever.
    otel_perf.configure(json_enabled=False)
    otel_perf.record_tool_call("t", True, 1.0)
    _guard.state.busy = True
    try:
        started = time.monotonic()
        with pytest.raises(otel_perf.CollectionError):
            otel_perf.get_all_metrics()
        assert time.monotonic() - started < 5
    finally:
        _guard.state.busy = False
    assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1


def test_the_busy_flag_is_per_thread() -> None:
    otel_perf.configure(json_enabled=False)
    _guard.state.busy = True
    try:
        other = threading.Thread(target=otel_perf.record_tool_call, args=("t", True, 1.0))
        other.start()
        other.join(10)
    finally:
        _guard.state.busy = False
    assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1
