"""The JSON document served on ``/metrics``: a pure function of extracted totals and windows.

:func:`render` turns :class:`~otel_perf._extract.Extracted` totals, with the window histograms
from :class:`otel_perf._window.WindowTracker`, into the document. :func:`build_document` runs
extraction, a window advance (closing a slice) and rendering. Counts, rates and error types are
exact lifetime totals; latency statistics describe each series' recent window.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData

from otel_perf._document_cache import DocumentCache
from otel_perf._exphist import EMPTY, Hist
from otel_perf._extract import Extracted, SeriesTotals, extract
from otel_perf._latency import latency_values, round2
from otel_perf._window import WindowTracker


def _cost(usd: float | None) -> float | None:
    """US dollars, rounded to a millionth; ``None`` (no price known) stays ``None``."""
    return None if usd is None else round(usd, 6)


def _percent(part: int, whole: int) -> float:
    return round2(100.0 * part / whole) if whole else 0.0


def _series_entry(
    name_key: str,
    name: str,
    totals: SeriesTotals,
    window: Hist,
    key: Hashable = None,
    cache: DocumentCache | None = None,
    with_client_errors: bool = False,
) -> dict[str, Any]:
    total = totals.total
    client_errors = totals.client_errors
    failed = totals.failed
    served = total - client_errors  # calls the server did (or failed to do)
    successful = served - failed
    if window.count == 0 and served and not totals.hist_parts:
        # Points without exponential buckets (another exporter's View): only the mean is known.
        mean = totals.sum_seconds / served
        latency = latency_values(
            Hist(scale=20, zero_count=0, offset=0, counts=(), count=1, sum=mean, min=mean, max=mean)
        )
    elif cache is not None:
        latency = cache.latency(key, window)
    else:
        latency = latency_values(window)
    avg, p50, p95, p99, low, high = latency
    rate = _percent(successful, served)
    error_types = dict(sorted(totals.error_types.items()))
    # One dict display per entry (every snapshot makes one per tool, provider and model).
    if with_client_errors:
        return {
            name_key: name,
            "total_calls": total,
            "successful_calls": successful,
            "failed_calls": failed,
            "client_errors": client_errors,
            "success_rate": rate,
            "avg_latency_ms": avg,
            "p50_latency_ms": p50,
            "p95_latency_ms": p95,
            "p99_latency_ms": p99,
            "min_latency_ms": low,
            "max_latency_ms": high,
            "error_types": error_types,
        }
    return {
        name_key: name,
        "total_calls": total,
        "successful_calls": successful,
        "failed_calls": failed,
        "success_rate": rate,
        "avg_latency_ms": avg,
        "p50_latency_ms": p50,
        "p95_latency_ms": p95,
        "p99_latency_ms": p99,
        "min_latency_ms": low,
        "max_latency_ms": high,
        "error_types": error_types,
    }


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
        tool_metrics[name] = _series_entry(
            "tool_name", name, totals, window, key, cache, with_client_errors=True
        )
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
        costs: list[float | None] = []
        for (provider_name, model), model_totals in sorted(extracted.models.items()):
            if provider_name != name:
                continue
            model_key = ("model", provider_name, model)
            window = windows.get(model_key, EMPTY)
            model_entry = _series_entry("model", model, model_totals, window, model_key, cache)
            model_entry["input_tokens"] = model_totals.input_tokens
            model_entry["output_tokens"] = model_totals.output_tokens
            model_entry["cost_usd"] = _cost(model_totals.cost_usd)
            if model_totals.input_tokens or model_totals.output_tokens:
                costs.append(model_totals.cost_usd)
            models[model] = model_entry
        # A provider's cost is its models' only when every model that used tokens has one: a
        # sum that leaves an unpriced model out would be a wrong figure, not a partial one.
        known = bool(costs) and all(cost is not None for cost in costs)
        entry["cost_usd"] = _cost(sum(c for c in costs if c is not None)) if known else None
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
    cache: DocumentCache | None = None,
) -> dict[str, Any]:
    """Extract, advance the windows (closing a slice), render."""
    extracted = extract(data, cache)
    windows = tracker.advance(extracted.cumulative_hists())
    return render(extracted, windows, timestamp=timestamp, start_time=start_time)
