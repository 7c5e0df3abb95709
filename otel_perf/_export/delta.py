"""Delta temporality computed from two cumulative collections, off the record path.

otel-perf has one cumulative reader (a second reader would be a second aggregation on every
``record``). When ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` asks for deltas, the
OTLP forwarder turns each cumulative collection into a delta one here: for every counter and
histogram series, the current cumulative point minus the point of the last collection the
receiver accepted. Up-down counters and gauges stay cumulative, as the specification says.

Because the baseline only moves when an export succeeds, a failed export loses nothing: the
next delta spans both intervals. Series without a change are left out, as the SDK's own delta
readers do.

What it costs: nothing per ``record``; per export one pass over the collected points (bucket
subtraction for histograms) and, between exports, a reference to each counter and histogram
point of the last accepted collection. Two things a true delta reader would know are bounded
instead: a delta histogram's ``min``/``max`` are exact when the lifetime extreme moved in the
interval, and otherwise the edges of its outermost non-empty buckets, clamped to the lifetime
extremes (true bounds at bucket precision).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.util.types import Attributes

from otel_perf._exphist import EMPTY, Hist, lower_bound, rescaled, subtract

#: Series key -> the cumulative point of the last accepted collection.
Baseline = dict[Hashable, Any]


def _freeze(value: object) -> Hashable:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return str(value) if not isinstance(value, Hashable) else value


def _attributes_key(attributes: Attributes) -> Hashable:
    if not attributes:
        return frozenset()
    try:
        return frozenset(attributes.items())
    except TypeError:  # a sequence-valued attribute: lists are not hashable
        return frozenset((k, _freeze(v)) for k, v in attributes.items())


def metric_key(resource_metrics: ResourceMetrics, scope: ScopeMetrics, metric: Metric) -> Hashable:
    """Identity of one metric across collections: resource, scope and name."""
    return (
        _attributes_key(resource_metrics.resource.attributes),
        scope.scope.name,
        scope.scope.version,
        metric.name,
    )


def _is_delta_kind(data: object) -> bool:
    if isinstance(data, Sum):
        return data.is_monotonic and (
            data.aggregation_temporality == AggregationTemporality.CUMULATIVE
        )
    if isinstance(data, (Histogram, ExponentialHistogram)):
        return data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    return False


def baseline_of(data: MetricsData) -> Baseline:
    """The counter and histogram points of a collection, keyed by series.

    A series is its metric (:func:`metric_key`) plus its point's attributes.
    """
    out: Baseline = {}
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if _is_delta_kind(metric.data):
                    prefix = metric_key(resource_metrics, scope, metric)
                    for point in metric.data.data_points:
                        out[prefix, _attributes_key(point.attributes)] = point
    return out


# --- per point ---------------------------------------------------------------------------------


def _sum_delta(point: NumberDataPoint, old: NumberDataPoint | None) -> NumberDataPoint | None:
    if old is None:
        return point if point.value else None
    change = point.value - old.value
    if change <= 0:
        return None  # no change (a drop cannot happen within one series of one provider)
    return NumberDataPoint(
        attributes=point.attributes,
        start_time_unix_nano=old.time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        value=change,
        exemplars=point.exemplars,
    )


def _extremes(
    new_min: float, new_max: float, old_min: float, old_max: float, low: float, high: float
) -> tuple[float, float]:
    """Delta min/max: exact where the lifetime extreme moved, else the bucket-edge bound."""
    minimum = new_min if new_min < old_min else max(low, new_min)
    maximum = new_max if new_max > old_max else min(high, new_max)
    return minimum, max(minimum, maximum)


def _histogram_delta(
    point: HistogramDataPoint, old: HistogramDataPoint | None
) -> HistogramDataPoint | None:
    if old is None:
        return point if point.count else None
    count = point.count - old.count
    if count <= 0 or list(point.explicit_bounds) != list(old.explicit_bounds):
        return None if count <= 0 else point
    counts = [
        max(new - prev, 0)
        for new, prev in zip(point.bucket_counts, old.bucket_counts, strict=False)
    ]
    bounds = list(point.explicit_bounds)
    nonzero = [i for i, c in enumerate(counts) if c]
    # Bucket i covers (bounds[i-1], bounds[i]]; the outer buckets are open-ended.
    first, last = (nonzero[0], nonzero[-1]) if nonzero else (0, len(counts) - 1)
    low = bounds[first - 1] if first > 0 else -math.inf
    high = bounds[last] if last < len(bounds) else math.inf
    minimum, maximum = _extremes(point.min, point.max, old.min, old.max, low, high)
    return HistogramDataPoint(
        attributes=point.attributes,
        start_time_unix_nano=old.time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=count,
        sum=point.sum - old.sum,
        bucket_counts=counts,
        explicit_bounds=bounds,
        min=minimum,
        max=maximum,
        exemplars=point.exemplars,
    )


def _side(point: ExponentialHistogramDataPoint, buckets: Buckets) -> Hist:
    """One range (positive or negative) of a point as a :class:`Hist` of bucket counts only."""
    counts = tuple(buckets.bucket_counts)
    total = sum(counts)
    if not total:
        return EMPTY
    return Hist(
        scale=point.scale,
        zero_count=0,
        offset=buckets.offset,
        counts=counts,
        count=total,
        sum=0.0,
        min=0.0,
        max=0.0,
    )


def _padded(hist: Hist) -> Buckets:
    return Buckets(offset=hist.offset, bucket_counts=list(hist.counts))


def _exponential_delta(
    point: ExponentialHistogramDataPoint, old: ExponentialHistogramDataPoint | None
) -> ExponentialHistogramDataPoint | None:
    if old is None:
        return point if point.count else None
    count = point.count - old.count
    if count <= 0:
        return None
    positive = subtract(_side(point, point.positive), _side(old, old.positive))
    negative = subtract(_side(point, point.negative), _side(old, old.negative))
    # ``subtract`` brings a side to the lower of the two scales; both sides must share one.
    scale = min(point.scale, old.scale)
    positive = rescaled(positive, scale)
    negative = rescaled(negative, scale)
    zero_count = max(point.zero_count - old.zero_count, 0)
    if negative.counts:
        low = -lower_bound(negative.offset + len(negative.counts), scale)
    elif zero_count:
        low = 0.0
    else:
        low = lower_bound(positive.offset, scale) if positive.counts else 0.0
    if positive.counts:
        high = lower_bound(positive.offset + len(positive.counts), scale)
    elif zero_count:
        high = 0.0
    else:
        high = -lower_bound(negative.offset, scale) if negative.counts else 0.0
    minimum, maximum = _extremes(point.min, point.max, old.min, old.max, low, high)
    return ExponentialHistogramDataPoint(
        attributes=point.attributes,
        start_time_unix_nano=old.time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=count,
        sum=point.sum - old.sum,
        scale=scale,
        zero_count=zero_count,
        positive=_padded(positive),
        negative=_padded(negative),
        flags=point.flags,
        min=minimum,
        max=maximum,
        exemplars=point.exemplars,
    )


# --- whole collections -------------------------------------------------------------------------


def _delta_points(
    resource_metrics: ResourceMetrics, scope: ScopeMetrics, metric: Metric, baseline: Baseline
) -> Sequence[Any]:
    out = []
    prefix = metric_key(resource_metrics, scope, metric)
    for point in metric.data.data_points:
        old = baseline.get((prefix, _attributes_key(point.attributes)))
        if isinstance(point, NumberDataPoint):
            delta: Any = _sum_delta(point, old)
        elif isinstance(point, HistogramDataPoint):
            delta = _histogram_delta(point, old)
        elif isinstance(point, ExponentialHistogramDataPoint):
            delta = _exponential_delta(point, old)
        else:  # pragma: no cover - the SDK has no other point type
            delta = point
        if delta is not None:
            out.append(delta)
    return out


def _delta_metric(
    resource_metrics: ResourceMetrics, scope: ScopeMetrics, metric: Metric, baseline: Baseline
) -> Metric | None:
    data = metric.data
    if not _is_delta_kind(data):
        return metric
    points = _delta_points(resource_metrics, scope, metric, baseline)
    if not points:
        return None
    delta_data: Any
    if isinstance(data, Sum):
        delta_data = Sum(points, AggregationTemporality.DELTA, is_monotonic=True)
    elif isinstance(data, Histogram):
        delta_data = Histogram(points, AggregationTemporality.DELTA)
    else:
        delta_data = ExponentialHistogram(points, AggregationTemporality.DELTA)
    return Metric(metric.name, metric.description, metric.unit, delta_data)


def to_delta(data: MetricsData, baseline: Baseline) -> MetricsData:
    """``data`` with counters and histograms as changes since ``baseline``.

    Pure: neither argument is modified. Series absent from ``baseline`` are sent whole (their
    own start time is their interval's start); series without a change are left out.
    """
    resource_out = []
    for resource_metrics in data.resource_metrics:
        scopes = []
        for scope in resource_metrics.scope_metrics:
            metrics = [
                converted
                for metric in scope.metrics
                if (converted := _delta_metric(resource_metrics, scope, metric, baseline))
                is not None
            ]
            if metrics:
                scopes.append(ScopeMetrics(scope.scope, metrics, scope.schema_url))
        if scopes:
            resource_out.append(
                ResourceMetrics(resource_metrics.resource, scopes, resource_metrics.schema_url)
            )
    return MetricsData(resource_out)


__all__ = ["Baseline", "baseline_of", "metric_key", "to_delta"]
