"""DocumentCache: per-series work reused between snapshots, never a stale figure."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from otel_perf._document_cache import DocumentCache
from otel_perf._exphist import EMPTY, from_point, merge
from otel_perf._latency import latency_values


def _provider() -> tuple[InMemoryMetricReader, object]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="d", aggregation=ExponentialBucketHistogramAggregation())],
    )
    return reader, provider.get_meter("t").create_histogram("d", unit="s")


def _points(reader: InMemoryMetricReader) -> list[ExponentialHistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    points = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    return [p for p in points if isinstance(p, ExponentialHistogramDataPoint)]


def _classify_calls() -> tuple[list[object], object]:
    seen: list[object] = []

    def classify(attributes: object) -> str:
        seen.append(attributes)
        return "labels"

    return seen, classify


def test_an_unchanged_series_reuses_its_buckets_and_labels() -> None:
    reader, hist = _provider()
    hist.record(0.01, {"tool": "a"})  # type: ignore[attr-defined]
    cache = DocumentCache()
    seen, classify = _classify_calls()
    cache.begin()
    (point,) = _points(reader)
    first, labels = cache.series(point, classify)  # type: ignore[arg-type]
    cache.begin()
    (point,) = _points(reader)
    again, labels_again = cache.series(point, classify)  # type: ignore[arg-type]
    assert again is first
    assert labels == labels_again == "labels"
    assert len(seen) == 1  # classified once for the series' life


def test_a_changed_series_is_converted_again() -> None:
    reader, hist = _provider()
    hist.record(0.01, {"tool": "a"})  # type: ignore[attr-defined]
    cache = DocumentCache()
    _, classify = _classify_calls()
    cache.begin()
    first, _ = cache.series(_points(reader)[0], classify)  # type: ignore[arg-type]
    hist.record(0.5, {"tool": "a"})  # type: ignore[attr-defined]
    cache.begin()
    (point,) = _points(reader)
    second, _ = cache.series(point, classify)  # type: ignore[arg-type]
    assert second is not first
    assert second == from_point(point)
    assert second.count == 2


def test_merges_and_latency_are_reused_only_for_the_very_same_inputs() -> None:
    reader, hist = _provider()
    hist.record(0.01, {"tool": "a"})  # type: ignore[attr-defined]
    hist.record(0.02, {"tool": "a", "error": "x"})  # type: ignore[attr-defined]
    parts = [from_point(p) for p in _points(reader)]
    cache = DocumentCache()
    cache.begin()
    merged = cache.merged("a", parts)
    assert merged == merge(parts)
    cache.begin()
    assert cache.merged("a", parts) is merged
    assert cache.merged("a", parts[:1]) == merge(parts[:1])  # other parts: recomputed
    values = cache.latency("a", merged)
    assert values == latency_values(merged)
    cache.begin()
    assert cache.latency("a", merged) is values  # the same window, next snapshot: reused
    assert cache.latency("a", EMPTY) == latency_values(EMPTY)


def test_a_snapshot_keeps_only_what_it_used() -> None:
    reader, hist = _provider()
    for tool in ("a", "b", "c"):
        hist.record(0.01, {"tool": tool})  # type: ignore[attr-defined]
    cache = DocumentCache()
    _, classify = _classify_calls()
    cache.begin()
    for point in _points(reader):
        cache.series(point, classify)  # type: ignore[arg-type]
    cache.begin()
    cache.series(_points(reader)[0], classify)  # type: ignore[arg-type]
    cache.begin()  # what the previous snapshot used is all that is left
    assert len(cache._points) == 1
