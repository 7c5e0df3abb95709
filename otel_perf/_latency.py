"""Latency fields of a window: avg/p50/p95/p99/min/max in milliseconds, as documents show them."""

from __future__ import annotations

from otel_perf._exphist import Hist, quantiles

_QUANTILES = (0.5, 0.95, 0.99)


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
    # Milliseconds to 2 decimals, written out rather than through a helper: a busy snapshot
    # makes these six numbers for every changed tool.
    return {
        "avg_latency_ms": round(avg * 1000.0, 2),
        "p50_latency_ms": round(p50 * 1000.0, 2),
        "p95_latency_ms": round(p95 * 1000.0, 2),
        "p99_latency_ms": round(p99 * 1000.0, 2),
        "min_latency_ms": round(low * 1000.0, 2),
        "max_latency_ms": round(high * 1000.0, 2),
    }
