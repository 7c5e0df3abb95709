"""DocumentCache: per-series work reused between snapshots, never a stale figure."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from otel_perf._document_cache import DocumentCache
from otel_perf._exphist import EMPTY, Hist, from_point, lower_bound, merge
from otel_perf._latency import latency_values
from tests.unit.test_exphist_fast import _grown, _grown_inside, _moved, _random_hist


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


def test_a_merge_with_one_changed_series_is_the_merge_of_its_parts() -> None:
    # The busy case: a tool's success series changes, its error series do not; the cache
    # adds the changed series to the others' kept sum while it can, and merges again when not.
    reader, hist = _provider()
    for value in (0.01, 0.012, 0.03, 0.2):
        hist.record(value, {"tool": "a"})  # type: ignore[attr-defined]
    hist.record(0.05, {"tool": "a", "error": "x"})  # type: ignore[attr-defined]
    hist.record(3e-6, {"tool": "a", "error": "y"})  # type: ignore[attr-defined]
    cache = DocumentCache()
    cache.begin()
    parts = [from_point(p) for p in _points(reader)]
    cache.merged("a", parts)
    changes = [(0, 0.011), (0, 0.19), (0, 0.02), (1, 0.051), (1, 0.049), (0, 0.013)]
    changes += [(0, 5.0), (0, 0.014), (2, 1e-7), (0, 0.015), (0, 0.0), (0, 0.016)]
    for series, value in changes:  # inside each range; then past it, and an exact zero
        hist.record(
            value, [{"tool": "a"}, {"tool": "a", "error": "x"}, {"tool": "a", "error": "y"}][series]
        )  # type: ignore[attr-defined]
        cache.begin()
        point = _points(reader)[series]
        parts = [*parts[:series], from_point(point), *parts[series + 1 :]]
        assert cache.merged("a", parts) == merge(parts)


@pytest.mark.parametrize("seed", range(20))
def test_merges_of_changing_series_are_always_the_merge_of_their_parts(seed: int) -> None:
    # Any series of a tool may change between snapshots: inside its range, past it, moved, at
    # another scale; one at a time or several. Whatever the cache reuses, it is merge(parts).
    rng = random.Random(seed)
    cache = DocumentCache()
    parts = [hist for hist in (_random_hist(rng, 3) for _ in range(3)) if hist.count]
    parts = [_moved(hist, 40 + rng.randint(-8, 8)) for hist in parts] or [_random_hist(rng, 3)]
    for _ in range(60):
        cache.begin()
        for index in rng.sample(range(len(parts)), rng.choice((1, 1, 1, 2))):
            part = parts[index]
            change = rng.choice(("inside", "inside", "inside", "grown", "moved", "coarser"))
            if change == "inside" or part.scale < 2:
                part = _grown_inside(rng, part)
            elif change == "grown":
                part = _grown(rng, part)
            elif change == "moved":
                part = _moved(part, part.offset + rng.choice((-1, 1)))
            else:
                part = Hist(part.scale - 1, 0, part.offset, part.counts, part.count, 1.0, 1.0, 2.0)
            if part.count:
                parts[index] = part
        assert cache.merged("a", parts) == merge(parts)


def _series(scale: int, offset: int, size: int, per_bucket: int = 1) -> Hist:
    counts = (per_bucket,) * size
    low = lower_bound(offset, scale)
    return Hist(
        scale, 0, offset, counts, sum(counts), low * size, low, lower_bound(offset + size, scale)
    )


@pytest.mark.parametrize(
    ("before", "now", "other"),
    [
        # Each pair of series fills the 160 buckets of scale 3 exactly.
        (_series(3, 0, 100), _series(3, -1, 100, 2), _series(3, 120, 40)),  # moved down
        (_series(3, 60, 100), _series(3, 60, 101, 2), _series(3, 0, 40)),  # one bucket more
        (_series(3, 0, 100), _series(3, 0, 101, 2), _series(3, 120, 40)),  # that one fits
        (_series(4, 400, 20), _series(3, 400, 20), _series(3, 120, 40)),  # was finer
    ],
)
def test_a_changed_series_near_the_bucket_limit_is_merged_at_the_right_scale(
    before: Hist, now: Hist, other: Hist
) -> None:
    # A changed series that leaves its bucket range or scale can lower the merge's scale: the
    # cache must not add it to the other series' kept sum at the old one.
    cache = DocumentCache()
    cache.begin()
    cache.merged("a", [before, other])
    cache.begin()
    cache.merged("a", [_series(before.scale, before.offset, len(before.counts), 3), other])
    cache.begin()
    assert cache.merged("a", [now, other]) == merge([now, other])


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
