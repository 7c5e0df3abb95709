"""Delta temporality from cumulative collections, checked against the SDK's own delta reader.

One MeterProvider carries two in-memory readers: a cumulative one (what otel-perf has) and a
delta one (the oracle). Both see the same measurements; ``to_delta`` over the cumulative
collections must reproduce the delta reader's counts, sums and buckets.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from otel_perf._export.delta import baseline_of, to_delta

_KINDS = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter)
_DELTA = dict.fromkeys((*_KINDS, ObservableGauge), AggregationTemporality.DELTA)


class Rig:
    """A provider with a cumulative reader and a delta reader over the same instruments."""

    def __init__(self) -> None:
        self.cumulative = InMemoryMetricReader()
        self.delta = InMemoryMetricReader(preferred_temporality=_DELTA)
        self.provider = MeterProvider(
            metric_readers=[self.cumulative, self.delta],
            views=[
                View(
                    instrument_name="latency",
                    aggregation=ExponentialBucketHistogramAggregation(max_size=160),
                )
            ],
        )
        meter = self.provider.get_meter("rig")
        self.counter = meter.create_counter("requests")
        self.updown = meter.create_up_down_counter("in_flight")
        self.latency = meter.create_histogram("latency", unit="s")
        self.tokens = meter.create_histogram(
            "tokens", explicit_bucket_boundaries_advisory=[1.0, 10.0, 100.0, 1000.0]
        )
        self.gauge_value = 0
        meter.create_observable_gauge("uptime", callbacks=[self._observe])

    def _observe(self, _options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        yield Observation(self.gauge_value)

    def collect(self) -> tuple[MetricsData, MetricsData]:
        cumulative = self.cumulative.get_metrics_data()
        delta = self.delta.get_metrics_data()
        assert cumulative is not None
        assert delta is not None
        return cumulative, delta


def points(data: MetricsData) -> dict[tuple[str, frozenset[Any]], tuple[Any, Any]]:
    """(metric name, attributes) -> (metric data, point)."""
    out = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    out[key] = (metric.data, point)
    return out


def buckets_at(point: Any, scale: int) -> dict[int, int]:
    """Positive bucket counts of an exponential point, at a scale not above its own."""
    shift = point.scale - scale
    out: dict[int, int] = {}
    for k, count in enumerate(point.positive.bucket_counts):
        if count:
            index = (point.positive.offset + k) >> shift
            out[index] = out.get(index, 0) + count
    return out


def assert_same_delta(ours: MetricsData, oracle: MetricsData) -> None:
    mine = points(ours)
    theirs = points(oracle)
    for key, (_, point) in theirs.items():
        name = key[0]
        if name in ("in_flight", "uptime"):
            continue  # stay cumulative in ours (checked separately)
        count = getattr(point, "count", None)
        if count == 0 or getattr(point, "value", None) == 0:
            assert key not in mine, f"{key} had no change and must be left out"
            continue
        assert key in mine, f"{key} missing from the computed delta"
        our_data, our_point = mine[key]
        assert our_data.aggregation_temporality == AggregationTemporality.DELTA
        if hasattr(point, "value"):
            assert our_point.value == point.value
            continue
        assert our_point.count == point.count
        assert our_point.sum == pytest.approx(point.sum, rel=1e-9, abs=1e-12)
        # Our min/max are true bounds of the interval's values: exact or bucket edges.
        assert our_point.min <= point.min + 1e-12
        assert our_point.max >= point.max - 1e-12
        if hasattr(point, "explicit_bounds"):
            assert list(our_point.bucket_counts) == list(point.bucket_counts)
        else:
            scale = min(our_point.scale, point.scale)
            assert our_point.zero_count == point.zero_count
            assert buckets_at(our_point, scale) == buckets_at(point, scale)


def record_batch(rig: Rig, rng: random.Random, n: int, spread: float) -> None:
    for _ in range(n):
        tool = rng.choice(["a", "b", "c"])
        rig.counter.add(rng.randint(1, 3), {"tool": tool})
        rig.latency.record(rng.lognormvariate(math.log(0.02), spread), {"tool": tool})
        rig.tokens.record(rng.randint(0, 2000), {"tool": tool})
        rig.updown.add(rng.choice([-1, 1]), {"tool": tool})
    rig.latency.record(0.0, {"tool": "a"})  # the zero bucket


def test_a_delta_of_cumulative_collections_equals_the_sdk_delta_reader() -> None:
    rig = Rig()
    rng = random.Random(5)
    record_batch(rig, rng, 300, 0.5)
    first, oracle_first = rig.collect()
    # First export: nothing accepted yet, so the delta is the cumulative data itself.
    assert_same_delta(to_delta(first, {}), oracle_first)
    # A wider spread forces the cumulative histogram to a lower scale than before.
    record_batch(rig, rng, 300, 2.5)
    rig.gauge_value = 7
    second, oracle_second = rig.collect()
    scale = {k: p.scale for k, (_, p) in points(first).items() if k[0] == "latency"}
    assert all(p.scale < scale[k] for k, (_, p) in points(second).items() if k in scale)
    delta = to_delta(second, baseline_of(first))
    assert_same_delta(delta, oracle_second)

    kinds = {key[0]: data for key, (data, _) in points(delta).items()}
    assert kinds["in_flight"].aggregation_temporality == AggregationTemporality.CUMULATIVE
    assert points(delta)[("uptime", frozenset())][1].value == 7


def test_series_without_a_change_are_left_out() -> None:
    rig = Rig()
    rig.counter.add(2, {"tool": "a"})
    rig.counter.add(2, {"tool": "b"})
    first, _ = rig.collect()
    rig.counter.add(5, {"tool": "b"})
    second, _ = rig.collect()
    delta = points(to_delta(second, baseline_of(first)))
    assert ("requests", frozenset({("tool", "a")})) not in delta
    _, point = delta[("requests", frozenset({("tool", "b")}))]
    assert point.value == 5
    # The interval starts where the accepted collection ended.
    first_b = points(first)[("requests", frozenset({("tool", "b")}))][1]
    assert point.start_time_unix_nano == first_b.time_unix_nano


def test_after_a_failed_export_the_next_delta_spans_both_intervals() -> None:
    rig = Rig()
    rng = random.Random(9)
    record_batch(rig, rng, 100, 0.4)
    accepted, _ = rig.collect()
    record_batch(rig, rng, 100, 0.4)
    rig.collect()  # this collection's export "failed": the baseline stays at ``accepted``
    record_batch(rig, rng, 100, 1.5)
    third, _ = rig.collect()
    spanning = points(to_delta(third, baseline_of(accepted)))
    cumulative_third = points(third)
    cumulative_accepted = points(accepted)
    for key, (_, point) in spanning.items():
        if key[0] == "requests":
            expected = cumulative_third[key][1].value - cumulative_accepted[key][1].value
            assert point.value == expected
        elif key[0] in ("latency", "tokens"):
            expected = cumulative_third[key][1].count - cumulative_accepted[key][1].count
            assert point.count == expected


def test_the_inputs_are_not_modified() -> None:
    rig = Rig()
    record_batch(rig, random.Random(1), 50, 0.5)
    first, _ = rig.collect()
    record_batch(rig, random.Random(2), 50, 0.5)
    second, _ = rig.collect()
    before = second.to_json()
    baseline = baseline_of(first)
    keys = set(baseline)
    to_delta(second, baseline)
    assert second.to_json() == before
    assert set(baseline) == keys
