"""The per-process breakdown of the endpoint's numbers (``/metrics?per_process=1``)."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData

from otel_perf._extract import extract


def process_row(
    pid: int | None,
    data: MetricsData | None,
    *,
    live: bool,
    serving: bool = False,
    updated: float | None = None,
) -> dict[str, Any]:
    """One process's own share: requests, tool calls, sessions and requests in flight.

    ``pid`` is ``None`` for the row of ended processes (their counters, merged).
    """
    extracted = extract(data)
    now = time.time()
    return {
        "pid": pid,
        "live": live,
        "serving": serving,
        "seconds_since_update": round(max(now - (updated or now), 0.0), 2),
        "total_requests": extracted.total_requests,
        "tool_calls": sum(totals.total for totals in extracted.tools.values()),
        "active_sessions": extracted.active_sessions if live else 0,
        "concurrent_requests": extracted.concurrent_requests if live else 0,
    }
