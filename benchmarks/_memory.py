"""Memory: resident set growth of a steady workload, and of a flood of distinct tool names.

Each measurement runs in a fresh interpreter (``python -m benchmarks._memory PROBE ...``) so
one probe's allocations cannot hide or inflate another's. RSS is read from ``/proc/self/statm``
(the current value, not the peak); after a warm-up that reaches the workload's steady state
(every series created, histograms at their final scale, window starts filled, snapshots taken),
``gc.collect()`` runs before each reading.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import subprocess
import sys
from typing import Any

from benchmarks import _runtimes
from benchmarks._report import ROOT, Section, Target

MIB = 1024 * 1024


def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is the best portable figure
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)


def _settled_rss() -> int:
    gc.collect()
    return rss_bytes()


def _latencies(seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(3.0, 1.0) for _ in range(8192)]


# --- probes (run in the child process) ----------------------------------------------------------


def _otel_perf_recorder() -> tuple[Any, Any, Any]:
    import otel_perf

    metrics = otel_perf.configure(json_port=0)
    return otel_perf.record_tool_call, otel_perf.get_all_metrics, metrics


def probe_steady(calls: int, tools: int, warmup: int, origin: bool) -> dict[str, Any]:
    """``calls`` tool calls over ``tools`` tools after ``warmup`` more, a snapshot every 50,000
    calls."""
    if origin:
        from benchmarks._baselines import OriginStyleCollector

        collector = OriginStyleCollector()
        record, snapshot = collector.record_tool_call, collector.get_all_metrics
    else:
        record, snapshot, _metrics = _otel_perf_recorder()
    latencies = _latencies()
    names = [f"tool_{index:03d}" for index in range(tools)]
    errors = ("TimeoutError", "ValueError")

    def work(count: int) -> None:
        for index in range(count):
            latency = latencies[index & 8191]
            name = names[index % tools]
            if index % 50 == 7:
                record(name, False, latency, errors[index & 1])
            else:
                record(name, True, latency)
            if index % 50_000 == 49_999:
                snapshot()

    work(warmup)  # the steady state of this workload: every series, scale and window start
    before = _settled_rss()
    work(calls)
    after = _settled_rss()
    return {"before": before, "after": after, "document": len(json.dumps(snapshot()))}


def probe_names(names: int, origin: bool) -> dict[str, Any]:
    """One call for each of ``names`` distinct tool names, then one snapshot."""
    latencies = _latencies()
    if origin:
        from benchmarks._baselines import OriginStyleCollector

        collector = OriginStyleCollector()
        record, snapshot = collector.record_tool_call, collector.get_all_metrics
        cap = None
    else:
        record, snapshot, metrics = _otel_perf_recorder()
        cap = metrics.settings.max_tools
    for index in range(1000):  # warm-up: a few tools, a snapshot
        record(f"warm_{index % 10}", True, latencies[index])
    snapshot()
    before = _settled_rss()
    for index in range(names):
        record(f"tool-{index:07d}", True, latencies[index & 8191])
    document = snapshot()
    after = _settled_rss()
    return {
        "before": before,
        "after": after,
        "document": len(json.dumps(document)),
        "tools": len(document["tool_metrics"]),
        "cap": cap,
    }


# --- the section (parent process) ---------------------------------------------------------------


def _probe(*args: str) -> dict[str, Any]:
    # The probe configures from the environment: give it a clean one (defaults, port 0).
    env = {k: v for k, v in os.environ.items() if not k.startswith(_runtimes.PREFIXES)}
    out = subprocess.run(  # noqa: S603 - our own module, this interpreter
        [sys.executable, "-m", "benchmarks._memory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(*, calls: int, tools: int, names: int, warmup: int) -> Section:
    steady = _probe("steady", str(calls), str(tools), str(warmup), "otel-perf")
    steady_origin = _probe("steady", str(calls), str(tools), str(warmup), "origin")
    flood = _probe("names", str(names), "otel-perf")
    flood_origin = _probe("names", str(names), "origin")

    def grown(result: dict[str, Any]) -> float:
        return (result["after"] - result["before"]) / MIB

    section = Section(
        "Memory",
        "Resident set growth (MiB) measured in a fresh interpreter per row, after a warm-up "
        f"of {warmup:,} calls to the workload's steady state and a `gc.collect()`. Tool calls "
        "are recorded with `record_tool_call` (lognormal latencies, 2 % failures of two error "
        "types) with a snapshot every 50,000 calls, as a polling dashboard would cause.",
    )
    section.row(
        f"otel-perf: {calls:,} calls over {tools} tools",
        grown(steady),
        "MiB",
        note=f"RSS {steady['after'] / MIB:.1f} MiB; JSON document {steady['document']:,} bytes",
    )
    section.row(
        f"origin-style: {calls:,} calls over {tools} tools",
        grown(steady_origin),
        "MiB",
        note=f"RSS {steady_origin['after'] / MIB:.1f} MiB; JSON {steady_origin['document']:,} B",
    )
    section.row(
        f"otel-perf: {names:,} distinct tool names",
        grown(flood),
        "MiB",
        note=f"{flood['tools']} tools in the document (cap {flood['cap']} + `_OTHER`); "
        f"JSON document {flood['document']:,} bytes",
    )
    section.row(
        f"origin-style: {names:,} distinct tool names",
        grown(flood_origin),
        "MiB",
        note=f"{flood_origin['tools']:,} tools in the document; "
        f"JSON document {flood_origin['document']:,} bytes",
    )
    section.target(
        Target(
            f"RSS growth over {calls:,} tool calls after warm-up",
            grown(steady),
            1.0,
            unit="MiB",
        )
    )
    section.target(
        Target(
            f"tools in the document after {names:,} distinct names",
            flood["tools"],
            flood["cap"] + 1,
            unit="",
            detail=f"METRICS_MAX_TOOLS={flood['cap']} plus the `_OTHER` entry; RSS grew "
            f"{grown(flood):.1f} MiB and the JSON document is {flood['document']:,} bytes "
            f"(origin-style: {grown(flood_origin):.1f} MiB and "
            f"{flood_origin['document']:,} bytes).",
        )
    )
    return section


def main(argv: list[str]) -> int:
    probe = argv[0]
    if probe == "steady":
        result = probe_steady(int(argv[1]), int(argv[2]), int(argv[3]), argv[4] == "origin")
    elif probe == "names":
        result = probe_names(int(argv[1]), argv[2] == "origin")
    else:
        raise SystemExit(f"unknown probe {probe!r}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
