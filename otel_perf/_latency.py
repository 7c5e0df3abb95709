"""Latency fields of a window: avg/p50/p95/p99/min/max in milliseconds, as documents show them."""

from __future__ import annotations

from math import floor

from otel_perf._exphist import Hist, quantiles

_QUANTILES = (0.5, 0.95, 0.99)


def round2(value: float) -> float:
    """``round(value, 2)``, exactly, in a quarter of its time.

    ``round(x, 2)`` makes a correctly rounded decimal string and parses it back (about 0.5 us);
    a busy snapshot rounds seven numbers for every changed tool. Its result is the double
    nearest to ``k / 100``, ``k`` being the exact ``x * 100`` rounded to the nearest integer
    (ties to even), and so is ``k / 100.0`` (IEEE division is correctly rounded; ``k`` and 100
    are exact). Below 1e11 the computed ``x * 100.0`` is within 1e-5 of the exact product, so
    when it is more than 0.001 away from a half-integer, rounding it gives ``k``. Anything else
    (near a tie, zero or negative, huge, NaN, infinite) goes to ``round`` itself.
    """
    scaled = value * 100.0
    if 0.0 < scaled < 1e11:
        nearest = floor(scaled + 0.5)
        if -0.499 < scaled - nearest < 0.499:
            return nearest / 100.0
    return round(value, 2)


#: The names of :func:`latency_values`' six numbers, in the document's order.
FIELDS = (
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "min_latency_ms",
    "max_latency_ms",
)

#: avg, p50, p95, p99, min and max, in milliseconds.
LatencyValues = tuple[float, float, float, float, float, float]

_EMPTY_VALUES: LatencyValues = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def latency_values(window: Hist) -> LatencyValues:
    """avg/p50/p95/p99/min/max in milliseconds (2 decimals) of a window; 0.0 when empty.

    A tuple, not a dict: the document puts these six into each series' entry, and a tuple
    (kept by :class:`~otel_perf._document_cache.DocumentCache` between snapshots) costs less
    to make and to unpack there than a dict to merge.
    """
    if window.count == 0:
        return _EMPTY_VALUES
    low, high = window.min, window.max
    p50, p95, p99 = quantiles(window, _QUANTILES)
    # Rounding each to 2 decimals keeps the order min <= p50 <= p95 <= p99 <= max.
    avg = min(max(window.sum / window.count, low), high)
    # Milliseconds to 2 decimals: a busy snapshot makes these six numbers for every changed tool.
    return (
        round2(avg * 1000.0),
        round2(p50 * 1000.0),
        round2(p95 * 1000.0),
        round2(p99 * 1000.0),
        round2(low * 1000.0),
        round2(high * 1000.0),
    )


def latency_fields(window: Hist) -> dict[str, float]:
    """:func:`latency_values` by name (``avg_latency_ms`` and so on)."""
    return dict(zip(FIELDS, latency_values(window), strict=True))
