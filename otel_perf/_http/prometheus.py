"""Prometheus text exposition of one collection: a pure function, rendered with prometheus_client.

This is what ``GET /metrics/prometheus`` serves. It reads the ``MetricsData`` of the shared
reader (the same data the JSON view and OTLP get; a scrape closes no JSON-view window slice)
and follows the OpenTelemetry-to-Prometheus compatibility rules, as the collector's
``prometheus`` exporter does, so a dashboard works the same on either path:

- names: characters outside ``[a-zA-Z0-9_:]`` become ``_``; the unit becomes a suffix (``s`` ->
  ``_seconds``, ``ms`` -> ``_milliseconds``, ``By`` -> ``_bytes``; ``{annotations}`` are
  dropped); monotonic sums are counters with ``_total``; non-monotonic sums and gauges are
  gauges. ``mcp.server.operation.duration`` is ``mcp_server_operation_duration_seconds``.
- labels: attribute keys with the same character rule (``gen_ai.tool.name`` ->
  ``gen_ai_tool_name``), plus ``otel_scope_name`` / ``otel_scope_version``; keys that collide
  after that have their values joined with ``;``. The resource becomes one ``target_info`` gauge.
- exponential histograms become classic cumulative histograms with a fixed, documented set of
  ``le`` bounds (:data:`CLASSIC_BOUNDS`: the semantic conventions' bucket advice), so
  ``histogram_quantile`` over ``_bucket`` works on any Prometheus. The count at a bound inside
  an exponential bucket is interpolated log-linearly within that bucket (the JSON view's
  percentile rule) and rounded, so the boundary is placed to within a fraction of one
  exponential bucket (4-9 % wide); ``_count`` and ``_sum`` are exact, and bounds at or above the
  lifetime ``max`` (below the ``min``) count everything (nothing) exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.util.types import Attributes
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.utils import floatToGoString

from otel_perf import _semconv as n
from otel_perf._exphist import lower_bound
from otel_perf._log import warn_once

#: The content type of the rendering (Prometheus text format 0.0.4).
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4

#: ``le`` bounds (seconds) used for each exponential histogram; others use the MCP advice.
CLASSIC_BOUNDS: Final[Mapping[str, tuple[float, ...]]] = {
    n.MCP_SERVER_OPERATION_DURATION: n.MCP_DURATION_BUCKETS,
    n.GEN_AI_CLIENT_OPERATION_DURATION: n.GEN_AI_DURATION_BUCKETS,
}

_UNIT_SUFFIXES: Final = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "%": "percent",
    "USD": "usd",  # otel_perf.gen_ai.client.cost -> otel_perf_gen_ai_client_cost_usd_total
}
_BAD_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_UNDERSCORES = re.compile(r"__+")
_SCOPE_NAME: Final = "otel_scope_name"
_SCOPE_VERSION: Final = "otel_scope_version"


# --- names ---------------------------------------------------------------------------------------


def metric_name(name: str, unit: str | None, counter: bool = False) -> str:
    """The Prometheus name of an OTel metric (without ``_total``, which counters add).

    >>> metric_name("mcp.server.operation.duration", "s")
    'mcp_server_operation_duration_seconds'
    >>> metric_name("cache.requests", "{request}", counter=True)
    'cache_requests'
    """
    base = _UNDERSCORES.sub("_", _BAD_NAME_CHARS.sub("_", name)).strip("_") or "metric"
    if base[0].isdigit():
        base = "_" + base
    suffix = _unit_suffix(unit)
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if counter and base.endswith("_total"):
        base = base[: -len("_total")]
    return base


def _unit_suffix(unit: str | None) -> str:
    if not unit:
        return ""
    # Annotations in braces carry no unit ("{request}"), and "1" means dimensionless.
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if not unit or unit == "1":
        return ""
    if "/" in unit:
        per, _, over = unit.partition("/")
        parts = [_UNIT_SUFFIXES.get(per, per), "per", _UNIT_SUFFIXES.get(over, over)]
        return _label_name("_".join(p for p in parts if p)).strip("_")
    return _label_name(_UNIT_SUFFIXES.get(unit, unit)).strip("_")


def _label_name(key: str) -> str:
    name = _UNDERSCORES.sub("_", _BAD_LABEL_CHARS.sub("_", key)) or "_"
    if name[0].isdigit():
        name = "key_" + name
    if name.startswith("__"):  # reserved for Prometheus itself
        name = "key" + name
    return name


def _label_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_label_value(v) for v in value)
    return str(value)


def labels_of(attributes: Attributes, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Prometheus labels for OTel attributes; colliding keys join their values with ``;``."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for key, value in (attributes or {}).items():
        grouped.setdefault(_label_name(key), []).append((key, _label_value(value)))
    labels = {
        name: ";".join(v for _, v in sorted(pairs)) for name, pairs in sorted(grouped.items())
    }
    if extra:
        labels.update(extra)
    return labels


def le_label(bound: float) -> str:
    """An ``le`` value written as Go writes it (``1``, ``0.5``, ``+Inf``), as the collector does.

    >>> [le_label(b) for b in (0.01, 1.0, 300.0, math.inf)]
    ['0.01', '1', '300', '+Inf']
    """
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text[:-2] if text.endswith(".0") else text


# --- histograms ----------------------------------------------------------------------------------


def exponential_le_counts(
    point: ExponentialHistogramDataPoint, bounds: Sequence[float]
) -> list[int]:
    """Cumulative counts of ``point`` at each of the ascending ``bounds`` (one pass)."""
    total = point.count
    below_positive = point.zero_count + sum(point.negative.bucket_counts)
    counts = point.positive.bucket_counts
    offset = point.positive.offset
    scale = point.scale
    out: list[int] = []
    j = 0
    acc = below_positive
    previous = 0
    for bound in bounds:
        if total == 0 or bound < point.min:
            value = 0
        elif bound >= point.max:
            value = total
        elif bound <= 0.0:
            value = below_positive if bound == 0.0 else sum(point.negative.bucket_counts)
        else:
            while j < len(counts) and lower_bound(offset + j + 1, scale) <= bound:
                acc += counts[j]
                j += 1
            value = acc
            if j < len(counts) and counts[j]:
                low, high = lower_bound(offset + j, scale), lower_bound(offset + j + 1, scale)
                if low < bound:
                    value += round(counts[j] * math.log(bound / low) / math.log(high / low))
        value = min(max(value, previous), total)
        out.append(value)
        previous = value
    return out


def _histogram_samples(
    name: str, point: Any, labels: dict[str, str], bounds: Sequence[float] | None
) -> Iterable[tuple[str, dict[str, str], float]]:
    if isinstance(point, HistogramDataPoint):
        cumulative, running = [], 0
        for count in point.bucket_counts[: len(point.explicit_bounds)]:
            running += count
            cumulative.append(running)
        le_bounds: Sequence[float] = point.explicit_bounds
    else:
        le_bounds = bounds or n.MCP_DURATION_BUCKETS
        cumulative = exponential_le_counts(point, le_bounds)
    for bound, count in zip(le_bounds, cumulative, strict=True):
        yield f"{name}_bucket", {**labels, "le": le_label(bound)}, float(count)
    yield f"{name}_bucket", {**labels, "le": "+Inf"}, float(point.count)
    yield f"{name}_count", labels, float(point.count)
    yield f"{name}_sum", labels, float(point.sum)


# --- the rendering -------------------------------------------------------------------------------


class _Families:
    """The ``collect()`` interface ``generate_latest`` reads, over prepared families."""

    def __init__(self, families: Iterable[PromMetric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[PromMetric]:
        return self._families


def _kind(metric: Metric) -> str | None:
    data = metric.data
    if isinstance(data, Sum):
        return "counter" if data.is_monotonic else "gauge"
    if isinstance(data, Gauge):
        return "gauge"
    if isinstance(data, (Histogram, ExponentialHistogram)):
        return "histogram"
    return None


def families(data: MetricsData | None) -> list[PromMetric]:
    """The Prometheus metric families of one collection (``target_info`` first)."""
    if data is None:
        return []
    out: dict[str, PromMetric] = {}
    info: PromMetric | None = None
    for resource_metrics in data.resource_metrics:
        if info is None and resource_metrics.resource.attributes:
            info = PromMetric("target", "Target metadata (the OpenTelemetry resource)", "info")
            info.add_sample("target_info", labels_of(resource_metrics.resource.attributes), 1.0)
        for scope_metrics in resource_metrics.scope_metrics:
            scope_labels = {_SCOPE_NAME: scope_metrics.scope.name}
            if scope_metrics.scope.version:
                scope_labels[_SCOPE_VERSION] = scope_metrics.scope.version
            for metric in scope_metrics.metrics:
                _add_metric(out, metric, scope_labels)
    ordered = [info] if info is not None else []
    return ordered + [out[name] for name in sorted(out)]


def _add_metric(out: dict[str, PromMetric], metric: Metric, scope_labels: dict[str, str]) -> None:
    kind = _kind(metric)
    if kind is None:
        return
    name = metric_name(metric.name, metric.unit, counter=kind == "counter")
    family = out.get(name)
    if family is None:
        help_text = metric.description or f"OpenTelemetry metric {metric.name}"
        family = out[name] = PromMetric(name, help_text, kind)
    elif family.type != kind:
        warn_once(
            "prometheus-name-clash",
            "otel-perf: two metrics map to the Prometheus name %s with different types; "
            "the second one is left out of /metrics/prometheus",
            name,
        )
        return
    bounds = CLASSIC_BOUNDS.get(metric.name)
    for point in metric.data.data_points:
        labels = labels_of(point.attributes, scope_labels)
        if kind == "histogram":
            for sample_name, sample_labels, value in _histogram_samples(
                name, point, labels, bounds
            ):
                family.add_sample(sample_name, sample_labels, value)
        else:
            sample_name = f"{name}_total" if kind == "counter" else name
            family.add_sample(sample_name, labels, float(getattr(point, "value", 0.0)))


def render(data: MetricsData | None) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of one collection.

    >>> render(None)
    b''
    """
    return generate_latest(_Families(families(data)))


__all__ = [
    "CLASSIC_BOUNDS",
    "CONTENT_TYPE",
    "exponential_le_counts",
    "families",
    "labels_of",
    "le_label",
    "metric_name",
    "render",
]
