"""Faults inside otel-perf: an exporter that raises, one that hangs, a collection that fails or
hangs, a callback that raises. Recording never raises and never blocks; the endpoint answers
503 with a short JSON body while the data cannot be read, and recovers when the fault clears.

The exporter is a real SDK ``MetricExporter`` subclass plugged into otel-perf's own forwarder
(the background thread that feeds OTLP export from the shared reader). Each test prints a
``[reliability]`` line with what it injected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

import otel_perf
from otel_perf import _document, _pipeline
from otel_perf import _semconv as n
from otel_perf._export.forwarder import Forwarder
from otel_perf._http.routes import routes_for
from otel_perf._http.server import MetricsServer
from otel_perf._metrics import CollectionError, Metrics
from tests.support.helpers import http_request

WAIT_S = 30.0
SHORT_503 = {"error": "metrics temporarily unavailable", "status": 503}


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def finishes(work: Callable[[], object], timeout_s: float = WAIT_S) -> None:
    """Run ``work`` on a thread; fail if it does not finish (it blocked) or raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "blocked"
    assert not errors, errors


class FaultyExporter(MetricExporter):
    """Raises while ``broken`` is set; hangs while ``hanging`` is set (until ``release``)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = threading.Event()
        self.hanging = threading.Event()
        self.release = threading.Event()
        self.batches: list[MetricsData] = []
        self.calls = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.calls += 1
        if self.hanging.is_set():
            self.release.wait(WAIT_S * 2)  # bounded, so no test can hang for ever
        if self.broken.is_set():
            raise RuntimeError("exporter exploded with a private detail")
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.release.set()


def exported_calls(data: MetricsData, tool: str) -> int:
    """The count of ``tool``'s calls in an exported batch."""
    total = 0
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != n.MCP_SERVER_OPERATION_DURATION:
                    continue
                for point in metric.data.data_points:
                    if (point.attributes or {}).get(n.GEN_AI_TOOL_NAME) == tool:
                        total += point.count
    return total


def plug(metrics: Metrics, exporter: MetricExporter) -> Forwarder:
    """A forwarder feeding ``exporter`` from the pipeline's shared reader every 20 ms; the
    pipeline owns it from now on (its shutdown makes the final export)."""
    pipeline = metrics.pipeline
    assert pipeline is not None
    forwarder = Forwarder(
        "faulty", "a test exporter", exporter, pipeline.collect, interval_s=0.02, timeout_s=1.0
    )
    pipeline.forwarders.append(forwarder)
    forwarder.start()
    return forwarder


def hammer(calls: int) -> None:
    """Record ``calls`` tool calls three ways: direct, tracked, and in asyncio tasks."""
    third = calls // 3
    for _ in range(third):
        otel_perf.record_tool_call("work", True, 2.0)
    for _ in range(third):
        with otel_perf.track_tool("work"):
            pass

    @otel_perf.track_tool("work")
    async def task() -> None:
        await asyncio.sleep(0)

    async def many() -> None:
        await asyncio.gather(*(task() for _ in range(calls - 2 * third)))

    asyncio.run(many())


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        yield caplog


def metrics_status(url: str) -> tuple[int, Any]:
    status, _, body = http_request(url, path="/metrics")
    assert len(body) > 0
    return status, json.loads(body)


# --- exporters -------------------------------------------------------------------------------


