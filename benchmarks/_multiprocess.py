"""Many processes, one endpoint: what contributing costs a worker, and the endpoint's answer time.

- *Contributing*: each process of a server hands its numbers over once per sharing interval
  (1 s): one collection from its own reader, the SDK's OTLP encoding, one file written and
  renamed. Timed here as thread CPU per hand-over, at 1 and at 500 tools, with every tool
  changed since the last one (nothing reusable), and idle (nothing recorded since: the
  collection and a comparison, no encoding, the file's time touched); the CPU per second of a
  worker is that times one hand-over per second.
- *Answer time with 4 workers*: this process serves, three real worker processes (each with
  the same tools, calls and error types) hand their numbers over; one uncached answer is one
  collection of its own, reading and decoding the three files (unchanged files are decoded once
  and reused), the merge, and the document. Compared with the same process serving alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from statistics import median
from time import thread_time_ns
from typing import Any

import otel_perf
from benchmarks._report import ROOT, Section
from benchmarks._runtimes import environment
from otel_perf import _configure
from otel_perf._multiprocess.member import INTERVAL_S, Member
from otel_perf._pipeline import Pipeline
from otel_perf._settings import Settings

_WORKER = textwrap.dedent(
    """
    import sys, time, otel_perf
    from pathlib import Path
    tools, calls, stop = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    for t in range(tools):
        for c in range(calls):
            error = None if c % 3 else ("Timeout" if t % 2 else "Boom")
            otel_perf.record_tool_call(f"tool_{t:03d}", error is None, 1.0 + c + t % 7, error)
    Path(f"{stop}.{sys.argv[4]}").write_text("ready")
    deadline = time.monotonic() + 300
    while not stop.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    """
)


def _record(record: Any, tools: int, calls: int, offset: float = 0.0) -> None:
    for t in range(tools):
        for c in range(calls):
            error = None if c % 3 else ("Timeout" if t % 2 else "Boom")
            record(f"tool_{t:03d}", error is None, 1.0 + c + t % 7 + offset, error)


def contribution_cpu_ms(tools: int, calls: int, rounds: int, *, changed: bool = True) -> float:
    """Median thread CPU of one hand-over (ms), every tool changed before each (or none)."""
    pipeline = Pipeline(Settings(json_enabled=False))
    with tempfile.TemporaryDirectory() as directory:
        member = Member("bench", Path(directory), pipeline.collect)
        try:
            _record(pipeline.recorder.record_tool_call, tools, calls)
            spent: list[int] = []
            member.publish()
            for round_ in range(rounds):
                if changed:
                    _record(pipeline.recorder.record_tool_call, tools, 1, offset=round_)
                start = thread_time_ns()
                member.publish()
                spent.append(thread_time_ns() - start)
        finally:
            pipeline.shutdown(1.0)
    return median(spent) / 1e6


def answer_ms(tools: int, calls: int, rounds: int, workers: int) -> tuple[float, float, int]:
    """(median uncached answer with ``workers`` processes, serving alone, processes seen)."""
    with tempfile.TemporaryDirectory() as runtime:
        stop = Path(runtime) / "stop"
        env = {
            "OTEL_PERF_GROUP": f"bench-{uuid.uuid4().hex[:12]}",
            "XDG_RUNTIME_DIR": runtime,
            "METRICS_JSON_PORT": "0",
        }
        alone = _timed_answers(tools, calls, rounds, {**env, "OTEL_PERF_GROUP": "off"}, [])
        with environment(env):
            metrics = otel_perf.configure()
            children = [
                subprocess.Popen(  # noqa: S603 - the harness's own worker script
                    [sys.executable, "-c", _WORKER, str(tools), str(calls), str(stop), str(i)],
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(workers - 1)
            ]
        try:
            deadline = time.monotonic() + 120
            while not all(Path(f"{stop}.{i}").exists() for i in range(workers - 1)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark's workers did not start")
                time.sleep(0.05)
            time.sleep(2.5 * INTERVAL_S)  # every worker has handed its numbers over
            merged = _timed_answers(tools, calls, rounds, None, [metrics])
            seen = int(metrics.snapshot()["system_metrics"]["processes"])
        finally:
            stop.write_text("stop")
            for child in children:
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(10)
            _configure.shutdown()
    return merged, alone, seen


def _timed_answers(
    tools: int, calls: int, rounds: int, env: dict[str, str] | None, running: list[Any]
) -> float:
    if env is not None:
        with environment(env):
            metrics = otel_perf.configure()
    else:
        metrics = running[0]
    try:
        _record(otel_perf.record_tool_call, tools, calls)
        times: list[float] = []
        for round_ in range(rounds):
            _record(otel_perf.record_tool_call, tools, 1, offset=round_)  # every tool changed
            start = time.perf_counter()
            metrics.snapshot_body()  # the route's uncached work
            times.append(time.perf_counter() - start)
    finally:
        if env is not None:
            _configure.shutdown()
    return median(times) * 1e3


def run(*, rounds: int, calls: int, workers: int = 4) -> Section:
    section = Section(
        "Many processes",
        "What contributing to one endpoint costs each process of a server (thread CPU per "
        f"hand-over; one hand-over every {INTERVAL_S:g} s), and the endpoint's uncached answer "
        f"time with {workers} processes, {calls} calls per tool in each; {rounds} rounds, "
        "every tool changed before each (not timed). Medians.",
    )
    for tools, changed in ((1, True), (500, True), (500, False)):
        cpu_ms = contribution_cpu_ms(tools, calls, rounds, changed=changed)
        state = "every tool changed" if changed else "idle"
        section.row(
            f"contributing, {tools} tool{'s' if tools > 1 else ''}, {state}: CPU per second",
            cpu_ms / INTERVAL_S / 1000.0 * 100.0,
            "% of a core",
            note=f"{cpu_ms:.2f} ms of CPU per hand-over",
        )
    merged, alone, seen = answer_ms(500, calls, rounds, workers)
    section.row(
        f"answer time, 500 tools, {seen} processes",
        merged,
        "ms",
        note=f"{merged / alone:.2f}x serving alone",
    )
    section.row("answer time, 500 tools, serving alone", alone, "ms")
    return section
