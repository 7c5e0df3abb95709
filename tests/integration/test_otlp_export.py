"""OTLP export to a real receiver (oteltest, from PyPI) over gRPC and HTTP on 127.0.0.1.

What arrives must be what the JSON view reports for the same workload: the same metric names,
the same attribute keys, the same totals. And it must come from the one shared reader.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

import otel_perf
from otel_perf import _semconv as n
from otel_perf._export.forwarder import Forwarder
from tests.support.otlp_sinks import (
    BlackHole,
    LoopbackGrpcSink,
    LoopbackHttpSink,
    Received,
    Recorder,
    free_port,
    iter_points,
    latest,
    wait_for,
)

PROTOCOLS = ["grpc", "http/protobuf"]


class Receiver:
    """A running oteltest sink and what it received."""

    def __init__(self, protocol: str, port: int = 0) -> None:
        self.protocol = protocol
        self.handler = Recorder()
        sink: LoopbackGrpcSink | LoopbackHttpSink
        if protocol == "grpc":
            sink = LoopbackGrpcSink(self.handler, port)
        else:
            sink = LoopbackHttpSink(self.handler, port)
        self.sink = sink
        self.endpoint = sink.endpoint
        sink.start()

    def requests(self) -> list[Any]:
        return self.handler.snapshot()

    def latest(self) -> Received:
        return latest(self.requests())

    def stop(self) -> None:
        self.sink.stop()


def endpoint_for(protocol: str, port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    return base if protocol == "grpc" else f"{base}/v1/metrics"


def use_otlp(
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
    endpoint: str,
    *,
    interval_ms: int = 200,
    timeout_ms: int = 2000,
    temporality: str | None = None,
) -> otel_perf.Metrics:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", str(interval_ms))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", str(timeout_ms))
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-perf-test")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=perf")
    if temporality is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", temporality)
    return otel_perf.configure()


def forwarder(metrics: otel_perf.Metrics) -> Forwarder:
    pipeline = metrics.pipeline
    assert pipeline is not None
    (only,) = pipeline.forwarders
    return only


@pytest.fixture(params=PROTOCOLS)
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    running = Receiver(request.param)
    yield running
    otel_perf.shutdown()  # the final export still has somewhere to go
    running.stop()


def workload(scale: int = 1) -> None:
    """Tools (with failures), a provider with tokens, a cache, sessions and requests."""
    for i in range(30 * scale):
        ok = i % 5 != 0
        otel_perf.record_tool_call("search", ok, 2.0 + i % 17, None if ok else "TimeoutError")
    for _ in range(4 * scale):
        with otel_perf.track_tool("summarize"):
            pass
    for _ in range(3 * scale):
        with pytest.raises(ValueError, match="bad"), otel_perf.track_tool("flaky"):
            raise ValueError("bad")
    for i in range(5 * scale):
        otel_perf.record_provider_call(
            "openai", i != 0, 120.0 + i, None if i else "RateLimitError", model="gpt-4o",
            input_tokens=100 + i, output_tokens=20,
        )  # fmt: skip
    for _ in range(7 * scale):
        otel_perf.record_cache_hit("semantic")
    for _ in range(2 * scale):
        otel_perf.record_cache_miss("semantic")
    otel_perf.record_cache_eviction("semantic")
    otel_perf.record_cache_size_rejection("semantic")
    otel_perf.set_active_sessions(3)
    otel_perf.set_concurrent_requests(2)


# --- comparing the receiver with the JSON view ---------------------------------------------------


def _group(received: Received, metric: str, key: str) -> dict[str, dict[str, Any]]:
    """Per value of attribute ``key``: count, failures by error type, sum, min, max."""
    out: dict[str, dict[str, Any]] = {}
    for attrs, point in received.series(metric):
        if metric == n.MCP_SERVER_OPERATION_DURATION and attrs.get(n.MCP_METHOD_NAME) != (
            n.METHOD_TOOLS_CALL
        ):
            continue
        entry = out.setdefault(
            str(attrs[key]),
            {"count": 0, "errors": {}, "sum": 0.0, "min": float("inf"), "max": 0.0},
        )
        entry["count"] += point.count
        entry["sum"] += point.sum
        entry["min"] = min(entry["min"], point.min)
        entry["max"] = max(entry["max"], point.max)
        if n.ERROR_TYPE in attrs:
            errors = entry["errors"]
            errors[attrs[n.ERROR_TYPE]] = errors.get(attrs[n.ERROR_TYPE], 0) + point.count
    return out


def differences(received: Received, document: dict[str, Any]) -> list[str]:
    """Where the receiver's cumulative totals disagree with the JSON document (empty: none)."""
    diffs: list[str] = []

    def check(what: str, got: object, want: object) -> None:
        if got != want:
            diffs.append(f"{what}: receiver {got!r} != JSON {want!r}")

    tools = _group(received, n.MCP_SERVER_OPERATION_DURATION, n.GEN_AI_TOOL_NAME)
    check("tool names", sorted(tools), sorted(document["tool_metrics"]))
    for name, tool in document["tool_metrics"].items():
        got = tools.get(name, {"count": 0, "errors": {}, "sum": 0.0, "min": 0.0, "max": 0.0})
        check(f"{name} total_calls", got["count"], tool["total_calls"])
        check(f"{name} failed_calls", sum(got["errors"].values()), tool["failed_calls"])
        check(f"{name} error_types", got["errors"], tool["error_types"])
        if got["count"]:
            # The window holds every call here, so the JSON view's avg/min/max are lifetime ones.
            check(f"{name} avg", round(got["sum"] / got["count"] * 1000, 2), tool["avg_latency_ms"])
            check(f"{name} min", round(got["min"] * 1000, 2), tool["min_latency_ms"])
            check(f"{name} max", round(got["max"] * 1000, 2), tool["max_latency_ms"])

    providers = _group(received, n.GEN_AI_CLIENT_OPERATION_DURATION, n.GEN_AI_PROVIDER_NAME)
    check("providers", sorted(providers), sorted(document["provider_metrics"]))
    tokens: dict[tuple[str, str], int] = {}
    for attrs, point in received.series(n.GEN_AI_CLIENT_TOKEN_USAGE):
        key = (str(attrs[n.GEN_AI_PROVIDER_NAME]), str(attrs[n.GEN_AI_TOKEN_TYPE]))
        tokens[key] = tokens.get(key, 0) + round(point.sum)
    for name, provider in document["provider_metrics"].items():
        got = providers.get(name, {"count": 0, "errors": {}})
        check(f"{name} total_calls", got["count"], provider["total_calls"])
        check(f"{name} error_types", got["errors"], provider["error_types"])
        check(f"{name} input", tokens.get((name, n.TOKEN_INPUT), 0), provider["input_tokens"])
        check(f"{name} output", tokens.get((name, n.TOKEN_OUTPUT), 0), provider["output_tokens"])

    caches: dict[str, dict[str, int]] = {}
    for metric in (n.CACHE_REQUESTS, n.CACHE_EVICTIONS, n.CACHE_SIZE_REJECTIONS):
        for attrs, point in received.series(metric):
            field = str(attrs.get(n.CACHE_RESULT, metric))
            entry = caches.setdefault(str(attrs[n.CACHE_NAME]), {})
            entry[field] = entry.get(field, 0) + int(point.as_int or point.as_double)
    for name, cache in document["cache_metrics"].items():
        got = caches.get(name, {})
        check(f"cache {name} hits", got.get(n.CACHE_HIT, 0), cache["hits"])
        check(f"cache {name} misses", got.get(n.CACHE_MISS, 0), cache["misses"])
        check(f"cache {name} evictions", got.get(n.CACHE_EVICTIONS, 0), cache["evictions"])
        check(
            f"cache {name} size_rejections",
            got.get(n.CACHE_SIZE_REJECTIONS, 0),
            cache["size_rejections"],
        )

    system = document["system_metrics"]
    gauges = {
        name: sum(int(p.as_int or p.as_double) for _, p in received.series(name))
        for name in (n.ACTIVE_SESSIONS, n.ACTIVE_REQUESTS)
    }
    check("active_sessions", gauges[n.ACTIVE_SESSIONS], system["active_sessions"])
    check("concurrent_requests", gauges[n.ACTIVE_REQUESTS], system["concurrent_requests"])
    total = sum(p.count for _, p in received.series(n.MCP_SERVER_OPERATION_DURATION))
    check("total_requests", total, system["total_requests"])
    return diffs


