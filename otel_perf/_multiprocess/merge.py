"""Merge the cumulative ``MetricsData`` of several processes into one, series by series.

A series is a scope (name, version), a metric (name, kind) and a point's attribute set. What
each kind becomes:

- counters (monotonic sums) and histograms: the sum over every part, live or ended, so a
  total never goes down when a process ends;
- up-down counters (sessions, requests in flight) and gauges: the sum over live parts only
  (what an ended process had open is no longer open); ``process.uptime`` is the largest;
- exponential histograms are summed at their common scale (:func:`otel_perf._exphist.merge`,
  the arithmetic the JSON view already uses for a tool's series); explicit-bucket histograms
  bucket by bucket when their bounds agree (a part with other bounds is left out, warned once).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, NamedTuple

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_perf import _semconv as n
from otel_perf._exphist import from_point, merge
from otel_perf._log import warn_once

_CUMULATIVE = AggregationTemporality.CUMULATIVE


class Part(NamedTuple):
    """One process's data, and whether that process is still running."""

    data: MetricsData | None
    live: bool


def series_key(attributes: Mapping[str, Any] | None) -> Hashable:
    return frozenset(attributes.items()) if attributes else frozenset()


class _Series:
    """The points of one metric, grouped by attribute set, waiting to be merged."""

    __slots__ = ("description", "kind", "monotonic", "name", "points", "unit")

    def __init__(self, metric: Metric, kind: str, monotonic: bool) -> None:
        self.name = metric.name
        self.description = metric.description
        self.unit = metric.unit
        self.kind = kind
        self.monotonic = monotonic
        self.points: dict[Hashable, list[Any]] = {}


def _kind(metric: Metric) -> tuple[str, bool] | None:
    data = metric.data
    if isinstance(data, Sum):
        return "sum", bool(data.is_monotonic)
    if isinstance(data, Gauge):
        return "gauge", False
    if isinstance(data, ExponentialHistogram):
        return "exponential", True
    if isinstance(data, Histogram):
        return "histogram", True
    return None


def merge_parts(parts: Iterable[Part], resource: Resource | None = None) -> MetricsData:
    """One ``MetricsData`` holding the merged series of every part (see the module doc)."""
    scopes: dict[tuple[str, str | None], tuple[InstrumentationScope, dict[Hashable, _Series]]] = {}
    first_resource = resource
    for part in parts:
        if part.data is None:
            continue
        for resource_metrics in part.data.resource_metrics:
            if first_resource is None:
                first_resource = resource_metrics.resource
            for scope_metrics in resource_metrics.scope_metrics:
                scope = scope_metrics.scope
                entry = scopes.get((scope.name, scope.version))
                if entry is None:
                    entry = scopes[(scope.name, scope.version)] = (scope, {})
                metrics = entry[1]
                for metric in scope_metrics.metrics:
                    kind = _kind(metric)
                    if kind is None:
                        continue
                    # Up-down counters and gauges describe the present: only live processes.
                    if not part.live and not kind[1]:
                        continue
                    key = (metric.name, *kind)
                    series = metrics.get(key)
                    if series is None:
                        series = metrics[key] = _Series(metric, *kind)
                    points = series.points
                    for point in metric.data.data_points:
                        attrs_key = series_key(point.attributes)
                        bucket = points.get(attrs_key)
                        if bucket is None:
                            points[attrs_key] = [point]
                        else:
                            bucket.append(point)
    scope_metrics_out = [
        ScopeMetrics(
            scope=scope,
            metrics=[_merged_metric(series) for series in metrics.values()],
            schema_url=scope.schema_url or "",
        )
        for scope, metrics in scopes.values()
    ]
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=first_resource or Resource.get_empty(),
                scope_metrics=scope_metrics_out,
                schema_url=(first_resource.schema_url if first_resource else "") or "",
            )
        ]
    )


def _merged_metric(series: _Series) -> Metric:
    data: Any
    groups = series.points.values()
    if series.kind == "sum":
        data = Sum(
            data_points=[_sum_points(points) for points in groups],
            aggregation_temporality=_CUMULATIVE,
            is_monotonic=series.monotonic,
        )
    elif series.kind == "gauge":
        largest = series.name == n.PROCESS_UPTIME
        data = Gauge(data_points=[_sum_points(points, largest=largest) for points in groups])
    elif series.kind == "exponential":
        data = ExponentialHistogram(
            data_points=[_exponential_points(points) for points in groups],
            aggregation_temporality=_CUMULATIVE,
        )
    else:
        data = Histogram(
            data_points=[_histogram_points(points) for points in groups],
            aggregation_temporality=_CUMULATIVE,
        )
    return Metric(series.name, series.description, series.unit, data)


def _sum_points(points: list[NumberDataPoint], *, largest: bool = False) -> NumberDataPoint:
    first = points[0]
    if len(points) == 1:
        return first
    values = [p.value for p in points]
    value: int | float
    if largest:
        value = max(values)
    elif all(isinstance(v, int) for v in values):
        value = sum(values)
    else:
        value = math.fsum(values)
    return NumberDataPoint(
        attributes=first.attributes,
        start_time_unix_nano=_start(points),
        time_unix_nano=max(p.time_unix_nano for p in points),
        value=value,
    )


def _exponential_points(
    points: list[ExponentialHistogramDataPoint],
) -> ExponentialHistogramDataPoint:
    first = points[0]
    if len(points) == 1:
        return first
    hist = merge(from_point(p) for p in points)
    return ExponentialHistogramDataPoint(
        attributes=first.attributes,
        start_time_unix_nano=_start(points),
        time_unix_nano=max(p.time_unix_nano for p in points),
        count=hist.count,
        sum=hist.sum,
        scale=hist.scale,
        zero_count=hist.zero_count,
        positive=Buckets(hist.offset, list(hist.counts)),
        negative=Buckets(0, []),
        flags=0,
        min=hist.min,
        max=hist.max,
    )


def _histogram_points(points: list[HistogramDataPoint]) -> HistogramDataPoint:
    first = points[0]
    if len(points) == 1:
        return first
    bounds = list(first.explicit_bounds)
    kept = [p for p in points if list(p.explicit_bounds) == bounds]
    if len(kept) != len(points):
        warn_once(
            "multiprocess-bounds",
            "otel-perf: processes of this server record a histogram with different bucket "
            "bounds; the endpoint merges only those matching the first one",
        )
    counts = [sum(column) for column in zip(*(p.bucket_counts for p in kept), strict=True)]
    return HistogramDataPoint(
        attributes=first.attributes,
        start_time_unix_nano=_start(kept),
        time_unix_nano=max(p.time_unix_nano for p in kept),
        count=sum(p.count for p in kept),
        sum=math.fsum(p.sum for p in kept),
        bucket_counts=counts,
        explicit_bounds=bounds,
        min=min(p.min for p in kept),
        max=max(p.max for p in kept),
    )


def _start(points: Iterable[Any]) -> Any:
    """The earliest start time (gauge points have none: ``None`` stays ``None``)."""
    starts = [p.start_time_unix_nano for p in points]
    if any(start is None for start in starts):
        return None
    return min(starts)
