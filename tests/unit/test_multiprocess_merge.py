"""Many processes' numbers: the OTLP codec, the merge, the group identity (pure, no servers).

Each "process" here is a real SDK pipeline of its own (a MeterProvider with otel-perf's
recorder): its collection is encoded with the SDK's own OTLP encoder, decoded, and merged.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics.export import MetricsData

from otel_perf._document import build_document
from otel_perf._multiprocess import codec, group
from otel_perf._multiprocess.merge import Part, merge_parts
from otel_perf._pipeline import Pipeline
from otel_perf._settings import Settings
from otel_perf._window import WindowTracker


@pytest.fixture
def pipelines() -> Iterator[list[Pipeline]]:
    made: list[Pipeline] = []
    yield made
    for pipeline in made:
        pipeline.shutdown(1.0)


def process(pipelines: list[Pipeline], calls: dict[str, list[float]], sessions: int = 0) -> Any:
    """A pipeline standing for one process: ``calls`` maps tool -> latencies (ms)."""
    pipeline = Pipeline(Settings(json_enabled=False))
    pipelines.append(pipeline)
    for tool, latencies in calls.items():
        for i, latency in enumerate(latencies):
            failed = i % 4 == 3
            pipeline.recorder.record_tool_call(
                tool, not failed, latency, "Boom" if failed else None
            )
    pipeline.recorder.record_cache_hit("c")
    pipeline.recorder.set_active_sessions(sessions)
    return pipeline.collect()


def document(data: MetricsData | None) -> dict[str, Any]:
    return build_document(data, WindowTracker(10_000), timestamp=time.time(), start_time=0.0)


def test_the_codec_round_trips_through_the_sdks_otlp_encoding(pipelines: list[Pipeline]) -> None:
    data = process(pipelines, {"a": [1.0, 2.0, 3.0, 400.0], "b": [0.5]}, sessions=2)
    payload = codec.encode(data)
    # The bytes are an OTLP ExportMetricsServiceRequest, as an OTLP receiver gets them.
    assert ExportMetricsServiceRequest.FromString(payload).resource_metrics
    assert document(codec.decode(payload))["tool_metrics"] == document(data)["tool_metrics"]
    assert document(codec.decode(payload))["system_metrics"]["active_sessions"] == 2


def test_counters_and_histograms_sum_gauges_count_live_processes_only(
    pipelines: list[Pipeline],
) -> None:
    first = process(pipelines, {"a": [1.0] * 10}, sessions=3)
    second = process(pipelines, {"a": [1000.0] * 6, "b": [5.0] * 2}, sessions=4)
    ended = process(pipelines, {"a": [0.01] * 5}, sessions=7)
    merged = merge_parts(
        [Part(first, True), Part(codec.decode(codec.encode(second)), True), Part(ended, False)]
    )
    doc = document(merged)
    a = doc["tool_metrics"]["a"]
    assert (a["total_calls"], a["failed_calls"]) == (21, 4)  # 10/4=2, 6/4=1, 5/4=1 failures
    assert a["error_types"] == {"Boom": 4}
    assert a["min_latency_ms"] == 0.01
    assert a["max_latency_ms"] == 1000.0
    assert doc["tool_metrics"]["b"]["total_calls"] == 2
    assert doc["cache_metrics"]["c"]["hits"] == 3
    # Sessions are open in live processes only: the ended one's 7 have closed.
    assert doc["system_metrics"]["active_sessions"] == 7
    assert doc["system_metrics"]["total_requests"] == 23


def test_histograms_at_different_scales_merge_exactly(pipelines: list[Pipeline]) -> None:
    narrow = process(pipelines, {"t": [10.0, 10.1, 10.2]})  # a fine scale
    wide = process(pipelines, {"t": [0.5, 60_000.0]})  # forced to a coarse scale
    merged = document(merge_parts([Part(narrow, True), Part(wide, True)]))["tool_metrics"]["t"]
    assert merged["total_calls"] == 5
    assert merged["min_latency_ms"] == 0.5
    assert merged["max_latency_ms"] == 60_000.0
    expected_mean = (10.0 + 10.1 + 10.2 + 0.5 + 60_000.0) / 5
    assert math.isclose(merged["avg_latency_ms"], expected_mean, rel_tol=1e-3)


def _request_with(mutate: Any, pipelines: list[Pipeline]) -> bytes:
    request = ExportMetricsServiceRequest.FromString(
        codec.encode(process(pipelines, {"a": [1.0, 2.0]}))
    )
    for metric in request.resource_metrics[0].scope_metrics[0].metrics:
        if metric.WhichOneof("data") == "exponential_histogram":
            mutate(metric)
            break
    return bytes(request.SerializeToString())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: setattr(m.exponential_histogram.data_points[0], "sum", float("nan")),
        lambda m: setattr(m.exponential_histogram.data_points[0], "scale", 99),
        lambda m: setattr(m.exponential_histogram.data_points[0], "count", 10**12),
        lambda m: m.exponential_histogram.data_points[0].positive.bucket_counts.extend([1] * 5000),
        lambda m: setattr(m.exponential_histogram, "aggregation_temporality", 1),  # delta
        lambda m: m.summary.data_points.add(),  # a kind otel-perf never writes
    ],
    ids=["nan", "scale", "count", "buckets", "delta", "summary"],
)
def test_a_hostile_message_is_refused(mutate: Any, pipelines: list[Pipeline]) -> None:
    with pytest.raises(codec.BadMessage) as raised:
        codec.decode(_request_with(mutate, pipelines))
    assert "nan" not in str(raised.value).lower() or "non-finite" in str(raised.value)


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"garbage" * 100, b"\x0a\xff\xff\xff\x0f"])
def test_garbage_is_refused(payload: bytes) -> None:
    with pytest.raises(codec.BadMessage):
        codec.decode(payload)


def test_the_group_is_inherited_or_derived_from_parent_and_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environ: dict[str, str] = {}
    derived, warning = group.resolve_group(None, environ)
    assert warning is None
    assert derived is not None
    assert environ[group.GROUP_ENV] == derived  # children inherit it
    assert group.resolve_group(environ[group.GROUP_ENV], environ) == (derived, None)  # and keep it
    # Another command under the same parent is another server.
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--another"])
    assert group.resolve_group(None, {})[0] != derived
    assert group.resolve_group("my-server", {}) == ("my-server", None)
    assert group.resolve_group(" off ", {}) == (None, None)
    bad: dict[str, str] = {}
    name, warning = group.resolve_group("../../etc", bad)
    assert bad[group.GROUP_ENV] == name  # a derived group is written for the children
    assert name is not None
    assert name.startswith("g")
    assert warning is not None
    assert "../" not in warning
