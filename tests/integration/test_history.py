"""The trend ring behind ``/metrics/history``: per-interval samples, bounded, window-neutral."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest

import otel_perf
from otel_perf._history import DEFAULT_CAPACITY, DEFAULT_INTERVAL_S, History
from otel_perf._http.routes import routes_for
from otel_perf._http.server import MetricsServer
from otel_perf._metrics import Metrics
from otel_perf._settings import Settings


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = httpx.get(url, headers=headers, timeout=10)
    return response.status_code, response.json()


def test_defaults_are_one_hour_at_five_seconds() -> None:
    metrics = otel_perf.configure(json_port=0)
    assert metrics.history.capacity == DEFAULT_CAPACITY == 720
    assert metrics.history.interval_s == DEFAULT_INTERVAL_S == 5.0
    assert DEFAULT_CAPACITY * DEFAULT_INTERVAL_S == 3600


def test_a_sample_describes_only_its_own_interval() -> None:
    metrics = otel_perf.configure(json_port=0)
    first = [10.0 + i for i in range(50)]
    for i, latency in enumerate(first):
        failed = i % 10 == 0
        error = "TimeoutError" if failed else None
        otel_perf.record_tool_call("search", not failed, latency, error)
    otel_perf.record_tool_call("quiet", True, 5.0)
    t0 = time.time()
    one = metrics.history.sample(now=t0)
    second = [100.0 + i for i in range(40)]
    for latency in second:
        otel_perf.record_tool_call("search", True, latency)
    two = metrics.history.sample(now=t0 + 5.0)
    assert one is not None
    assert two is not None

    doc = metrics.history.document()
    assert [s["timestamp"] for s in doc["samples"]] == [round(t0, 3), round(t0 + 5.0, 3)]
    a, b = (s["tools"] for s in doc["samples"])
    assert a["search"]["calls"] == 50
    assert a["search"]["failed"] == 5
    assert a["quiet"]["calls"] == 1
    # The second interval holds only the 40 new calls: "quiet" had none, so it is absent.
    assert set(b) == {"search"}
    assert b["search"] == {
        "calls": 40,
        "failed": 0,
        "rate_per_second": 8.0,
        "p95_latency_ms": b["search"]["p95_latency_ms"],
    }
    assert doc["samples"][1]["requests"] == 40
    assert doc["samples"][1]["request_rate"] == 8.0
    # p95 of each interval's own calls, within the histogram's documented 1 % error.
    exact_one = float(np.percentile(first, 95))
    exact_two = float(np.percentile(second, 95))
    assert a["search"]["p95_latency_ms"] == pytest.approx(exact_one, rel=0.01)
    assert b["search"]["p95_latency_ms"] == pytest.approx(exact_two, rel=0.01)


def test_sampling_does_not_close_a_latency_window_slice() -> None:
    # Window of 100 calls. 100 fast calls, then 100 slow ones. If anything closes a slice
    # between the two batches, the window later starts there and holds only the slow calls.
    metrics = otel_perf.configure(json_port=0, window_size=100)
    for _ in range(100):
        otel_perf.record_tool_call("t", True, 10.0)
    for _ in range(3):
        assert metrics.history.sample() is not None
    for _ in range(100):
        otel_perf.record_tool_call("t", True, 1000.0)
    tool = otel_perf.get_all_metrics()["tool_metrics"]["t"]
    assert tool["min_latency_ms"] == 10.0  # every call is still in the window

    # The same sequence with a JSON snapshot in between does move the window: the contrast
    # shows that the check above can fail.
    otel_perf.shutdown()
    otel_perf.configure(json_port=0, window_size=100)
    for _ in range(100):
        otel_perf.record_tool_call("t", True, 10.0)
    otel_perf.get_all_metrics()
    for _ in range(100):
        otel_perf.record_tool_call("t", True, 1000.0)
    moved = otel_perf.get_all_metrics()["tool_metrics"]["t"]
    assert moved["min_latency_ms"] > 900.0


def test_ring_length_is_capped_however_many_samples() -> None:
    metrics = Metrics(Settings(json_enabled=False), history_size=25)
    recorder = metrics.recorder
    assert recorder is not None
    t0 = 1_000_000.0
    for i in range(1500):
        # A changing set of tools, so per-sample state is exercised too.
        recorder.record_tool_call(f"tool-{i % 40}", True, 1.0 + i % 7, None)
        metrics.history.sample(now=t0 + i)
    try:
        samples = metrics.history.samples()
        assert len(metrics.history) == len(samples) == 25
        # The newest 25 are kept, oldest first, each holding only its interval's tool.
        assert [s.timestamp for s in samples] == [t0 + i for i in range(1475, 1500)]
        expected = [(f"tool-{i % 40}",) for i in range(1475, 1500)]
        assert [s.tools for s in samples] == expected
        assert len(metrics.history.document()["samples"]) == 25
    finally:
        metrics.shutdown()


def test_zero_length_interval_has_no_rate() -> None:
    metrics = otel_perf.configure(json_port=0)
    otel_perf.record_tool_call("a", True, 1.0)
    now = time.time()
    metrics.history.sample(now=now)
    otel_perf.record_tool_call("a", True, 1.0)
    metrics.history.sample(now=now)  # same instant: the interval has no length
    last = metrics.history.document()["samples"][-1]
    assert last["interval_seconds"] == 0.0
    assert last["request_rate"] is None
    assert last["tools"]["a"]["rate_per_second"] is None
    assert last["tools"]["a"]["calls"] == 1


def test_reset_metrics_starts_the_history_over() -> None:
    metrics = otel_perf.configure(json_port=0)
    otel_perf.record_tool_call("before", True, 1.0)
    metrics.history.sample()
    metrics.history.sample()
    assert len(metrics.history) == 2
    otel_perf.get_collector().reset_metrics()
    otel_perf.record_tool_call("after", True, 2.0)
    sample = metrics.history.sample()
    assert sample is not None
    assert len(metrics.history) == 1
    assert sample.tools == ("after",)
    assert list(sample.calls) == [1]


def test_background_sampler_fills_the_ring_and_stops_with_shutdown() -> None:
    metrics = Metrics(Settings(json_port=0), history_size=4, history_interval_s=0.05)
    try:
        recorder = metrics.recorder
        assert recorder is not None
        recorder.record_tool_call("bg", True, 3.0, None)
        deadline = time.monotonic() + 20.0
        while len(metrics.history) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(metrics.history) == 4
        calls = sum(s.calls[s.tools.index("bg")] for s in metrics.history.samples() if s.tools)
        assert calls <= 1  # one call, counted in at most one interval
    finally:
        metrics.shutdown()
    count = len(metrics.history.samples())
    newest = metrics.history.samples()[-1].timestamp
    time.sleep(0.3)
    assert metrics.history.samples()[-1].timestamp == newest
    assert len(metrics.history.samples()) == count


def test_history_route_serves_the_ring_with_since_filter() -> None:
    metrics = otel_perf.configure(json_port=0)
    t0 = time.time() - 30
    for k in range(4):
        otel_perf.record_tool_call("s", True, 5.0)
        metrics.history.sample(now=t0 + 5 * k)
    assert metrics.url is not None
    status, doc = _get(metrics.url + "/metrics/history")
    assert status == 200
    assert doc["enabled"] is True
    assert doc["capacity"] == 720
    assert doc["interval_seconds"] == 5.0
    assert len(doc["samples"]) == 4
    since = doc["samples"][1]["timestamp"]
    status, newer = _get(f"{metrics.url}/metrics/history?since={since}")
    assert status == 200
    assert [s["timestamp"] for s in newer["samples"]] == [
        s["timestamp"] for s in doc["samples"][2:]
    ]
    status, garbage = _get(metrics.url + "/metrics/history?since=yesterday")
    assert status == 200
    assert len(garbage["samples"]) == 4  # an unreadable filter is ignored, not an error


def test_history_route_needs_the_token_when_one_is_set() -> None:
    metrics = otel_perf.configure(json_port=0, auth_token="s3cret")
    assert metrics.url is not None
    status, body = _get(metrics.url + "/metrics/history")
    assert status == 401
    assert body["error"] == "unauthorized"
    status, body = _get(metrics.url + "/metrics/history", token="s3cret")
    assert status == 200
    assert body["samples"] == []


def test_disabled_history_says_so() -> None:
    metrics = Metrics(Settings(enabled=False))
    server = MetricsServer("127.0.0.1", 0, routes_for(metrics))
    server.start()
    try:
        status, doc = _get(server.url + "/metrics/history")
    finally:
        server.stop()
        metrics.shutdown()
    assert status == 200
    assert doc == {"enabled": False, "interval_seconds": 5.0, "capacity": 720, "samples": []}


def test_bad_history_arguments_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="capacity"):
        History(lambda: None, capacity=0)
    with pytest.raises(ValueError, match="interval"):
        History(lambda: None, interval_s=0.0)
