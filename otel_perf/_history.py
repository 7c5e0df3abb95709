"""Recent history for trends: a bounded ring of per-interval samples (`/metrics/history`).

While the endpoint runs, a background thread takes one sample every ``interval_s`` seconds
(default 5 s) and keeps the newest ``capacity`` of them (default 720: one hour). A sample
describes the interval since the previous one:

- per tool that was called in the interval: ``calls``, ``failed``, ``rate_per_second`` and
  ``p95_latency_ms`` **of the calls made in that interval**;
- ``requests`` and ``request_rate``: every MCP operation in the interval;
- ``active_sessions`` and ``concurrent_requests`` at the moment of the sample.

How a sample is taken, and why this way: the sampler runs one raw collection on the shared pull
reader (:meth:`otel_perf._pipeline.Pipeline.collect`) and differences each tool's cumulative
count and exponential histogram against the previous sample's. It never goes through the JSON
snapshot, so it does **not** close a latency-window slice: what ``/metrics`` reports (windows
that move with each ``/metrics`` request or ``get_all_metrics()`` call) is the same whether or
not the sampler runs, and nobody polling is needed for the trend to exist. The price is one
collection every ``interval_s`` on the sampler thread, never on a request path: measured about
1 ms for 10 busy tools, 10 ms for 100 and 40 ms for 500 on a 2-core machine (0.02-0.8 % of a
core at the default spacing).

Memory is bounded however long the server runs: the ring is a ``deque(maxlen=capacity)``, a
sample stores only the tools called in its interval (about 32 bytes each, in arrays), and the
previous cumulative state holds one histogram per tool, which the tool-name cap bounds. The
worst case, 720 samples with all 500 capped tools busy in every interval, measured 11.4 MB; ten
busy tools take about 230 KB. The whole ring as JSON is larger (2.7 MB and about 0.2 s to build
for 50 busy tools), so readers fetch it once and then only newer samples (``?since=``).

``reset_metrics()`` starts the history over with the new counts.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from otel_perf._exphist import EMPTY, Hist, merge, quantiles, subtract
from otel_perf._json import to_json_bytes
from otel_perf._log import logger, warn_once

if TYPE_CHECKING:  # the endpoint starts the history before a deferred SDK has started
    from otel_perf._pipeline import Pipeline

DEFAULT_CAPACITY: Final = 720
"""Samples kept: with the default spacing, one hour."""

DEFAULT_INTERVAL_S: Final = 5.0
"""Seconds between two samples."""


class Sample(NamedTuple):
    """One interval of history. Per-tool values are parallel arrays, for compactness."""

    timestamp: float  # unix seconds at the end of the interval
    seconds: float  # length of the interval
    requests: int
    active_sessions: int
    concurrent_requests: int
    tools: tuple[str, ...]
    calls: array[int]
    failed: array[int]
    p95_ms: array[float]  # NaN where the tool's durations had no exponential buckets

    def to_json(self) -> dict[str, Any]:
        seconds = self.seconds
        tools: dict[str, Any] = {}
        for i, name in enumerate(self.tools):
            p95 = self.p95_ms[i]
            tools[name] = {
                "calls": self.calls[i],
                "failed": self.failed[i],
                "rate_per_second": _rate(self.calls[i], seconds),
                "p95_latency_ms": None if math.isnan(p95) else p95,
            }
        return {
            "timestamp": self.timestamp,
            "interval_seconds": round(seconds, 3),
            "requests": self.requests,
            "request_rate": _rate(self.requests, seconds),
            "active_sessions": self.active_sessions,
            "concurrent_requests": self.concurrent_requests,
            "tools": tools,
        }


def _rate(count: int, seconds: float) -> float | None:
    # A zero-length interval (clock stepped back, or samples taken back to back) has no rate.
    return round(count / seconds, 3) if seconds > 0 else None


class _ToolState(NamedTuple):
    total: int
    failed: int
    hist: Hist


class History:
    """The ring of samples and the thread that fills it.

    ``source`` returns the pipeline to sample (``None`` when disabled, and while a deferred SDK
    has not started: nothing is sampled then); when it returns a different pipeline than last
    time (after ``reset_metrics()``), the history starts over.

    >>> history = History(lambda: None, capacity=3, interval_s=5.0)
    >>> history.sample() is None, history.document()["samples"]
    (True, [])
    """

    def __init__(
        self,
        source: Callable[[], Pipeline | None],
        *,
        capacity: int = DEFAULT_CAPACITY,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if not interval_s > 0:
            raise ValueError("interval_s must be positive")
        self.capacity = capacity
        self.interval_s = interval_s
        self._source = source
        self._samples: deque[Sample] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._pipeline: Pipeline | None = None
        self._previous: dict[str, _ToolState] = {}
        self._previous_requests = 0
        self._previous_time = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- sampling --------------------------------------------------------------------------------

    def sample(self, now: float | None = None) -> Sample | None:
        """Take one sample now and add it to the ring; ``None`` when there is nothing to sample.

        ``now`` is the sample's time in ``time.time()`` seconds (default: the current time);
        tests pass it to lay samples out as if they were taken ``interval_s`` apart.
        Never raises: a failed collection is logged once and skipped.
        """
        pipeline = self._source()
        if pipeline is None:
            return None
        try:
            data = pipeline.view_collect()  # the whole server's, where merged
        except Exception as exc:
            warn_once(
                "history:collect",
                "otel-perf: a history sample failed (%s); trying again next interval",
                type(exc).__name__,
            )
            return None
        if data is None:
            return None
        # The document code loads with the first sample (an interval after start), not at
        # start-up: a stdio server's first handshake does not wait for it.
        from otel_perf._extract import extract  # noqa: PLC0415

        extracted = extract(data)
        stamp = time.time() if now is None else now
        with self._lock:
            if pipeline is not self._pipeline:
                # A new pipeline (reset_metrics): its counts start from zero, so start over.
                self._pipeline = pipeline
                self._samples.clear()
                self._previous = {}
                self._previous_requests = 0
                self._previous_time = pipeline.start_time
            seconds = max(stamp - self._previous_time, 0.0)
            names: list[str] = []
            calls = array("q")
            failed = array("q")
            p95_ms = array("d")
            current: dict[str, _ToolState] = {}
            for name, totals in extracted.tools.items():
                hist = merge(totals.hist_parts)
                state = _ToolState(totals.total, totals.failed, hist)
                current[name] = state
                before = self._previous.get(name)
                if before is not None and state.total < before.total:
                    before = None  # counts went down: not the same series any more
                new_calls = state.total - (before.total if before else 0)
                if new_calls <= 0:
                    continue
                names.append(name)
                calls.append(new_calls)
                failed.append(max(state.failed - (before.failed if before else 0), 0))
                interval = subtract(hist, before.hist if before else EMPTY)
                p95 = quantiles(interval, (0.95,))[0] if interval.count else math.nan
                p95_ms.append(round(p95 * 1000.0, 2) if not math.isnan(p95) else math.nan)
            requests = max(extracted.total_requests - self._previous_requests, 0)
            sample = Sample(
                timestamp=round(stamp, 3),
                seconds=seconds,
                requests=requests,
                active_sessions=extracted.active_sessions,
                concurrent_requests=extracted.concurrent_requests,
                tools=tuple(names),
                calls=calls,
                failed=failed,
                p95_ms=p95_ms,
            )
            self._samples.append(sample)
            self._previous = current
            self._previous_requests = extracted.total_requests
            self._previous_time = stamp
        return sample

    # --- reading ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._samples)

    def samples(self) -> list[Sample]:
        """The samples in the ring, oldest first."""
        with self._lock:
            return list(self._samples)

    def document(self, since: float | None = None) -> dict[str, Any]:
        """The ``/metrics/history`` document; ``since`` keeps only samples newer than it."""
        samples = self.samples()
        if since is not None:
            samples = [s for s in samples if s.timestamp > since]
        return {
            "enabled": self._source() is not None,
            "interval_seconds": self.interval_s,
            "capacity": self.capacity,
            "samples": [s.to_json() for s in samples],
        }

    def body(self, since: float | None = None) -> bytes:
        return to_json_bytes(self.document(since))

    # --- the sampler thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start sampling every ``interval_s`` on a daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        # Daemon: a host that exits without shutdown() must not hang on the sampler.
        thread = threading.Thread(target=self._run, name="otel-perf-history", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. configured during interpreter shutdown
            logger.warning("otel-perf: no history sampler (%s); trends stay empty", exc)
            return
        self._thread = thread

    def stop(self, timeout_s: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=timeout_s)

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval_s
        while not self._stop.wait(max(next_at - time.monotonic(), 0.0)):
            try:
                self.sample()
            except Exception:  # the sampler must outlive any surprise
                logger.debug("otel-perf: history sample failed", exc_info=True)
            # Fixed spacing from the start, skipping beats we missed instead of bunching up.
            next_at += self.interval_s
            now = time.monotonic()
            if next_at <= now:
                next_at = now + self.interval_s
