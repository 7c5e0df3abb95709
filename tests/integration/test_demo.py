"""``otel-perf demo``: a real MCP server under real client load; summary and live JSON."""

from __future__ import annotations

import io
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import otel_perf.testing
from otel_perf._cli import demo as _demo
from otel_perf._cli.view import ViewState, console_for, render
from tests.support.helpers import table_row
from tests.support.servers import harness

TOOLS = {"search", "summarize", "flaky_fetch", "cached_lookup", "ask_llm"}


@pytest.fixture(autouse=True)
def forget_observed_caches() -> Iterator[None]:
    yield
    otel_perf.testing.reset()  # the in-process demo observes an lru_cache


class Lines:
    """The lines a child prints, readable with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        self._stream = process.stdout
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stream:
            self._queue.put(line)

    def close(self) -> None:
        """After the child exited: the reader reaches end of file, then the pipe is closed."""
        self._reader.join(timeout=30)
        self._stream.close()

    def until(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                match = re.search(pattern, line)
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen}")
            try:
                self.seen.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                continue


def test_demo_serves_a_real_workload_then_summarises_and_serves_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_perf", "demo", "--calls", "300", "--port", "0", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=harness.child_env({}),
    )
    lines = Lines(process)
    try:
        base = lines.until(r"metrics: (http://127\.0\.0\.1:\d+)/metrics").group(1)
        lines.until(r"MCP server: http://127\.0\.0\.1:\d+/mcp")
        # while the load runs: two of the four clients hold handshake sessions
        deadline = time.monotonic() + 30.0
        during: dict[str, Any] = harness.fetch_json(f"{base}/metrics")
        while during["system_metrics"]["active_sessions"] != 2:
            assert time.monotonic() < deadline, during["system_metrics"]
            time.sleep(0.05)
            during = harness.fetch_json(f"{base}/metrics")
        lines.until(r"still serving on")
        document = harness.fetch_json(f"{base}/metrics")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        lines.until(r"^stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        lines.close()

    tools = document["tool_metrics"]
    assert set(tools) == TOOLS
    assert sum(tool["total_calls"] for tool in tools.values()) == 300
    assert all(tool["total_calls"] > 0 for tool in tools.values())
    assert set(tools["flaky_fetch"]["error_types"]) <= {"TimeoutError", "ValueError"}
    assert tools["summarize"]["max_latency_ms"] > tools["search"]["max_latency_ms"]
    assert {"lookup_cache", "query_normalizer"} <= set(document["cache_metrics"])
    assert document["cache_metrics"]["query_normalizer"]["hits"] > 0
    llm = document["provider_metrics"]["simulated-llm"]
    assert llm["total_calls"] == tools["ask_llm"]["total_calls"]
    assert llm["output_tokens"] == 50 * (llm["total_calls"] - llm["failed_calls"])
    assert document["system_metrics"]["active_sessions"] == 0  # the clients have left
    summary = "\n".join(lines.seen)  # the view otel-perf snapshot prints
    for name in TOOLS:
        assert table_row(summary, name)[2] == f"{tools[name]['total_calls']:,}"
    for name, cache in document["cache_metrics"].items():
        assert table_row(summary, name)[1:3] == [f"{cache['hit_rate']:.2f}%", f"{cache['hits']:,}"]
    assert table_row(summary, "simulated-llm")[1] == f"{llm['total_calls']:,}"


def test_demo_keeps_serving_under_steady_load_until_ctrl_c() -> None:
    """No --duration/--calls: the page a newcomer opens must still be live after 15 s."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_perf", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=harness.child_env({}),
    )
    lines = Lines(process)
    try:
        base = lines.until(r"metrics: (http://127\.0\.0\.1:\d+)/metrics").group(1)
        lines.until(r"MCP server: http://127\.0\.0\.1:\d+/mcp")
        started = time.monotonic()

        def calls() -> int:
            document = harness.fetch_json(f"{base}/metrics")
            return sum(tool["total_calls"] for tool in document["tool_metrics"].values())

        time.sleep(3.0)
        early = calls()
        time.sleep(max(16.0 - (time.monotonic() - started), 0.0))
        assert process.poll() is None, "the demo stopped by itself"
        late = calls()
        assert time.monotonic() - started >= 15.0
        assert late > early > 0
        # steady, not flat out: about STEADY_RATE calls per second
        rate = (late - early) / 13.0
        assert 0.3 * _demo.STEADY_RATE < rate < 2.0 * _demo.STEADY_RATE, rate
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        lines.until(r"^stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        lines.close()
    text = "\n".join(lines.seen)
    assert "calls/s" in text  # the progress line
    assert "Tools (sorted by p95)" in text  # the summary: the view otel-perf snapshot prints
    for name in TOOLS:
        assert re.fullmatch(r"[\d,]+", table_row(text, name)[2])


def test_demo_with_a_call_budget_makes_exactly_that_many_calls() -> None:
    out = io.StringIO()
    plan = _demo.LoadPlan(duration_s=None, calls=40, concurrency=3, seed=1)
    assert _demo.run_demo(plan, port=0, serve=False, out=out) == 0
    text = out.getvalue()
    called = [name for name in TOOLS if re.search(rf"^\s*{name}\s", text, re.MULTILINE)]
    calls = [int(table_row(text, name)[2].replace(",", "")) for name in called]
    assert sum(calls) == 40, text
    assert text.rstrip().endswith("stopped")


@pytest.mark.parametrize(
    "argv",
    [["--duration", "0"], ["--calls", "-1"], ["--concurrency", "0"], ["--port", "70000"]],
)
def test_demo_rejects_bad_options(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_perf", "demo", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=harness.child_env({}),
    )
    assert result.returncode == 2
    assert "must be positive" in result.stderr


def test_the_demo_summary_is_the_snapshot_view_with_every_section() -> None:
    document = {
        "enabled": True,
        "tool_metrics": {
            "t": {
                "total_calls": 3,
                "failed_calls": 1,
                "success_rate": 66.67,
                "p50_latency_ms": 1.0,
                "p95_latency_ms": 2.0,
                "p99_latency_ms": 3.0,
                "max_latency_ms": 4.0,
                "error_types": {"ValueError": 1},
            }
        },
        "cache_metrics": {
            "c": {
                "hit_rate": 50.0,
                "hits": 1,
                "misses": 1,
                "total_requests": 2,
                "evictions": 1,
                "size_rejections": 0,
            }
        },
        "provider_metrics": {
            "p": {
                "total_calls": 1,
                "failed_calls": 0,
                "success_rate": 100.0,
                "error_types": {},
                "p50_latency_ms": 4.0,
                "p95_latency_ms": 5.0,
                "p99_latency_ms": 6.0,
                "input_tokens": 1,
                "output_tokens": 2,
                "cost_usd": None,
                "models": {"m": {"total_calls": 1, "cost_usd": None}},
            }
        },
        "system_metrics": {
            "total_requests": 9,
            "active_sessions": 1,
            "concurrent_requests": 0,
            "uptime_seconds": 1.5,
        },
    }
    out = io.StringIO()
    _demo.print_summary(document, "in this process", out)
    text = out.getvalue()
    # One renderer: the demo prints exactly what otel-perf top/snapshot draw of the document.
    expected = io.StringIO()
    console_for(expected).print(render(document, ViewState(url="in this process")))
    assert text == expected.getvalue()
    assert table_row(text, "t") == [
        *("t", "failing", "3", "1", "66.67%", "1.00", "2.00", "3.00", "4.00", "ValueError (1)")
    ]
    assert table_row(text, "c") == ["c", "50.00%", "1", "1", "1", "0"]
    assert table_row(text, "p") == [
        *("p", "1", "100.00%", "4.00", "5.00", "6.00", "1 / 2", "-", "-", "m (1, -)")
    ]
    assert re.search(r"uptime 1s\s+sessions 1\s+concurrent 0\s+requests 9", text)
