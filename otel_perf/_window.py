"""The recent-window state: which past cumulative snapshot each series' window starts from.

The latency statistics of a tool (or provider, or model) describe its newest calls: the
difference between its current cumulative histogram and the newest earlier snapshot that is at
least ``window_size`` calls behind — what Prometheus computes with ``rate()`` over a range. No
samples are kept, only a few cumulative histograms per series:

- every snapshot closes a slice, but a snapshot is kept as a possible window start only once it
  is at least ``window_size // 8`` calls past the previous kept one, so a series keeps at most
  about ten of them however often it is polled;
- once a kept snapshot is ``window_size`` calls behind, everything older is dropped.

So a window is the newest slices holding at least ``window_size`` calls, give or take one thinned
snapshot (at most ``window_size // 8`` calls more), or every call while there is no such start; in
that last case min and max are exact.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping

from otel_perf._exphist import EMPTY, Hist, subtract


class _SeriesWindow:
    """One series' window starts (a slotted class: one per series, made at its first snapshot)."""

    __slots__ = ("last_count", "last_window", "starts")

    def __init__(self) -> None:
        self.starts: list[Hist] = []  # ascending by count
        self.last_count = -1
        self.last_window = EMPTY


class WindowTracker:
    """Per-series window starts. Thread-safe; :meth:`advance` is called once per snapshot."""

    def __init__(self, window_size: int) -> None:
        self.window_size = window_size
        self._granularity = max(1, window_size // 8)
        self._series: dict[Hashable, _SeriesWindow] = {}
        self._lock = threading.Lock()

    def advance(self, cumulative: Mapping[Hashable, Hist]) -> dict[Hashable, Hist]:
        """Close a slice for every series and return each one's window histogram."""
        with self._lock:
            return {key: self._advance_one(key, hist) for key, hist in cumulative.items()}

    def __len__(self) -> int:
        return len(self._series)

    def _advance_one(self, key: Hashable, hist: Hist) -> Hist:
        state = self._series.get(key)
        if state is None:
            state = self._series[key] = _SeriesWindow()
        if hist.count == state.last_count:
            return state.last_window  # nothing new: the window cannot have moved
        starts = state.starts
        if starts and hist.count < starts[-1].count:
            starts.clear()  # the series restarted (a new provider): old starts are meaningless

        start_index = -1
        for i in range(len(starts) - 1, -1, -1):
            if hist.count - starts[i].count >= self.window_size:
                start_index = i
                break
        if start_index >= 0:
            del starts[:start_index]
            window = subtract(hist, starts[0])
        else:
            window = hist

        previous = starts[-1].count if starts else 0
        if hist.count - previous >= self._granularity:
            starts.append(hist)
        state.last_count = hist.count
        state.last_window = window
        return window
