"""OTLP export on vs off: what push export costs the application.

Export shares the JSON view's reader and runs on a background thread, so it adds nothing to a
record call; what it costs is that thread's work (a collection, encoding, a send) every export
interval. So the comparison is made on CPU time of the whole process per recorded call, over
blocks long enough to hold several exports: alternating blocks with OTLP off and on (in the
order off-on, on-off, ...), each block with a configuration built fresh for it and shut down
after it, so no exporter thread runs during an "off" block. The exporter sends to a closed port
on 127.0.0.1 every ``interval_ms``: every export is a full collect and encode, then a refused
connection. A second, finer comparison times the record call alone (thread CPU time,
interleaved) with both configurations alive.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Mapping

import otel_perf
from benchmarks import _runtimes
from benchmarks._report import Section, Target
from benchmarks._timing import compile_loop, interleave
from otel_perf._metrics import Metrics

OFF = "OTLP off: with track_tool()"
ON = "OTLP on: with track_tool()"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _env(interval_ms: int, port: int) -> dict[str, str]:
    return {
        "METRICS_JSON_ENDPOINT_ENABLED": "false",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms),
        "OTEL_EXPORTER_OTLP_TIMEOUT": str(max(interval_ms // 2, 100)),
    }


def _exporting(metrics: Metrics) -> bool:
    pipeline = metrics.pipeline
    return bool(pipeline is not None and getattr(pipeline, "forwarders", None))


def _record_block(metrics: Metrics, seconds: float, tools: int) -> float:
    """Process CPU nanoseconds per tracked call, recording flat out for ``seconds``."""
    _runtimes.activate(metrics)
    track = otel_perf.track_tool
    names = [f"tool_{index:02d}" for index in range(tools)]
    for name in names:  # every series exists before the clock starts
        for _ in range(50):
            with track(name):
                pass
    calls = 0
    cpu0 = time.process_time_ns()
    deadline = time.perf_counter() + seconds
    while calls == 0 or time.perf_counter() < deadline:  # at least one pass, however slow
        for name in names:
            for _ in range(20):
                with track(name):
                    pass
        calls += 20 * len(names)
    return (time.process_time_ns() - cpu0) / calls


def run(*, blocks: int, block_s: float, interval_ms: int, rounds: int, tools: int = 20) -> Section:
    port = closed_port()
    env_on: Mapping[str, str] = _env(interval_ms, port)
    env_off: Mapping[str, str] = {"METRICS_JSON_ENDPOINT_ENABLED": "false"}
    off = _runtimes.build(env_off)
    section = Section(
        "OTLP export",
        f"Tracked calls on {tools} tools with OTLP export off and on (http/protobuf to a closed "
        f"port, every {interval_ms} ms). *Whole process*: CPU time of all threads per call "
        f"over {blocks} pairs of {block_s:.1f} s blocks, exporter included. *Record call "
        f"only*: thread CPU time of the call, {rounds} interleaved rounds.",
    )
    try:
        probe = _runtimes.build(env_on)
        available = _exporting(probe)
        probe.shutdown(timeout_s=2.0)
        if not available:
            section.notes.append("OTLP export is not available in this build: not measured.")
            return section

        ratios: list[float] = []
        on_costs: list[float] = []
        off_costs: list[float] = []
        exports = 0
        for index in range(blocks):
            costs = {}
            for phase in ("off", "on") if index % 2 == 0 else ("on", "off"):
                # A fresh configuration for every block, on or off alike, so both start from
                # the same state (new series, empty windows).
                fresh = _runtimes.build(env_on if phase == "on" else env_off)
                try:
                    costs[phase] = _record_block(fresh, block_s, tools)
                    pipeline = fresh.pipeline
                    if phase == "on" and pipeline is not None:
                        exports += sum(f.status().exports for f in pipeline.forwarders)
                finally:
                    _runtimes.activate(None)
                    fresh.shutdown(timeout_s=5.0)
            ratios.append(costs["on"] / costs["off"])
            on_costs.append(costs["on"])
            off_costs.append(costs["off"])

        on = _runtimes.build(env_on)
        try:
            loops = {}
            for name, metrics in ((OFF, off), (ON, on)):
                inner = compile_loop(
                    "with track_tool('tool_00'):\n    pass", {"track_tool": otel_perf.track_tool}
                )

                def loop(n: int, inner: object = inner, metrics: Metrics = metrics) -> int:
                    _runtimes.activate(metrics)
                    return inner(n)  # type: ignore[operator]

                loops[name] = loop
            samples = interleave(loops, rounds=rounds)
        finally:
            _runtimes.activate(None)
            on.shutdown(timeout_s=5.0)
    finally:
        _runtimes.release(off)

    section.row("whole process, OTLP off", statistics.median(off_costs), "ns/call", min(off_costs))
    section.row(
        "whole process, OTLP on",
        statistics.median(on_costs),
        "ns/call",
        min(on_costs),
        f"{exports} export attempts in the 'on' blocks",
    )
    section.row(OFF, samples.median(OFF), "ns", samples.minimum(OFF))
    section.row(ON, samples.median(ON), "ns", samples.minimum(ON), f"{samples.ratio(ON, OFF):.3f}x")
    section.target(
        Target(
            "OTLP export on vs off, CPU per tracked call (whole process)",
            statistics.median(ratios),
            1.10,
            detail=f"Median of {blocks} paired blocks; the record call alone: "
            f"{samples.ratio(ON, OFF):.3f}x.",
        )
    )
    return section