def converge(receiver: Receiver, document: dict[str, Any], timeout_s: float = 15.0) -> Received:
    """Wait until the receiver agrees with ``document``; fail with the differences if not."""
    agreed = wait_for(lambda: not differences(receiver.latest(), document), timeout_s)
    received = receiver.latest()
    assert agreed, differences(received, document)
    return received


def attribute_keys(metrics: otel_perf.Metrics) -> dict[str, set[frozenset[str]]]:
    """Metric name -> the attribute key sets of its points, straight from the shared reader."""
    pipeline = metrics.pipeline
    assert pipeline is not None
    data = pipeline.collect()
    assert data is not None
    out: dict[str, set[frozenset[str]]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    keys = frozenset((point.attributes or {}).keys())
                    out.setdefault(metric.name, set()).add(keys)
    return out


# --- the tests -----------------------------------------------------------------------------------


def test_the_receiver_gets_what_the_json_view_reports(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = use_otlp(monkeypatch, receiver.protocol, receiver.endpoint)
    pipeline = metrics.pipeline
    assert pipeline is not None
    # One reader: OTLP adds no second aggregation to the record path.
    assert len(pipeline.meter_provider._metric_readers) == 1
    workload()
    assert wait_for(lambda: forwarder(metrics).status().exports >= 2)
    # The forwarder's collections closed no JSON-view window slice.
    assert len(pipeline.windows) == 0

    document = otel_perf.get_all_metrics()
    received = converge(receiver, document)

    # Names and attribute keys: exactly those of the shared reader's data.
    reader_keys = attribute_keys(metrics)
    got_keys: dict[str, set[frozenset[str]]] = {}
    for name, attrs in received.points:
        got_keys.setdefault(name, set()).add(frozenset(k for k, _ in attrs))
    assert got_keys == reader_keys
    assert set(got_keys) == {
        n.MCP_SERVER_OPERATION_DURATION,
        n.GEN_AI_CLIENT_OPERATION_DURATION,
        n.GEN_AI_CLIENT_TOKEN_USAGE,
        n.CACHE_REQUESTS,
        n.CACHE_EVICTIONS,
        n.CACHE_SIZE_REJECTIONS,
        n.ACTIVE_SESSIONS,
        n.ACTIVE_REQUESTS,
        n.PROCESS_UPTIME,
        # the workload's gpt-4o calls have a catalogue price (the cost extra: Python 3.11+)
        *([n.GEN_AI_CLIENT_COST] if importlib.util.find_spec("genai_prices") else []),
    }
    assert received.kinds[n.MCP_SERVER_OPERATION_DURATION] == "exponential_histogram"
    assert received.kinds[n.CACHE_REQUESTS] == "sum"
    assert (
        received.temporality[n.CACHE_REQUESTS]
        == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    )

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES reach the resource.
    assert received.resource["service.name"] == "otel-perf-test"
    assert received.resource["deployment.environment"] == "test"
    assert received.resource["team"] == "perf"
    assert received.resource["telemetry.distro.name"] == "otel-perf"

    # More work later is exported too, and still agrees.
    workload()
    converge(receiver, otel_perf.get_all_metrics())
    status = forwarder(metrics).status()
    assert status.failures == 0
    assert status.last_error is None


def test_delta_temporality_sends_changes_that_add_up_to_the_totals(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = use_otlp(monkeypatch, receiver.protocol, receiver.endpoint, temporality="delta")
    workload()
    assert wait_for(lambda: forwarder(metrics).status().exports >= 2)
    workload(scale=2)
    document = otel_perf.get_all_metrics()

    def summed() -> dict[str, int]:
        totals: dict[str, int] = {}
        for _, metric, kind, point in iter_points(receiver.requests()):
            if metric.name == n.MCP_SERVER_OPERATION_DURATION:
                attrs = {kv.key: kv.value.string_value for kv in point.attributes}
                tool = attrs[n.GEN_AI_TOOL_NAME]
                totals[tool] = totals.get(tool, 0) + point.count
            elif metric.name == n.CACHE_REQUESTS and kind == "sum":
                totals["cache"] = totals.get("cache", 0) + point.as_int
        return totals

    want = {name: t["total_calls"] for name, t in document["tool_metrics"].items()}
    want["cache"] = document["cache_metrics"]["semantic"]["total_requests"]
    assert wait_for(lambda: summed() == want), (summed(), want)

    temporality = {}
    for _, metric, kind, _point in iter_points(receiver.requests()):
        temporality[metric.name] = getattr(getattr(metric, kind), "aggregation_temporality", None)
    delta = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    cumulative = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert temporality[n.MCP_SERVER_OPERATION_DURATION] == delta
    assert temporality[n.GEN_AI_CLIENT_TOKEN_USAGE] == delta
    assert temporality[n.CACHE_REQUESTS] == delta
    assert temporality[n.ACTIVE_SESSIONS] == cumulative  # up-down counters stay cumulative
    assert len(receiver.requests()) >= 3  # several deltas, not one cumulative batch


@pytest.mark.parametrize(
    ("protocol", "temporality"),
    [("grpc", "cumulative"), ("http/protobuf", "cumulative"), ("http/protobuf", "delta")],
)
def test_a_receiver_that_appears_later_gets_the_true_totals(
    protocol: str, temporality: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    metrics = use_otlp(
        monkeypatch,
        protocol,
        endpoint_for(protocol, port),
        timeout_ms=1000,
        temporality=temporality,
    )
    workload()
    # The application is unaffected: every call was recorded, and the JSON view is right.
    assert otel_perf.get_all_metrics()["tool_metrics"]["search"]["total_calls"] == 30
    assert wait_for(lambda: forwarder(metrics).status().failures >= 1)
    assert forwarder(metrics).status().last_success_unix is None

    late = Receiver(protocol, port)
    try:
        workload()
        document = otel_perf.get_all_metrics()
        if temporality == "cumulative":
            converge(late, document)
        else:
            # Deltas are measured from the last accepted export, so nothing is lost.
            def total() -> int:
                return sum(
                    p.count
                    for _, m, _, p in iter_points(late.requests())
                    if m.name == n.MCP_SERVER_OPERATION_DURATION
                )

            want = document["system_metrics"]["total_requests"]
            assert wait_for(lambda: total() == want), (total(), want)
        # The receiver has it; the exporter's own bookkeeping follows its reply.
        assert wait_for(lambda: forwarder(metrics).status().consecutive_failures == 0)
        assert forwarder(metrics).status().last_success_unix is not None
    finally:
        otel_perf.shutdown()
        late.stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_receiver_that_never_answers_costs_the_application_nothing(
    protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hole = BlackHole().start()
    try:
        timeout_ms = 1500
        metrics = use_otlp(
            monkeypatch, protocol, endpoint_for(protocol, hole.port), interval_ms=100,
            timeout_ms=timeout_ms,
        )  # fmt: skip
        export = forwarder(metrics)
        assert wait_for(lambda: export.status().in_flight and hole.connections, timeout_s=10)
        before = export.status()
        # While that export hangs, tool calls and the JSON view go on untouched...
        workload()
        document = otel_perf.get_all_metrics()
        after = export.status()
        # ...and they did not wait for it: the same export is still in flight.
        assert after.in_flight
        assert after.exports == before.exports
        assert document["tool_metrics"]["search"]["total_calls"] == 30

        # The export gives up within its timeout (a generous margin for a busy machine).
        assert wait_for(lambda: export.status().failures >= 1, timeout_s=timeout_ms / 1000 + 10)
        duration = export.status().last_duration_s
        assert duration is not None
        assert duration <= timeout_ms / 1000 + 1.0

        # shutdown() keeps its own timeout even though the receiver still hangs.
        started = time.monotonic()
        otel_perf.shutdown(timeout_s=1.0)
        assert time.monotonic() - started < 3.0
    finally:
        otel_perf.shutdown()
        hole.stop()


def test_shutdown_makes_a_final_export_within_its_timeout(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long interval: nothing is exported until shutdown() does it.
    use_otlp(monkeypatch, receiver.protocol, receiver.endpoint, interval_ms=600_000)
    workload()
    document = otel_perf.get_all_metrics()
    time.sleep(0.3)
    assert receiver.requests() == []
    started = time.monotonic()
    otel_perf.shutdown(timeout_s=5.0)
    assert time.monotonic() - started < 5.0
    assert len(receiver.requests()) == 1
    assert differences(receiver.latest(), document) == []


def test_a_graceful_exit_exports_everything_recorded(tmp_path: Any) -> None:
    """A process that records and exits without calling shutdown(): atexit exports."""
    late = Receiver("http/protobuf")
    try:
        script = textwrap.dedent(
            """
            import otel_perf
            for i in range(250):
                otel_perf.record_tool_call("exit_tool", i % 10 != 0, 3.0, "Boom")
            otel_perf.record_cache_miss("exit_cache")
            """
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "METRICS_"))}
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{late.sink.port}",
            OTEL_METRIC_EXPORT_INTERVAL="600000",
            METRICS_JSON_ENDPOINT_ENABLED="false",
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, timeout=60, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        received = late.latest()
        tools = _group(received, n.MCP_SERVER_OPERATION_DURATION, n.GEN_AI_TOOL_NAME)
        assert tools["exit_tool"]["count"] == 250
        assert tools["exit_tool"]["errors"] == {"Boom": 25}
    finally:
        late.stop()


def test_console_exporter_prints_the_same_data(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
    metrics = otel_perf.configure()
    assert [f.name for f in metrics.pipeline.forwarders] == ["console"]  # type: ignore[union-attr]
    otel_perf.record_tool_call("printed_tool", True, 4.0)
    otel_perf.shutdown()
    out = capsys.readouterr().out
    assert n.MCP_SERVER_OPERATION_DURATION in out
    assert "printed_tool" in out


def test_no_push_export_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = otel_perf.configure()
    assert metrics.pipeline is not None
    assert metrics.pipeline.forwarders == []
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert otel_perf.configure().pipeline is None


def test_an_exporter_that_cannot_be_built_is_logged_and_recording_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The gRPC exporter itself rejects this value (otel-perf does not parse compression).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd-ultra")
    with caplog.at_level("WARNING", logger="otel_perf"):
        metrics = use_otlp(monkeypatch, "grpc", "http://127.0.0.1:9")
    assert metrics.pipeline is not None
    assert metrics.pipeline.forwarders == []
    assert any("cannot create the otlp exporter" in r.getMessage() for r in caplog.records)
    otel_perf.record_tool_call("still_works", True, 1.0)
    assert otel_perf.get_all_metrics()["tool_metrics"]["still_works"]["total_calls"] == 1
