"""Latency statistics: the origin's broken case, realistic distributions, and the window."""

from __future__ import annotations

import numpy as np
import pytest

import otel_perf
from otel_perf import _exphist
from otel_perf._exphist import Hist
from otel_perf._semconv import EXPONENTIAL_MAX_SIZE


def _record_all(name: str, latencies_ms: np.ndarray | list[float]) -> None:
    for value in latencies_ms:
        otel_perf.record_tool_call(name, True, float(value))


def _within(actual: float, expected: float, rel: float = 0.01) -> bool:
    return abs(actual - expected) <= rel * abs(expected)


def test_origin_broken_case_gives_distinct_true_percentiles() -> None:
    # The origin's bug reported the median for all three; these are NumPy's exact values.
    _record_all("t", [float(i) for i in range(0, 1000, 10)])
    tool = otel_perf.get_all_metrics()["tool_metrics"]["t"]
    assert _within(tool["p50_latency_ms"], 495.0)
    assert _within(tool["p95_latency_ms"], 940.5)
    assert _within(tool["p99_latency_ms"], 980.1)
    assert tool["min_latency_ms"] == 0.0
    assert tool["max_latency_ms"] == 990.0
    assert tool["avg_latency_ms"] == 495.0


def _lognormal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(mean=np.log(50.0), sigma=1.0, size=n)


def _bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    fast = rng.normal(20.0, 2.0, size=int(n * 0.9))
    slow = rng.normal(800.0, 80.0, size=n - fast.size)
    values = np.concatenate([fast, slow]).clip(0.5)
    rng.shuffle(values)
    return values


@pytest.mark.parametrize("distribution", [_lognormal, _bimodal], ids=["lognormal", "bimodal"])
def test_percentiles_within_one_percent_on_100k_samples(distribution: object) -> None:
    rng = np.random.default_rng(20261127)
    values = distribution(rng, 100_000)  # type: ignore[operator]
    otel_perf.configure(window_size=100_000)
    _record_all("d", values)
    tool = otel_perf.get_all_metrics()["tool_metrics"]["d"]
    exact = np.percentile(values, [50, 95, 99])
    for key, expected in zip(("p50", "p95", "p99"), exact, strict=True):
        assert _within(tool[f"{key}_latency_ms"], float(expected)), (key, tool, exact)
    assert tool["total_calls"] == 100_000
    assert tool["min_latency_ms"] == round(float(values.min()), 2)
    assert tool["max_latency_ms"] == round(float(values.max()), 2)


def test_window_follows_recent_calls_while_counts_stay_lifetime() -> None:
    otel_perf.configure(window_size=1000)
    rng = np.random.default_rng(1)
    _record_all("w", rng.normal(10.0, 0.5, size=10_000))
    first = otel_perf.get_all_metrics()["tool_metrics"]["w"]  # closes a slice
    assert _within(first["p50_latency_ms"], 10.0, 0.05)
    _record_all("w", rng.normal(100.0, 5.0, size=1_000))
    tool = otel_perf.get_all_metrics()["tool_metrics"]["w"]
    assert tool["total_calls"] == 11_000
    assert _within(tool["p50_latency_ms"], 100.0, 0.05)
    assert tool["min_latency_ms"] > 50.0  # the 10 ms calls are out of the window
    assert _within(tool["avg_latency_ms"], 100.0, 0.05)


def test_window_holds_everything_while_fewer_calls_than_its_size() -> None:
    otel_perf.configure(window_size=1000)
    _record_all("w", [5.0] * 100)
    otel_perf.get_all_metrics()
    _record_all("w", [500.0] * 100)
    tool = otel_perf.get_all_metrics()["tool_metrics"]["w"]
    assert tool["min_latency_ms"] == 5.0
    assert tool["max_latency_ms"] == 500.0
    assert _within(tool["avg_latency_ms"], 252.5)


@pytest.mark.parametrize("seed", range(12))
def test_order_invariant_always_holds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    otel_perf.configure(window_size=int(rng.integers(1, 400)))
    for _ in range(4):
        size = int(rng.integers(1, 300))
        shape = seed % 4
        if shape == 0:
            values = rng.exponential(30.0, size)
        elif shape == 1:
            values = np.full(size, float(rng.uniform(0, 100)))
        elif shape == 2:
            values = rng.uniform(0, 2000, size)
        else:
            values = np.concatenate([rng.normal(5, 1, size), rng.normal(900, 50, 3)]).clip(0)
        _record_all("x", values)
        tool = otel_perf.get_all_metrics()["tool_metrics"]["x"]
        chain = [tool[f"{k}_latency_ms"] for k in ("min", "p50", "p95", "p99", "max")]
        assert chain == sorted(chain), chain
        assert tool["min_latency_ms"] <= tool["avg_latency_ms"] <= tool["max_latency_ms"]


