"""SingleFlight: concurrent callers share one run, and only a lone caller may mutate the result."""

from __future__ import annotations

import threading
import time

import pytest

from otel_perf._singleflight import SingleFlight


def test_a_lone_caller_runs_the_function_and_holds_the_result_alone() -> None:
    calls = []
    flight = SingleFlight(lambda: calls.append(1) or {"n": len(calls)})
    result, exclusive = flight.run()
    assert result == {"n": 1}
    assert exclusive
    second, exclusive_again = flight.run()  # after a run finished, a new one starts
    assert second == {"n": 2}
    assert exclusive_again


def test_callers_arriving_during_a_run_share_it_and_none_holds_it_alone() -> None:
    started, release = threading.Event(), threading.Event()
    runs = []

    def slow() -> dict[str, int]:
        runs.append(1)
        started.set()
        assert release.wait(10)
        return {"run": len(runs)}

    flight = SingleFlight(slow)
    results: list[tuple[dict[str, int], bool]] = []
    lock = threading.Lock()

    def call() -> None:
        got = flight.run()
        with lock:
            results.append(got)

    leader = threading.Thread(target=call)
    leader.start()
    assert started.wait(10)
    waiters = [threading.Thread(target=call) for _ in range(5)]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 10
    while flight._joined < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for thread in [leader, *waiters]:
        thread.join(10)
    assert len(runs) == 1
    assert len(results) == 6
    assert all(result is results[0][0] for result, _ in results)
    # Six callers hold one object: nobody may mutate it, the leader included.
    assert not any(exclusive for _, exclusive in results)


def test_an_exception_is_shared_and_the_next_call_runs_again() -> None:
    attempts = []

    def failing() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return 7

    flight = SingleFlight(failing)
    with pytest.raises(RuntimeError, match="boom"):
        flight.run()
    assert flight.run() == (7, True)
