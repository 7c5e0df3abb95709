"""Fork after ``configure()``, as a pre-fork server does.

Documented behaviour (docs/reliability.md, README "Many processes"): a forked child starts
fresh. Its first record call configures a new pipeline (with the settings the parent's
``configure()`` was given), so it never reports the parent's counts; the parent's endpoint and
threads stay with the parent, and the child closes its copy of the listening socket. The child
belongs to the parent's server group: it hands its numbers over to the parent's endpoint and
serves none of its own. With ``OTEL_PERF_GROUP=off`` it is a process of its own: it serves on
its own port when ``METRICS_JSON_PORT=0``; on a fixed port (taken by the parent) it warns once
and records without an endpoint. Locks another thread held at the moment of the fork are
replaced in the child, so nothing there can deadlock on them.

Every child reports through a pipe and ends with ``os._exit``; every wait has a timeout, and a
child that does not answer in time is killed and fails the test.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import otel_perf
import otel_perf.caches
from otel_perf import _configure, _log, _state
from otel_perf._compat import PerformanceMetricsCollector
from tests.support.helpers import get_json, http_request

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns about fork() in a process with threads; that risk is the subject here.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

CHILD_TIMEOUT_S = 30.0


def _read_all(fd: int, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no answer within {timeout_s} s: deadlocked?")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk


def _reap(pid: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise TimeoutError(f"child {pid} did not exit: deadlocked?")


def run_in_child(work: Callable[[], Any], timeout_s: float = CHILD_TIMEOUT_S) -> Any:
    """Fork; run ``work`` in the child and return its JSON-able result to the parent."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read_fd)
        try:
            payload = {"result": work()}
        except BaseException as exc:  # reported to the parent, which fails the test
            payload = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            os.write(write_fd, json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        raw = _read_all(read_fd, timeout_s)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_fd)
    assert _reap(pid) == 0
    answer = json.loads(raw)
    assert "error" not in answer, answer["error"]
    return answer["result"]


def totals(document: dict[str, Any]) -> dict[str, int]:
    return {name: tool["total_calls"] for name, tool in document["tool_metrics"].items()}


def test_a_forked_child_hands_its_numbers_to_the_parents_endpoint() -> None:
    parent = otel_perf.configure()
    for _ in range(5):
        otel_perf.record_tool_call("parent-tool", True, 1.0)
    assert parent.url is not None

    def child() -> dict[str, Any]:
        for _ in range(3):
            otel_perf.record_tool_call("child-tool", True, 1.0)
        mine = _configure.get_runtime()
        assert mine is not parent
        own = totals(otel_perf.get_all_metrics())
        url = mine.url
        otel_perf.shutdown()  # the final hand-over
        return {"document": own, "url": url}

    answers = [run_in_child(child) for _ in range(4)]  # four workers, one after another
    for answer in answers:
        assert answer["document"] == {"child-tool": 3}  # none of the parent's five
        assert answer["url"] is None  # the parent serves for the whole group
    # The parent's endpoint shows every process's calls, the ended children's included.
    assert totals(get_json(parent.url)) == {"parent-tool": 5, "child-tool": 12}
    assert _configure.get_runtime() is parent


def test_with_sharing_off_a_forked_child_serves_on_its_own_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_PERF_GROUP", "off")
    parent = otel_perf.configure()
    for _ in range(5):
        otel_perf.record_tool_call("parent-tool", True, 1.0)
    assert parent.url is not None

    def child() -> dict[str, Any]:
        for _ in range(3):
            otel_perf.record_tool_call("child-tool", True, 1.0)
        mine = _configure.get_runtime()
        assert mine is not parent
        assert mine.url is not None
        return {
            "document": totals(otel_perf.get_all_metrics()),
            "served": totals(get_json(mine.url)),
            "url": mine.url,
        }

    answers = [run_in_child(child) for _ in range(4)]  # four workers, one after another
    for answer in answers:
        assert answer["document"] == {"child-tool": 3}  # none of the parent's five
        assert answer["served"] == {"child-tool": 3}
        assert answer["url"] != parent.url
    # The parent is untouched: its counts, its endpoint, its threads.
    assert totals(otel_perf.get_all_metrics()) == {"parent-tool": 5}
    assert totals(get_json(parent.url)) == {"parent-tool": 5}
    assert _configure.get_runtime() is parent