def test_an_exporter_that_raises(
    warnings_seen: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = otel_perf.configure()
    url = metrics.url
    assert url is not None
    exporter = FaultyExporter()
    exporter.broken.set()
    forwarder = plug(metrics, exporter)

    finishes(lambda: hammer(3000))
    wait_until(lambda: forwarder.status().consecutive_failures >= 10)
    status, document = metrics_status(url)
    assert status == 200  # export runs off the request path
    assert document["tool_metrics"]["work"]["total_calls"] == 3000
    failures = [r.getMessage() for r in warnings_seen.records if "export" in r.getMessage()]
    assert len(failures) == 1  # once per outage, not once per attempt
    assert "private detail" not in failures[0]

    exporter.broken.clear()  # the fault clears
    wait_until(lambda: forwarder.status().consecutive_failures == 0 and bool(exporter.batches))
    assert exported_calls(exporter.batches[-1], "work") == 3000  # nothing lost
    injected = forwarder.status().failures
    otel_perf.shutdown()
    with capsys.disabled():
        print(
            f"\n[reliability] faults: exporter raised {injected} times while 3000 calls were "
            "recorded; one warning; first export after recovery carried all 3000"
        )


def test_an_exporter_that_hangs(
    warnings_seen: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = otel_perf.configure()
    url = metrics.url
    assert url is not None
    exporter = FaultyExporter()
    exporter.hanging.set()
    forwarder = plug(metrics, exporter)
    try:
        wait_until(lambda: forwarder.status().in_flight)
        finishes(lambda: hammer(30_000))  # tool calls never wait for the exporter
        status, document = metrics_status(url)
        assert status == 200
        assert document["tool_metrics"]["work"]["total_calls"] == 30_000
        assert http_request(url, path="/health")[0] == 200
        # Shutting down with the export still stuck returns within its budget.
        started = time.monotonic()
        finishes(lambda: otel_perf.shutdown(timeout_s=1.0), timeout_s=15)
        took = time.monotonic() - started
    finally:
        exporter.release.set()
    with capsys.disabled():
        print(
            f"\n[reliability] faults: exporter hung; 30000 calls recorded meanwhile, /metrics "
            f"answered 200, shutdown(timeout_s=1) returned in {took:.1f}s"
        )


# --- collection ------------------------------------------------------------------------------


def _explode_collect(self: object, timeout_millis: float = 10_000) -> None:
    raise RuntimeError("collect exploded with a private detail")


def _explode_view(*args: object, **kwargs: object) -> None:
    raise RuntimeError("the view exploded with a private detail")


@pytest.mark.parametrize(
    ("where", "target", "replacement"),
    [
        ("the SDK collection", (_pipeline.PullReader, "collect_data"), _explode_collect),
        ("the JSON view", (_document, "build_document"), _explode_view),
    ],
)
def test_a_failing_collection_answers_503_and_recovers(
    where: str,
    target: tuple[object, str],
    replacement: object,
    monkeypatch: pytest.MonkeyPatch,
    warnings_seen: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = otel_perf.configure()
    url = metrics.url
    assert url is not None
    otel_perf.record_tool_call("before", True, 1.0)
    monkeypatch.setattr(*target, replacement)

    answers = []
    for _ in range(20):
        status, _, body = http_request(url, path="/metrics")
        answers.append(status)
        assert json.loads(body) == SHORT_503
        assert len(body) < 100
        otel_perf.record_tool_call("during", True, 1.0)  # recording is unaffected
    assert answers == [503] * 20
    assert http_request(url, path="/health")[0] == 200
    with pytest.raises(CollectionError):
        otel_perf.get_all_metrics()  # reading says so; recording never does
    logged = " ".join(r.getMessage() for r in warnings_seen.records)
    assert "private detail" not in logged

    monkeypatch.undo()  # the fault clears
    status, document = metrics_status(url)
    assert status == 200
    tools = document["tool_metrics"]
    assert (tools["before"]["total_calls"], tools["during"]["total_calls"]) == (1, 20)
    with capsys.disabled():
        print(
            f"\n[reliability] faults: {where} failed for 20 requests: 20 x 503 (short JSON), "
            "/health 200, 20 calls recorded meanwhile and all shown after recovery"
        )


def test_a_hanging_collection_answers_503_and_recovers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A callback that blocks inside the SDK's collection (e.g. a host's observable gauge)."""
    metrics = otel_perf.configure(json_enabled=False)
    assert metrics.meter_provider is not None
    stuck, release = threading.Event(), threading.Event()

    def blocking(_options: CallbackOptions) -> Iterable[Observation]:
        if stuck.is_set():
            release.wait(WAIT_S * 2)
        return [Observation(1)]

    metrics.meter_provider.get_meter("host").create_observable_gauge("host.gauge", [blocking])
    server = MetricsServer("127.0.0.1", 0, routes_for(metrics), route_timeout_s=1.0)
    server.start()
    try:
        otel_perf.record_tool_call("before", True, 1.0)
        stuck.set()
        statuses = [http_request(server.url, path="/metrics")[0] for _ in range(3)]
        assert statuses == [503, 503, 503]  # each answered at the route deadline
        assert http_request(server.url, path="/health")[0] == 200  # never waits for workers
        finishes(lambda: hammer(3000))  # recording does not wait for the collection
        stuck.clear()
        release.set()  # the fault clears

        def recovered() -> bool:
            return http_request(server.url, path="/metrics")[0] == 200

        wait_until(recovered)

        def counted() -> bool:
            # Calls that created a series during the hung collection reach the SDK just
            # before the next collection (they never wait for the running one).
            _, _, body = http_request(server.url, path="/metrics")
            tools = json.loads(body)["tool_metrics"]
            return "work" in tools and tools["work"]["total_calls"] == 3000

        wait_until(counted)
        _, _, body = http_request(server.url, path="/metrics")
        tools = json.loads(body)["tool_metrics"]
        assert (tools["before"]["total_calls"], tools["work"]["total_calls"]) == (1, 3000)
    finally:
        release.set()
        server.stop()
    with capsys.disabled():
        print(
            "\n[reliability] faults: collection hung: 3 x 503 at the 1 s route deadline, /health "
            "200, 3000 calls recorded meanwhile, all shown after recovery"
        )


def test_a_callback_that_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = otel_perf.configure()
    assert metrics.meter_provider is not None
    assert metrics.url is not None

    def broken(_options: CallbackOptions) -> Iterable[Observation]:
        raise RuntimeError("a host callback exploded with a private detail")

    metrics.meter_provider.get_meter("host").create_observable_gauge("host.broken", [broken])
    otel_perf.record_tool_call("t", True, 1.0)
    with caplog.at_level(logging.CRITICAL, logger="opentelemetry"):  # the SDK logs each one
        status, _, body = http_request(metrics.url, path="/metrics")
    assert status == 200
    assert b"private detail" not in body
    assert json.loads(body)["tool_metrics"]["t"]["total_calls"] == 1
