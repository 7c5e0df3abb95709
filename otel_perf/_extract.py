"""From one collection's ``MetricsData`` to per-tool, per-provider, per-model and per-cache totals.

:func:`extract` walks ``MetricsData`` once and groups data points into lifetime totals plus
merged cumulative histograms. It is pure (no I/O, no globals); the JSON document
(:mod:`otel_perf._document`) and the history ring (:mod:`otel_perf._history`) both build on it.
With a :class:`~otel_perf._document_cache.DocumentCache`, unchanged series reuse their
converted buckets.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.util.types import Attributes

from otel_perf import _semconv as n
from otel_perf._document_cache import DocumentCache
from otel_perf._exphist import Hist, from_point, merge

_L = TypeVar("_L")  # what a handler derives from a series' attributes


class SeriesTotals:
    """Lifetime totals of one tool, provider or model, and its cumulative histogram parts.

    A slotted class rather than a dataclass with default factories: every snapshot makes one
    per tool, provider and model, and that construction was a visible part of a busy one.
    """

    __slots__ = (
        "client_errors",
        "cost_usd",
        "error_types",
        "failed",
        "hist_parts",
        "input_tokens",
        "output_tokens",
        "sum_seconds",
        "total",
    )

    def __init__(self) -> None:
        self.total = 0
        self.failed = 0
        #: Calls the client got wrong (status code, no ``error.type``): neither a success nor
        #: a failure.
        self.client_errors = 0
        self.error_types: dict[str, int] = {}
        self.hist_parts: list[Hist] = []
        self.sum_seconds = 0.0  # for series without exponential buckets
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd: float | None = None  # models only: None when nothing priced it

    def add(
        self,
        count: int,
        error_type: str | None,
        hist: Hist | None,
        total_sum: float,
        client_error: bool = False,
    ) -> None:
        self.total += count
        if client_error:
            # Counted, but kept out of the latency statistics: a rejected call did no work.
            self.client_errors += count
            return
        self.sum_seconds += total_sum
        if error_type is not None:
            self.failed += count
            self.error_types[error_type] = self.error_types.get(error_type, 0) + count
        if hist is not None and hist.count:
            self.hist_parts.append(hist)


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
    cache: DocumentCache | None = None

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


def _series_points(
    points: Sequence[object], cache: DocumentCache | None, classify: Callable[[Attributes], _L]
) -> Iterable[tuple[int, Hist | None, float, _L]]:
    """Count, buckets (exponential points only), sum and ``classify(attributes)`` of each point.

    One metric's points are all of one kind: with a cache, exponential ones go through it in
    one call (an unchanged series then costs a lookup, not a conversion).
    """
    if cache is not None and points and isinstance(points[0], ExponentialHistogramDataPoint):
        return cache.series_points(
            cast("Sequence[ExponentialHistogramDataPoint]", points), classify
        )
    return [_series_point(point, classify) for point in points]


def _series_point(
    point: object, classify: Callable[[Attributes], _L]
) -> tuple[int, Hist | None, float, _L]:
    if isinstance(point, ExponentialHistogramDataPoint):
        return point.count, from_point(point), float(point.sum), classify(point.attributes)
    labels = classify(getattr(point, "attributes", None))
    if isinstance(point, HistogramDataPoint):
        return point.count, None, float(point.sum), labels
    return 0, None, 0.0, labels


def extract(data: MetricsData | None, cache: DocumentCache | None = None) -> Extracted:
    """Group the data points of one collection by tool, provider, model and cache.

    With a ``cache`` (see :class:`DocumentCache`), unchanged series reuse their converted buckets.
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
                handler(out, metric.data.data_points)
    return out


def _tool_labels(attributes: Attributes) -> tuple[str, str | None, bool] | None:
    """(tool, error type, client mistake) of a duration series; ``None`` for requests other
    than tools/call. A client mistake has ``rpc.response.status_code`` and no ``error.type``."""
    overflow = bool(attributes and attributes.get(n.SDK_OVERFLOW_ATTRIBUTE))
    method = attributes.get(n.MCP_METHOD_NAME) if attributes else None
    if method != n.METHOD_TOOLS_CALL and not overflow:
        return None
    error_type = _error_type(attributes)
    client_error = (
        error_type is None
        and attributes is not None
        and attributes.get(n.RPC_RESPONSE_STATUS_CODE) is not None
    )
    return _label(attributes, n.GEN_AI_TOOL_NAME, n.UNKNOWN), error_type, client_error


def _on_mcp_duration(out: Extracted, points: Sequence[object]) -> None:
    tools = out.tools
    requests = 0
    for count, hist, total_sum, labels in _series_points(points, out.cache, _tool_labels):
        requests += count
        if labels is None:
            continue
        tool, error_type, client_error = labels
        totals = tools.get(tool)
        if totals is None:
            totals = tools[tool] = SeriesTotals()
        totals.add(count, error_type, hist, total_sum, client_error)
    out.total_requests += requests


def _provider_labels(attributes: Attributes) -> tuple[str, str, str | None]:
    """(provider, model, error type) of a provider duration series."""
    return (
        _label(attributes, n.GEN_AI_PROVIDER_NAME, n.UNKNOWN),
        _label(attributes, n.GEN_AI_REQUEST_MODEL, n.UNKNOWN),
        _error_type(attributes),
    )


def _on_provider_duration(out: Extracted, points: Sequence[object]) -> None:
    for count, hist, total_sum, labels in _series_points(points, out.cache, _provider_labels):
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


def _on_cost(out: Extracted, point: object) -> None:
    if not isinstance(point, NumberDataPoint):
        return
    provider = _label(point.attributes, n.GEN_AI_PROVIDER_NAME, n.UNKNOWN)
    model = _label(point.attributes, n.GEN_AI_REQUEST_MODEL, n.UNKNOWN)
    _provider, model_totals = _provider_and_model(out, provider, model)
    model_totals.cost_usd = (model_totals.cost_usd or 0.0) + float(point.value)


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
    # (otel_perf._integrations.lru_cache_sources). Same name, unit and attributes, so they are
    # summed here.
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


def _per_point(
    handle: Callable[[Extracted, object], None],
) -> Callable[[Extracted, Sequence[object]], None]:
    """A metric's handler from a handler of one of its points."""

    def handle_points(out: Extracted, points: Sequence[object]) -> None:
        for point in points:
            handle(out, point)

    return handle_points


#: Each metric otel-perf reads, and the handler of its data points (one call per metric).
_HANDLERS: dict[str, Callable[[Extracted, Sequence[object]], None]] = {
    n.MCP_SERVER_OPERATION_DURATION: _on_mcp_duration,
    n.GEN_AI_CLIENT_OPERATION_DURATION: _on_provider_duration,
    n.GEN_AI_CLIENT_TOKEN_USAGE: _per_point(_on_token_usage),
    n.GEN_AI_CLIENT_COST: _per_point(_on_cost),
    n.CACHE_REQUESTS: _per_point(_on_cache_requests),
    n.CACHE_EVICTIONS: _per_point(_on_cache_evictions),
    n.CACHE_SIZE_REJECTIONS: _per_point(_on_cache_rejections),
    n.ACTIVE_SESSIONS: _per_point(_on_active_sessions),
    n.ACTIVE_REQUESTS: _per_point(_on_active_requests),
    n.PROCESS_UPTIME: _per_point(_on_uptime),
}
