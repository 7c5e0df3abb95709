"""The JSON view: a pure function from collected OTel ``MetricsData`` to the origin's document.

Two steps, both free of I/O and globals:

1. :func:`extract` walks ``MetricsData`` once and groups data points into per-tool,
   per-provider, per-model and per-cache lifetime totals plus merged cumulative histograms.
2. :func:`render` turns that, with the window histograms from
   :class:`otel_perf._window.WindowTracker`, into the document served on ``/metrics``.

:func:`build_document` runs both around one window-tracker advance. Counts, rates and error
types are exact lifetime totals; latency statistics describe each series' recent window.

A :class:`ViewCache`, kept by the pipeline between snapshots, lets a series whose cumulative
count has not changed skip the bucket conversion, the merge and the percentile estimate, so
polling an idle server costs little more than the SDK's own collect.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.util.types import Attributes

from otel_perf import _names as n
from otel_perf._exphist import EMPTY, Hist, from_point, merge, quantiles
from otel_perf._window import WindowTracker

_QUANTILES = (0.5, 0.95, 0.99)

_L = TypeVar("_L")  # what a handler derives from a series' attributes


@dataclass
class SeriesTotals:
    """Lifetime totals of one tool, provider or model, and its cumulative histogram parts."""

    total: int = 0
    failed: int = 0
    error_types: dict[str, int] = field(default_factory=dict)
    hist_parts: list[Hist] = field(default_factory=list)
    sum_seconds: float = 0.0  # for series without exponential buckets
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, count: int, error_type: str | None, hist: Hist | None, total_sum: float) -> None:
        self.total += count
        self.sum_seconds += total_sum
        if error_type is not None:
            self.failed += count
            self.error_types[error_type] = self.error_types.get(error_type, 0) + count
        if hist is not None and hist.count:
            self.hist_parts.append(hist)


class ViewCache:
    """Per-series results kept from one snapshot to the next (one per pipeline).

    Every entry is checked before use — a data point by the identity of its attributes (the
    SDK keeps one attributes object per series for the series' life) and its cumulative count;
    a merge by the identity of its parts; latency fields by the identity of the window — so a
    stale or missing entry only costs the recomputation, never a wrong figure. Each snapshot
    keeps only the entries it used, so the cache never outgrows the live series. Concurrent
    snapshots (the pipeline serialises them anyway) can only cause extra recomputation.
    """

    def __init__(self) -> None:
        self._points: dict[int, tuple[object, int, float, Hist, Any]] = {}
        self._points_next: dict[int, tuple[object, int, float, Hist, Any]] = {}
        self._merged: dict[Hashable, tuple[tuple[Hist, ...], Hist]] = {}
        self._merged_next: dict[Hashable, tuple[tuple[Hist, ...], Hist]] = {}
        self._latency: dict[Hashable, tuple[Hist, dict[str, float]]] = {}
        self._latency_next: dict[Hashable, tuple[Hist, dict[str, float]]] = {}

    def begin(self) -> None:
        """Start a snapshot: what the previous one used becomes what this one may reuse."""
        self._points, self._points_next = self._points_next, {}
        self._merged, self._merged_next = self._merged_next, {}
        self._latency, self._latency_next = self._latency_next, {}

    def series(
        self, point: ExponentialHistogramDataPoint, classify: Callable[[Attributes], _L]
    ) -> tuple[Hist, _L]:
        """The point's buckets and ``classify(point.attributes)``, reused when unchanged.

        A series' attributes never change, so neither does what ``classify`` derives from them
        (each metric's handler passes its own ``classify``, and attributes belong to one metric).
        """
        attributes = point.attributes
        if not attributes:
            return from_point(point), classify(attributes)  # no identity to key on
        key = id(attributes)
        entry = self._points.get(key)
        if entry is None or entry[0] is not attributes:
            entry = (attributes, point.count, point.sum, from_point(point), classify(attributes))
        elif entry[1] != point.count or entry[2] != point.sum:
            entry = (attributes, point.count, point.sum, from_point(point), entry[4])
        self._points_next[key] = entry
        labels: _L = entry[4]
        return entry[3], labels

    def merged(self, key: Hashable, parts: Sequence[Hist]) -> Hist:
        entry = self._merged.get(key)
        if (
            entry is None
            or len(entry[0]) != len(parts)
            or not all(a is b for a, b in zip(entry[0], parts, strict=True))
        ):
            entry = (tuple(parts), merge(parts))
        self._merged_next[key] = entry
        return entry[1]

    def latency(self, key: Hashable, window: Hist) -> dict[str, float]:
        entry = self._latency.get(key)
        if entry is None or entry[0] is not window:
            entry = (window, latency_fields(window))
        self._latency_next[key] = entry
        return entry[1]


@dataclass
class CacheTotals:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    size_rejections: int = 0


@dataclass
class Extracted:
    """Everything the document needs from one collection."""

    tools: dict[str, SeriesTotals] = field(default_factory=dict)
    providers: dict[str, SeriesTotals] = field(default_factory=dict)
    models: dict[tuple[str, str], SeriesTotals] = field(default_factory=dict)
    caches: dict[str, CacheTotals] = field(default_factory=dict)
    total_requests: int = 0
    active_sessions: int = 0
    concurrent_requests: int = 0
    uptime_seconds: float | None = None
    cache: ViewCache | None = None

    def cumulative_hists(self) -> dict[Hashable, Hist]:
        """Merged lifetime histogram per window key (``("tool", name)`` and so on)."""
        cache = self.cache
        out: dict[Hashable, Hist] = {}
        series: list[tuple[Hashable, SeriesTotals]] = [
            *((("tool", name), totals) for name, totals in self.tools.items()),
            *((("provider", name), totals) for name, totals in self.providers.items()),
            *((("model", *key), totals) for key, totals in self.models.items()),
        ]
        for key, totals in series:
            parts = totals.hist_parts
            out[key] = merge(parts) if cache is None else cache.merged(key, parts)
        return out


def _label(attributes: Attributes, key: str, default: str) -> str:
    if not attributes:
        return default
    if attributes.get(n.SDK_OVERFLOW_ATTRIBUTE):
        return n.OTHER
    value = attributes.get(key)
    return str(value) if value is not None else default


def _error_type(attributes: Attributes) -> str | None:
    value = attributes.get(n.ERROR_TYPE) if attributes else None
    return None if value is None else str(value)


def _series_point(
    point: object, cache: ViewCache | None, classify: Callable[[Attributes], _L]
) -> tuple[int, Hist | None, float, _L]:
    """Count, buckets (exponential points only), sum and ``classify(attributes)`` of a point."""
    if isinstance(point, ExponentialHistogramDataPoint):
        if cache is not None:
            hist, labels = cache.series(point, classify)
        else:
            hist, labels = from_point(point), classify(point.attributes)
        return point.count, hist, float(point.sum), labels
    labels = classify(getattr(point, "attributes", None))
    if isinstance(point, HistogramDataPoint):
        return point.count, None, float(point.sum), labels
    return 0, None, 0.0, labels


def extract(data: MetricsData | None, cache: ViewCache | None = None) -> Extracted:
    """Group the data points of one collection by tool, provider, model and cache.

    With a ``cache`` (see :class:`ViewCache`), unchanged series reuse their converted buckets.
    """
    out = Extracted(cache=cache)
    if cache is not None:
        cache.begin()
    if data is None:
        return out
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                handler = _HANDLERS.get(metric.name)
                if handler is None:
                    continue
                for point in metric.data.data_points:
                    handler(out, point)
    return out


def _tool_labels(attributes: Attributes) -> tuple[str, str | None] | None:
    """(tool, error type) of a duration series; ``None`` for requests other than tools/call."""
    overflow = bool(attributes and attributes.get(n.SDK_OVERFLOW_ATTRIBUTE))
    method = attributes.get(n.MCP_METHOD_NAME) if attributes else None
    if method != n.METHOD_TOOLS_CALL and not overflow:
        return None
    return _label(attributes, n.GEN_AI_TOOL_NAME, n.UNKNOWN), _error_type(attributes)


def _on_mcp_duration(out: Extracted, point: object) -> None:
    count, hist, total_sum, labels = _series_point(point, out.cache, _tool_labels)
    out.total_requests += count
    if labels is None:
        return
    tool, error_type = labels
    totals = out.tools.get(tool)
    if totals is None:
        totals = out.tools[tool] = SeriesTotals()
    totals.add(count, error_type, hist, total_sum)


def _provider_labels(attributes: Attributes) -> tuple[str, str, str | None]:
    """(provider, model, error type) of a provider duration series."""
    return (
        _label(attributes, n.GEN_AI_PROVIDER_NAME, n.UNKNOWN),
        _label(attributes, n.GEN_AI_REQUEST_MODEL, n.UNKNOWN),
        _error_type(attributes),
    )


def _on_provider_duration(out: Extracted, point: object) -> None:
    count, hist, total_sum, labels = _series_point(point, out.cache, _provider_labels)
    provider, model, error_type = labels
    for totals in _provider_and_model(out, provider, model):
        totals.add(count, error_type, hist, total_sum)


def _on_token_usage(out: Extracted, point: object) -> None:
    if not isinstance(point, (HistogramDataPoint, ExponentialHistogramDataPoint)):
        return
    attributes = point.attributes
    provider = _label(attributes, n.GEN_AI_PROVIDER_NAME, n.UNKNOWN)
    model = _label(attributes, n.GEN_AI_REQUEST_MODEL, n.UNKNOWN)
    token_type = attributes.get(n.GEN_AI_TOKEN_TYPE) if attributes else None
    tokens = round(point.sum)
    for totals in _provider_and_model(out, provider, model):
        if token_type == n.TOKEN_INPUT:
            totals.input_tokens += tokens
        elif token_type == n.TOKEN_OUTPUT:
            totals.output_tokens += tokens


def _provider_and_model(out: Extracted, provider: str, model: str) -> tuple[SeriesTotals, ...]:
    provider_totals = out.providers.get(provider)
    if provider_totals is None:
        provider_totals = out.providers[provider] = SeriesTotals()
    key = (provider, model)
    model_totals = out.models.get(key)
    if model_totals is None:
        model_totals = out.models[key] = SeriesTotals()
    return provider_totals, model_totals


def _cache(out: Extracted, point: object) -> CacheTotals | None:
    if not isinstance(point, NumberDataPoint):
        return None
    name = _label(point.attributes, n.CACHE_NAME, n.UNKNOWN)
    totals = out.caches.get(name)
    if totals is None:
        totals = out.caches[name] = CacheTotals()
    return totals


def _on_cache_requests(out: Extracted, point: object) -> None:
    # Points of this name come from two scopes of one provider: the synchronous counter
    # (instrument_cache, record_cache_*) and the observable one read from lru_cache statistics
    # (otel_perf._cache_sources). Same name, unit and attributes, so they are summed here.
    totals = _cache(out, point)
    if totals is None or not isinstance(point, NumberDataPoint):
        return
    result = point.attributes.get(n.CACHE_RESULT) if point.attributes else None
    if result == n.CACHE_HIT:
        totals.hits += int(point.value)
    elif result == n.CACHE_MISS:
        totals.misses += int(point.value)


def _on_cache_evictions(out: Extracted, point: object) -> None:
    totals = _cache(out, point)
    if totals is not None and isinstance(point, NumberDataPoint):
        totals.evictions += int(point.value)


def _on_cache_rejections(out: Extracted, point: object) -> None:
    totals = _cache(out, point)
    if totals is not None and isinstance(point, NumberDataPoint):
        totals.size_rejections += int(point.value)


def _on_active_sessions(out: Extracted, point: object) -> None:
    if isinstance(point, NumberDataPoint):
        out.active_sessions += int(point.value)


def _on_active_requests(out: Extracted, point: object) -> None:
    if isinstance(point, NumberDataPoint):
        out.concurrent_requests += int(point.value)


def _on_uptime(out: Extracted, point: object) -> None:
    if isinstance(point, NumberDataPoint):
        out.uptime_seconds = max(out.uptime_seconds or 0.0, float(point.value))


_HANDLERS = {
    n.MCP_SERVER_OPERATION_DURATION: _on_mcp_duration,
    n.GEN_AI_CLIENT_OPERATION_DURATION: _on_provider_duration,
    n.GEN_AI_CLIENT_TOKEN_USAGE: _on_token_usage,
    n.CACHE_REQUESTS: _on_cache_requests,
    n.CACHE_EVICTIONS: _on_cache_evictions,
    n.CACHE_SIZE_REJECTIONS: _on_cache_rejections,
    n.ACTIVE_SESSIONS: _on_active_sessions,
    n.ACTIVE_REQUESTS: _on_active_requests,
    n.PROCESS_UPTIME: _on_uptime,
}


# --- rendering ---------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def latency_fields(window: Hist) -> dict[str, float]:
    """avg/p50/p95/p99/min/max in milliseconds (2 decimals) of a window; 0.0 when empty."""
    if window.count == 0:
        return dict.fromkeys(
            (
                "avg_latency_ms",
                "p50_latency_ms",
                "p95_latency_ms",
                "p99_latency_ms",
                "min_latency_ms",
                "max_latency_ms",
            ),
            0.0,
        )
    low, high = window.min, window.max
    p50, p95, p99 = quantiles(window, _QUANTILES)
    # Rounding each to 2 decimals keeps the order min <= p50 <= p95 <= p99 <= max.
    avg = min(max(window.sum / window.count, low), high)
    return {
        "avg_latency_ms": _ms(avg),
        "p50_latency_ms": _ms(p50),
        "p95_latency_ms": _ms(p95),
        "p99_latency_ms": _ms(p99),
        "min_latency_ms": _ms(low),
        "max_latency_ms": _ms(high),
    }


def _series_entry(
    name_key: str,
    name: str,
    totals: SeriesTotals,
    window: Hist,
    key: Hashable = None,
    cache: ViewCache | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        name_key: name,
        "total_calls": totals.total,
        "successful_calls": totals.total - totals.failed,
        "failed_calls": totals.failed,
        "success_rate": _percent(totals.total - totals.failed, totals.total),
    }
    if window.count == 0 and totals.total and not totals.hist_parts:
        # Points without exponential buckets (another exporter's View): only the mean is known.
        mean = totals.sum_seconds / totals.total
        entry.update(latency_fields(Hist(20, 0, 0, (), 1, mean, mean, mean)))
    elif cache is not None:
        entry.update(cache.latency(key, window))
    else:
        entry.update(latency_fields(window))
    entry["error_types"] = dict(sorted(totals.error_types.items()))
    return entry


def render(
    extracted: Extracted,
    windows: Mapping[Hashable, Hist],
    *,
    timestamp: float,
    start_time: float,
) -> dict[str, Any]:
    """The ``/metrics`` document for one collection (enabled case)."""
    cache = extracted.cache
    tool_metrics = {}
    for name, totals in sorted(extracted.tools.items()):
        key = ("tool", name)
        window = windows.get(key, EMPTY)
        tool_metrics[name] = _series_entry("tool_name", name, totals, window, key, cache)
    cache_metrics = {
        name: {
            "cache_name": name,
            "hits": c.hits,
            "misses": c.misses,
            "total_requests": c.hits + c.misses,
            "hit_rate": _percent(c.hits, c.hits + c.misses),
            "evictions": c.evictions,
            "size_rejections": c.size_rejections,
        }
        for name, c in sorted(extracted.caches.items())
    }
    provider_metrics: dict[str, Any] = {}
    for name, totals in sorted(extracted.providers.items()):
        key = ("provider", name)
        entry = _series_entry("provider", name, totals, windows.get(key, EMPTY), key, cache)
        entry["input_tokens"] = totals.input_tokens
        entry["output_tokens"] = totals.output_tokens
        models: dict[str, Any] = {}
        for (provider_name, model), model_totals in sorted(extracted.models.items()):
            if provider_name != name:
                continue
            model_key = ("model", provider_name, model)
            window = windows.get(model_key, EMPTY)
            model_entry = _series_entry("model", model, model_totals, window, model_key, cache)
            model_entry["input_tokens"] = model_totals.input_tokens
            model_entry["output_tokens"] = model_totals.output_tokens
            models[model] = model_entry
        entry["models"] = models
        provider_metrics[name] = entry

    uptime = extracted.uptime_seconds
    if uptime is None:
        uptime = max(timestamp - start_time, 0.0)
    system_metrics = {
        "active_sessions": extracted.active_sessions,
        "concurrent_requests": extracted.concurrent_requests,
        "total_requests": extracted.total_requests,
        "start_time": start_time,
        "uptime_seconds": round(uptime, 2),
        "uptime_hours": round(uptime / 3600.0, 2),
    }
    return {
        "enabled": True,
        "timestamp": timestamp,
        "tool_metrics": tool_metrics,
        "cache_metrics": cache_metrics,
        "system_metrics": system_metrics,
        "provider_metrics": provider_metrics,
    }


def disabled_document(timestamp: float) -> dict[str, Any]:
    """The document when metrics are switched off: ``enabled: false`` and empty sections."""
    return {
        "enabled": False,
        "timestamp": timestamp,
        "tool_metrics": {},
        "cache_metrics": {},
        "system_metrics": {},
        "provider_metrics": {},
    }


def build_document(
    data: MetricsData | None,
    tracker: WindowTracker,
    *,
    timestamp: float,
    start_time: float,
    cache: ViewCache | None = None,
) -> dict[str, Any]:
    """Extract, advance the windows (closing a slice), render."""
    extracted = extract(data, cache)
    windows = tracker.advance(extracted.cumulative_hists())
    return render(extracted, windows, timestamp=timestamp, start_time=start_time)