def test_with_sharing_off_on_the_parents_port_the_child_warns_and_records_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_PERF_GROUP", "off")
    parent = otel_perf.configure()
    otel_perf.record_tool_call("parent-tool", True, 1.0)
    port = parent.port

    def child() -> dict[str, Any]:
        handler = _Collect()
        _log.logger.addHandler(handler)
        try:
            mine = otel_perf.configure(json_port=port)
        finally:
            _log.logger.removeHandler(handler)
        otel_perf.record_tool_call("child-tool", False, 2.0, "E")
        return {
            "url": mine.url,
            "warnings": [m for m in handler.messages if "cannot serve metrics" in m],
            "document": totals(otel_perf.get_all_metrics()),
        }

    answer = run_in_child(child)
    assert answer["url"] is None
    assert len(answer["warnings"]) == 1
    assert answer["document"] == {"child-tool": 1}
    assert http_request(parent.url or "", path="/health")[0] == 200


class _Collect(logging.Handler):
    """Keeps the messages logged (works in a child, where pytest's capture is not set up)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_child_lets_go_of_the_parents_listening_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the parent stops its endpoint, the port refuses connections even while a child
    that inherited the listening socket is still alive (sharing off: else the child would
    take the port over)."""
    monkeypatch.setenv("OTEL_PERF_GROUP", "off")
    parent = otel_perf.configure()
    port = parent.port
    assert port is not None
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(go_w)
            otel_perf.record_tool_call("child", True, 1.0)  # the child's own, fresh pipeline
            os.write(ready_w, b"1")
            select.select([go_r], [], [], CHILD_TIMEOUT_S)  # stay alive until told
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        assert select.select([ready_r], [], [], CHILD_TIMEOUT_S)[0], "the child did not start"
        assert os.read(ready_r, 1) == b"1"
        otel_perf.shutdown()
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=5),
        ):
            pass
    finally:
        os.close(go_w)
        os.close(ready_r)
        assert _reap(pid) == 0


def _hold(locks: list[Any], release: threading.Event, held: threading.Event) -> None:
    for lock in locks:
        lock.acquire()
    held.set()
    release.wait(CHILD_TIMEOUT_S)
    for lock in reversed(locks):
        lock.release()


@pytest.fixture
def locks_held_by_another_thread() -> Iterator[None]:
    """otel-perf's process-wide locks, held by another thread while the test forks."""
    otel_perf.caches.observe_lru_cache(functools.lru_cache(maxsize=8)(abs), "lru")
    locks = [
        _state.warned_lock,
        _state.lru_sources_lock,
        *(source._lock for source in _state.lru_sources),
        _state.compat_lock,
        _state.lock,
    ]
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(locks, release, held), name="lock-holder")
    holder.start()
    assert held.wait(10)
    yield
    release.set()
    holder.join(10)


def test_no_deadlock_when_another_thread_holds_otel_perfs_locks_at_fork(
    locks_held_by_another_thread: None,
) -> None:
    def child() -> dict[str, Any]:
        otel_perf.record_tool_call(None, True, float("nan"))  # warns: the warn-once lock
        otel_perf.record_tool_call("t", True, 1.0)  # configures: the state lock, cache sources
        otel_perf.caches.observe_lru_cache(functools.lru_cache(maxsize=8)(abs), "lru2")
        collector = PerformanceMetricsCollector()
        return totals(collector.get_all_metrics())

    assert run_in_child(child, timeout_s=20) == {"t": 1}


def test_forks_while_threads_record_and_poll_never_deadlock(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """20 forks taken at random moments of a busy parent: recording threads (with bad input,
    so warnings are being given), HTTP pollers and snapshot readers."""
    parent = otel_perf.configure()
    url = parent.url
    assert url is not None
    stop = threading.Event()
    recorded = [0] * 4

    def record(i: int) -> None:
        while not stop.is_set():
            otel_perf.record_tool_call(f"busy-{i}", True, 1.0)
            otel_perf.record_tool_call(f"bad-{recorded[i] % 700}", True, -1.0)  # caps, warnings
            with otel_perf.track_tool("tracked"):
                pass
            recorded[i] += 1

    def poll() -> None:
        while not stop.is_set():
            http_request(url, path="/metrics")
            otel_perf.get_all_metrics()

    workers = [threading.Thread(target=record, args=(i,)) for i in range(4)]
    workers += [threading.Thread(target=poll) for _ in range(2)]
    for worker in workers:
        worker.start()

    def child() -> dict[str, int]:
        for _ in range(10):
            otel_perf.record_tool_call("in-child", True, 1.0)
        return totals(otel_perf.get_all_metrics())

    try:
        forks = 0
        for _ in range(20):
            time.sleep(0.02)
            assert run_in_child(child, timeout_s=20) == {"in-child": 10}
            forks += 1
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    assert not any(worker.is_alive() for worker in workers)
    parent_totals = totals(otel_perf.get_all_metrics())
    assert "in-child" not in parent_totals
    assert parent_totals["tracked"] == sum(recorded)
    with capsys.disabled():
        print(
            f"\n[reliability] fork: {forks} forks of a busy parent (4 recording threads, 2 "
            "pollers) and 1 with every process-wide lock held: no deadlock, each child "
            "counted only its own calls"
        )