def test_single_value_and_empty() -> None:
    assert _exphist.quantiles(_exphist.EMPTY, [0.5]) == [0.0]
    otel_perf.record_tool_call("one", True, 42.0)
    tool = otel_perf.get_all_metrics()["tool_metrics"]["one"]
    for key in ("avg", "p50", "p95", "p99", "min", "max"):
        assert tool[f"{key}_latency_ms"] == 42.0


def _hist(scale: int, offset: int, counts: tuple[int, ...], zero: int = 0) -> Hist:
    total = zero + sum(counts)
    low = 0.0 if zero else _exphist.lower_bound(offset, scale)
    high = _exphist.lower_bound(offset + len(counts), scale)
    return Hist(scale, zero, offset, counts, total, 0.0, low, high)


def test_merge_brings_histograms_to_the_lower_scale() -> None:
    fine = _hist(3, 8, (1, 1, 1, 1))  # indices 8..11 at scale 3 -> 4..5 at scale 2
    coarse = _hist(2, 4, (2,))
    merged = _exphist.merge([fine, coarse])
    assert merged.scale == 2
    assert merged.offset == 4
    assert merged.counts == (4, 2)
    assert merged.count == 6


def test_subtract_leaves_only_new_values_with_bucket_precise_bounds() -> None:
    older = _hist(3, 0, (5, 5))
    newer = _hist(3, 0, (5, 5, 0, 0, 7))
    window = _exphist.subtract(newer, older)
    assert window.count == 7
    assert window.offset == 4
    assert window.counts == (7,)
    assert not window.exact_bounds
    assert window.min == pytest.approx(_exphist.lower_bound(4, 3))
    assert window.max == pytest.approx(_exphist.lower_bound(5, 3))


def test_merging_far_apart_single_values_lowers_the_scale_to_fit() -> None:
    # One 10 ms success and one 1 us failure of the same tool: each SDK series sits at scale 20.
    ok = _hist(20, int(np.log2(0.010) * 2**20), (1,))
    failed = _hist(20, int(np.log2(0.000001) * 2**20), (1,))
    merged = _exphist.merge([ok, failed])
    assert merged.count == 2
    assert len(merged.counts) <= EXPONENTIAL_MAX_SIZE
    assert sum(merged.counts) == 2
    assert merged.scale < 20


def test_a_tool_with_a_fast_failure_and_a_slow_success_reports_both() -> None:
    otel_perf.record_tool_call("mixed", True, 10.0)
    otel_perf.record_tool_call("mixed", False, 0.001, "ValueError")
    tool = otel_perf.get_all_metrics()["tool_metrics"]["mixed"]
    assert tool["total_calls"] == 2
    assert tool["min_latency_ms"] == 0.0  # 1 us rounds to 0.00 ms
    assert tool["max_latency_ms"] == 10.0
    assert tool["p99_latency_ms"] <= 10.0


def _window_errors(buckets: int, seed: int) -> list[float]:
    """p50/p95/p99 error (%) of a 1,000-call window that follows 5,000 earlier calls."""
    otel_perf.configure(window_size=1000, histogram_buckets=buckets)
    rng = np.random.default_rng(seed)
    _record_all("t", rng.lognormal(np.log(50.0), 1.0, 5000))
    otel_perf.get_all_metrics()
    window = rng.lognormal(np.log(50.0), 1.0, 1000)
    _record_all("t", window)
    tool = otel_perf.get_all_metrics()["tool_metrics"]["t"]
    exact = np.percentile(window, [50, 95, 99])
    return [
        abs(tool[f"p{q}_latency_ms"] - e) / e * 100
        for q, e in zip((50, 95, 99), exact, strict=True)
    ]


def test_more_buckets_give_finer_percentiles_of_small_windows() -> None:
    # METRICS_HISTOGRAM_BUCKETS trades memory for accuracy where few calls share a bucket.
    coarse = [max(_window_errors(160, seed)) for seed in range(4)]
    fine = [max(_window_errors(640, seed)) for seed in range(4)]
    assert max(fine) <= 1.0, fine
    assert max(fine) < max(coarse), (fine, coarse)
