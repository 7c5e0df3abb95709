"""One process's cumulative ``MetricsData`` to OTLP protobuf bytes and back.

Encoding is the OTel SDK's own (``opentelemetry.exporter.otlp.proto.common.encode_metrics``,
the exporters' encoder); the bytes are an ``ExportMetricsServiceRequest``, what an OTLP
receiver would get. Decoding builds the SDK's point objects again, so everything downstream
(the JSON view, the Prometheus rendering) reads merged data exactly as it reads its own.

Decoding is also where a hostile or damaged message is refused: a protobuf parse error, a
metric kind otel-perf does not merge, a non-finite number, an absurd bucket count or scale:
:class:`BadMessage` (its text never echoes the content) and the caller skips the message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
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

#: Bounds a decoded message must respect (far beyond what otel-perf itself writes).
MAX_BUCKETS: Final = 4096
MIN_SCALE: Final = -10
MAX_SCALE: Final = 20
MAX_POINTS: Final = 200_000
_MAX_ATTRIBUTE_DEPTH: Final = 3


class BadMessage(ValueError):
    """A message that cannot be merged (damaged, hostile, or of a kind otel-perf never writes)."""


def encode(data: MetricsData) -> bytes:
    """``data`` as the bytes of an OTLP ``ExportMetricsServiceRequest`` (the SDK's encoder)."""
    return bytes(encode_metrics(data).SerializeToString())


def decode(payload: bytes) -> MetricsData:
    """The SDK ``MetricsData`` of an OTLP ``ExportMetricsServiceRequest``; raises BadMessage."""
    try:
        request = ExportMetricsServiceRequest.FromString(payload)
    except Exception as exc:  # protobuf's DecodeError, or anything else a parser may raise
        raise BadMessage("not an OTLP metrics message") from exc
    budget = [MAX_POINTS]
    return MetricsData(
        resource_metrics=[_resource_metrics(rm, budget) for rm in request.resource_metrics]
    )


def _resource_metrics(rm: metrics_pb2.ResourceMetrics, budget: list[int]) -> ResourceMetrics:
    return ResourceMetrics(
        resource=Resource(_attributes(rm.resource.attributes), rm.schema_url),
        scope_metrics=[_scope_metrics(sm, budget) for sm in rm.scope_metrics],
        schema_url=rm.schema_url,
    )


def _scope_metrics(sm: metrics_pb2.ScopeMetrics, budget: list[int]) -> ScopeMetrics:
    scope = InstrumentationScope(
        sm.scope.name,
        sm.scope.version or None,
        sm.schema_url or None,
        _attributes(sm.scope.attributes) or None,
    )
    return ScopeMetrics(
        scope=scope, metrics=[_metric(m, budget) for m in sm.metrics], schema_url=sm.schema_url
    )


def _metric(metric: metrics_pb2.Metric, budget: list[int]) -> Metric:
    kind = metric.WhichOneof("data")
    data: Any
    if kind == "sum":
        points = _spend(metric.sum.data_points, budget)
        data = Sum(
            data_points=[_number(p, with_start=True) for p in points],
            aggregation_temporality=_temporality(metric.sum.aggregation_temporality),
            is_monotonic=metric.sum.is_monotonic,
        )
    elif kind == "gauge":
        points = _spend(metric.gauge.data_points, budget)
        data = Gauge(data_points=[_number(p, with_start=False) for p in points])
    elif kind == "histogram":
        points = _spend(metric.histogram.data_points, budget)
        data = Histogram(
            data_points=[_histogram(p) for p in points],
            aggregation_temporality=_temporality(metric.histogram.aggregation_temporality),
        )
    elif kind == "exponential_histogram":
        points = _spend(metric.exponential_histogram.data_points, budget)
        data = ExponentialHistogram(
            data_points=[_exponential(p) for p in points],
            aggregation_temporality=_temporality(
                metric.exponential_histogram.aggregation_temporality
            ),
        )
    else:
        raise BadMessage("a metric of a kind otel-perf does not merge")
    return Metric(name=metric.name, description=metric.description, unit=metric.unit, data=data)


def _spend(points: Sequence[Any], budget: list[int]) -> Sequence[Any]:
    budget[0] -= len(points)
    if budget[0] < 0:
        raise BadMessage("too many data points")
    return points


def _temporality(value: int) -> AggregationTemporality:
    if value != AggregationTemporality.CUMULATIVE:
        raise BadMessage("not cumulative")
    return AggregationTemporality.CUMULATIVE


def _finite(*values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise BadMessage("a non-finite number")


def _number(point: metrics_pb2.NumberDataPoint, *, with_start: bool) -> NumberDataPoint:
    value: int | float
    if point.WhichOneof("value") == "as_int":
        value = point.as_int
    else:
        value = point.as_double
        _finite(value)
    return NumberDataPoint(
        attributes=_attributes(point.attributes),
        start_time_unix_nano=point.start_time_unix_nano if with_start else 0,
        time_unix_nano=point.time_unix_nano,
        value=value,
    )


def _histogram(point: metrics_pb2.HistogramDataPoint) -> HistogramDataPoint:
    counts = list(point.bucket_counts)
    bounds = list(point.explicit_bounds)
    if len(counts) > MAX_BUCKETS or len(counts) != len(bounds) + 1 or sum(counts) != point.count:
        raise BadMessage("inconsistent histogram buckets")
    _finite(point.sum, *bounds)
    minimum = point.min if point.HasField("min") else math.inf
    maximum = point.max if point.HasField("max") else -math.inf
    return HistogramDataPoint(
        attributes=_attributes(point.attributes),
        start_time_unix_nano=point.start_time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=point.count,
        sum=point.sum,
        bucket_counts=counts,
        explicit_bounds=bounds,
        min=minimum,
        max=maximum,
    )


def _exponential(point: metrics_pb2.ExponentialHistogramDataPoint) -> ExponentialHistogramDataPoint:
    positive = list(point.positive.bucket_counts)
    negative = list(point.negative.bucket_counts)
    if not MIN_SCALE <= point.scale <= MAX_SCALE:
        raise BadMessage("an exponential histogram scale out of range")
    if len(positive) > MAX_BUCKETS or any(negative):
        raise BadMessage("too many buckets, or negative values")
    if sum(positive) + sum(negative) + point.zero_count != point.count:
        raise BadMessage("inconsistent histogram buckets")
    if abs(point.positive.offset) > 2**40 or abs(point.negative.offset) > 2**40:
        raise BadMessage("a bucket offset out of range")
    minimum = point.min if point.HasField("min") else math.inf
    maximum = point.max if point.HasField("max") else -math.inf
    _finite(point.sum)
    if point.count:
        _finite(minimum, maximum)
    return ExponentialHistogramDataPoint(
        attributes=_attributes(point.attributes),
        start_time_unix_nano=point.start_time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=point.count,
        sum=point.sum,
        scale=point.scale,
        zero_count=point.zero_count,
        positive=Buckets(point.positive.offset, positive),
        negative=Buckets(point.negative.offset, negative),
        flags=point.flags,
        min=minimum,
        max=maximum,
    )


def _attributes(pairs: Sequence[common_pb2.KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value, 0) for pair in pairs}


def _value(value: common_pb2.AnyValue, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value" and depth < _MAX_ATTRIBUTE_DEPTH:
        return tuple(_value(v, depth + 1) for v in value.array_value.values)
    if kind == "bytes_value":
        return value.bytes_value
    return None
