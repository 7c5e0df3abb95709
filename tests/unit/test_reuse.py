"""The endpoint's bounded duty cycle: polling as fast as possible cannot monopolise the host."""

from __future__ import annotations

import threading
import time

import pytest

import otel_perf
from otel_perf import _pipeline
from otel_perf._http.reuse import Reuse
from tests.support.helpers import get_json, http_request


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_result_is_reused_for_factor_times_its_cost() -> None:
    clock = FakeClock()
    made: list[int] = []

    def produce() -> int:
        clock.now += 0.010  # a 10 ms result
        made.append(len(made))
        return len(made)

    reuse = Reuse(produce, factor=9.0, max_age_s=1.0, clock=clock)
    assert reuse.get() == 1
    clock.now += 0.089
    assert reuse.get() == 1  # within 90 ms of being made
    clock.now += 0.002
    assert reuse.get() == 2  # past it: made again
    reuse.clear()
    assert reuse.get() == 3


def test_reuse_is_capped_and_failures_are_not_kept() -> None:
    clock = FakeClock()
    calls = 0

    def slow_then_failing() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("collect failed")
        clock.now += 5.0  # a very slow result is still reused for at most max_age_s
        return f"v{calls}"

    reuse = Reuse(slow_then_failing, factor=9.0, max_age_s=1.0, clock=clock)
    assert reuse.get() == "v1"
    clock.now += 1.5
    with pytest.raises(RuntimeError):
        reuse.get()
    assert reuse.get() == "v3"


def test_closed_loop_polling_collects_far_less_often_than_it_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = otel_perf.configure()
    assert metrics.url is not None
    url = metrics.url
    for i in range(50):
        otel_perf.record_tool_call(f"tool-{i}", True, 5.0)
    collections = 0
    real = _pipeline.PullReader.collect_data

    def counting(self: _pipeline.PullReader, timeout_millis: float = 10_000) -> object:
        nonlocal collections
        collections += 1
        time.sleep(0.02)  # a collection of a busy server: 20 ms
        return real(self, timeout_millis)

    monkeypatch.setattr(_pipeline.PullReader, "collect_data", counting)
    answered = 0
    lock = threading.Lock()
    deadline = time.monotonic() + 1.5

    def poller() -> None:
        nonlocal answered
        while time.monotonic() < deadline:
            status, _, _ = http_request(url, path="/metrics")
            assert status == 200
            with lock:
                answered += 1

    threads = [threading.Thread(target=poller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Collecting took at most about a tenth of the wall time, however many answers went out.
    assert collections * 0.02 <= 1.5 * 0.2, (collections, answered)
    # Answers are paced too (each is followed by a rest nine times its cost), but they flow.
    assert answered >= 8
    # The Python API is not limited: it always collects.
    before = collections
    otel_perf.get_all_metrics()
    assert collections == before + 1


def test_new_data_shows_once_the_short_reuse_has_passed() -> None:
    url = otel_perf.configure().url
    assert url is not None
    otel_perf.record_tool_call("t", True, 1.0)
    assert get_json(url)["tool_metrics"]["t"]["total_calls"] == 1
    otel_perf.record_tool_call("t", True, 1.0)
    deadline = time.monotonic() + 5
    while get_json(url)["tool_metrics"]["t"]["total_calls"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
