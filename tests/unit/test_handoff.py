"""Record calls queue their measurement and the SDK gets the queue later (otel_perf._handoff):
every collection - otel-perf's own, or any reader of the provider - still counts every call
that returned before it, the queue stays bounded without any collection, and trace-based
exemplars keep the trace of the call that recorded them. Real SDK providers and readers."""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import TracerProvider

import otel_perf
from otel_perf import _handoff
from otel_perf import _semconv as n
from otel_perf._guard import Drops
from otel_perf._recorder import Recorder


def tool_points(data: MetricsData | None) -> list[Any]:
    found: list[Any] = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == n.MCP_SERVER_OPERATION_DURATION:
                    found.extend(metric.data.data_points)
    return found


def recorder_of(metrics: otel_perf.Metrics) -> Recorder:
    assert metrics.pipeline is not None
    return metrics.pipeline.recorder


def test_a_record_call_queues_and_the_next_document_counts_it() -> None:
    recorder = recorder_of(otel_perf.configure(json_enabled=False))
    for _ in range(10):
        with otel_perf.track_tool("t"):
            pass
    assert len(recorder.queue) == 10  # nothing reached the SDK on the request path
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["t"]["total_calls"] == 10
    assert len(recorder.queue) == 0


def test_any_reader_of_the_provider_gets_the_queue_before_it_reads() -> None:
    """The application's own reader collects on its own schedule: an observable callback of
    the recorder hands the queue over before the SDK reads the synchronous instruments."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        otel_perf.configure(meter_provider=provider, json_enabled=False)
        for i in range(25):
            otel_perf.record_tool_call("search", i % 5 != 0, 10.0, None if i % 5 else "KeyError")
        points = tool_points(reader.get_metrics_data())
        assert sum(p.count for p in points) == 25
        failed = [p for p in points if p.attributes.get(n.ERROR_TYPE) == "KeyError"]
        assert sum(p.count for p in failed) == 5
    finally:
        otel_perf.shutdown()
        provider.shutdown()


def test_a_busy_server_nobody_collects_from_keeps_the_queue_bounded() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        recorder = recorder_of(otel_perf.configure(meter_provider=provider, json_enabled=False))
        longest = 0
        calls = 3 * _handoff.HARD_LIMIT
        for _ in range(calls):
            otel_perf.record_tool_call("t", True, 1.0)
            longest = max(longest, len(recorder.queue))
        assert longest <= _handoff.HARD_LIMIT
        # The drainer thread hands the rest over without any collection being asked for.
        deadline = time.monotonic() + 20
        while len(recorder.queue) >= _handoff.SOFT_LIMIT and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(recorder.queue) < _handoff.SOFT_LIMIT
        assert any(t.name == "otel-perf-handoff" for t in threading.enumerate())
        assert sum(p.count for p in tool_points(reader.get_metrics_data())) == calls
    finally:
        otel_perf.shutdown()
        provider.shutdown()
    assert not any(t.name == "otel-perf-handoff" for t in threading.enumerate() if t.is_alive())


def test_many_threads_recording_while_collections_run_lose_nothing() -> None:
    otel_perf.configure(json_enabled=False)
    threads, per_thread = 4, 3000
    stop = threading.Event()

    def record() -> None:
        for _ in range(per_thread):
            with otel_perf.track_tool("t"):
                pass

    def collect() -> None:
        while not stop.is_set():
            otel_perf.get_all_metrics()

    collector = threading.Thread(target=collect)
    collector.start()
    workers = [threading.Thread(target=record) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    stop.set()
    collector.join(60)
    assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == threads * per_thread


def test_shutdown_hands_the_queue_to_the_final_collection() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        otel_perf.configure(meter_provider=provider, json_enabled=False)
        for _ in range(7):
            otel_perf.record_tool_call("t", True, 1.0)
        otel_perf.shutdown()  # otel-perf leaves; the application's provider stays
        otel_perf_points = tool_points(reader.get_metrics_data())
        assert sum(p.count for p in otel_perf_points) == 7
    finally:
        provider.shutdown()


def test_a_trace_based_exemplar_keeps_the_trace_of_the_call() -> None:
    tracer = TracerProvider().get_tracer("test")
    metrics = otel_perf.configure(json_enabled=False, exemplar_filter="trace_based")
    with tracer.start_as_current_span("request") as span:
        with otel_perf.track_tool("traced"):
            pass
        trace_id = span.get_span_context().trace_id
    with otel_perf.track_tool("untraced"):
        pass
    assert metrics.pipeline is not None
    points = {p.attributes[n.GEN_AI_TOOL_NAME]: p for p in tool_points(metrics.pipeline.collect())}
    assert [e.trace_id for e in points["traced"].exemplars] == [trace_id]
    assert points["untraced"].exemplars == []


def test_a_call_made_outside_any_span_gets_no_exemplar_from_the_collecting_span() -> None:
    # The queue is handed over by whoever collects: a tool that reports the server's metrics
    # collects inside its own request's span. A call recorded outside any span must not take
    # that span's trace as its exemplar (the SDK reads the current context when the one it is
    # given is empty).
    tracer = TracerProvider().get_tracer("test")
    metrics = otel_perf.configure(json_enabled=False, exemplar_filter="trace_based")
    with otel_perf.track_tool("untraced"):
        pass
    assert metrics.pipeline is not None
    with tracer.start_as_current_span("a tool that reports the metrics"):
        points = {
            p.attributes[n.GEN_AI_TOOL_NAME]: p for p in tool_points(metrics.pipeline.collect())
        }
    assert points["untraced"].count == 1
    assert points["untraced"].exemplars == []


def test_a_flush_waits_for_a_replay_under_way_on_another_thread() -> None:
    # A collection's flush must not read the SDK while the drainer is still handing over a
    # measurement it took off the queue before the collection began.
    queue = _handoff.MeasurementQueue()
    inside, release = threading.Event(), threading.Event()
    handed: list[str] = []

    def slow(value: float, _attributes: Any, _context: Any) -> None:
        inside.set()
        assert release.wait(10.0)
        handed.append(f"slow {value}")

    def fast(value: float, _attributes: Any, _context: Any) -> None:
        handed.append(f"fast {value}")

    queue.attach()
    queue.sink(slow, Drops()).record(1.0, {})
    queue.sink(fast, Drops()).record(2.0, {})
    drainer = threading.Thread(target=queue.flush, args=(1,))
    drainer.start()
    assert inside.wait(10.0)
    flushed: list[int] = []
    collector = threading.Thread(target=lambda: flushed.append(queue.flush()))
    collector.start()
    collector.join(0.3)
    assert collector.is_alive(), "the second flush went ahead while a replay was under way"
    assert handed == []
    release.set()
    drainer.join(10.0)
    collector.join(10.0)
    assert handed == ["slow 1.0", "fast 2.0"]
    assert flushed == [1]


def test_a_flush_whose_replay_lock_is_never_released_goes_ahead(monkeypatch: Any) -> None:
    # The holder may be this very thread, interrupted by a signal whose final export runs on a
    # helper thread: waiting for it forever would hang the host.
    monkeypatch.setattr(_handoff, "_REPLAY_WAIT_S", 0.2)
    queue = _handoff.MeasurementQueue()
    handed: list[float] = []
    queue.attach()
    queue.sink(lambda value, _a, _c: handed.append(value), Drops()).record(3.0, {})
    assert queue._replay_lock.acquire()
    try:
        started = time.monotonic()
        assert queue.flush() == 1
        assert 0.15 <= time.monotonic() - started < 5.0
    finally:
        queue._replay_lock.release()
    assert handed == [3.0]
    assert queue.flush() == 0
    # It did not release a lock it never took: the holder's release above was the only one.
    assert not queue._replay_lock.locked()
