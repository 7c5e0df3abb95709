"""The recent-window state (otel_perf._window): which calls a latency window covers.

Histograms come from a real SDK exponential histogram (cumulative), as the pipeline sees them.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from otel_perf._exphist import Hist, from_point, quantiles
from otel_perf._window import WindowTracker


class _Series:
    """One SDK exponential histogram; :meth:`cumulative` is its current lifetime histogram."""

    def __init__(self) -> None:
        self._reader = InMemoryMetricReader()
        provider = MeterProvider(
            metric_readers=[self._reader],
            views=[View(instrument_name="d", aggregation=ExponentialBucketHistogramAggregation())],
        )
        self._hist = provider.get_meter("t").create_histogram("d", unit="s")

    def record(self, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self._hist.record(seconds)

    def cumulative(self) -> Hist:
        data = self._reader.get_metrics_data()
        assert data is not None
        point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
        return from_point(point)  # type: ignore[arg-type]


def test_a_window_is_every_call_until_window_size_calls_are_behind() -> None:
    series, tracker = _Series(), WindowTracker(window_size=100)
    series.record(0.010, 50)
    window = tracker.advance({"t": series.cumulative()})["t"]
    assert window.count == 50
    assert window.min == 0.010  # exact while the window is every call


def test_the_window_moves_to_the_newest_calls() -> None:
    series, tracker = _Series(), WindowTracker(window_size=100)
    series.record(0.010, 1000)
    tracker.advance({"t": series.cumulative()})
    series.record(0.100, 200)
    window = tracker.advance({"t": series.cumulative()})["t"]
    # The newest start at least 100 calls behind is the snapshot after the 10 ms calls.
    assert window.count == 200
    (p50,) = quantiles(window, [0.5])
    assert abs(p50 - 0.100) / 0.100 < 0.05


def test_an_unchanged_series_returns_the_same_window_object() -> None:
    series, tracker = _Series(), WindowTracker(window_size=10)
    series.record(0.010, 30)
    first = tracker.advance({"t": series.cumulative()})["t"]
    again = tracker.advance({"t": series.cumulative()})["t"]
    assert again is first


def test_kept_starts_are_thinned_however_often_it_is_polled() -> None:
    series, tracker = _Series(), WindowTracker(window_size=800)
    for _ in range(400):  # one call per snapshot: 400 snapshots
        series.record(0.010)
        tracker.advance({"t": series.cumulative()})
    state = tracker._series["t"]
    assert len(state.starts) <= 800 // (800 // 8) + 1


def test_a_restarted_series_forgets_its_old_starts() -> None:
    tracker = WindowTracker(window_size=10)
    old = _Series()
    old.record(0.010, 100)
    tracker.advance({"t": old.cumulative()})
    fresh = _Series()  # a new provider: counts start again from zero
    fresh.record(0.500, 5)
    window = tracker.advance({"t": fresh.cumulative()})["t"]
    assert window.count == 5
    assert window.min == 0.5


def test_series_are_independent() -> None:
    a, b, tracker = _Series(), _Series(), WindowTracker(window_size=10)
    a.record(0.010, 20)
    b.record(1.0, 3)
    windows = tracker.advance({"a": a.cumulative(), "b": b.cumulative()})
    assert windows["a"].count == 20
    assert windows["b"].count == 3
    assert len(tracker) == 2
