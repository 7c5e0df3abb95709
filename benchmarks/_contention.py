"""Record calls while another thread collects continuously, with every cap full.

``python -m benchmarks._contention [--seconds S]`` (or ``python -m benchmarks --only
contention``). Every name cap is filled past its limit first (520 tools x 60 error types with
``METRICS_MAX_TOOLS=500`` and ``METRICS_MAX_ERROR_TYPES=50``, 110 caches, 110 providers), so
further names fold into ``_OTHER``. Then one thread runs collections back to back while this
one times each record call (``perf_counter_ns`` around one ``record_mcp_tool``/cache call).

The SDK holds an instrument's lock for the whole of a collection and takes it in ``record`` for
an attribute set it has not seen, which includes every record into its overflow series. With
the SDK's limits sized from otel-perf's caps (the default) no record call ever overflows, so
none waits; the "SDK limit 2,000" row rebuilds the pipeline with the limits otel-perf used
before, for comparison. Times are wall-clock per call on a shared machine: the tail also holds
GIL hand-overs to the collecting thread (the interpreter's switch interval is 5 ms).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks._report import Section, Target

TOOLS = 520
ERROR_TYPES = 60
CACHES = 110
PROVIDERS = 110


@contextmanager
def _sdk_limits(old: bool) -> Iterator[None]:
    """Optionally size the SDK's limits the way otel-perf did before (at least 2,000)."""
    from otel_perf import _pipeline

    original = _pipeline.cardinality_limits
    if old:

        def before(settings: Any) -> dict[str, int]:
            return {name: max(2000, 4 * (settings.max_tools + 1)) for name in original(settings)}

        _pipeline.cardinality_limits = before  # type: ignore[assignment]
    try:
        yield
    finally:
        _pipeline.cardinality_limits = original


def _fill(recorder: Any) -> None:
    import otel_perf

    for t in range(TOOLS):
        for e in range(0, ERROR_TYPES, 3):
            recorder.record_mcp_tool(
                f"tool{t}", 0.001, f"Error{(e + t) % ERROR_TYPES}", None, "tcp"
            )
        recorder.record_mcp_tool(f"tool{t}", 0.001, None, None, "tcp")
        recorder.record_mcp_tool(f"tool{t}", 0.001, None, "-32602", "tcp")
    for c in range(CACHES):
        otel_perf.record_cache_hit(f"cache{c}")
    for p in range(PROVIDERS):
        otel_perf.record_provider_call(f"provider{p}", True, 10.0, model=f"model{p}")


def _spin(stop: threading.Event) -> None:
    """Pure-Python work holding the GIL like a collection does, taking no SDK lock."""
    while not stop.is_set():
        sum(i * i for i in range(2000))


def measure(seconds: float, old_limits: bool, collect: bool = True) -> dict[str, float]:
    """Per-call record times (ns) while a thread collects (or, with ``collect=False``, only
    spins Python: the noise floor of GIL hand-overs and scheduling); see the module docstring.
    """
    import otel_perf

    with _sdk_limits(old_limits):
        metrics = otel_perf.configure(json_enabled=False)
    try:
        pipeline = metrics.pipeline
        assert pipeline is not None
        recorder = pipeline.recorder
        _fill(recorder)
        stop = threading.Event()
        collections = 0

        def collect_continuously() -> None:
            nonlocal collections
            while not stop.is_set():
                pipeline.collect()
                collections += 1

        collector = threading.Thread(
            target=collect_continuously if collect else lambda: _spin(stop),
            name="bench-collector",
            daemon=True,
        )
        collector.start()
        times: list[int] = []
        clock = time.perf_counter_ns
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            for _ in range(200):
                i += 1
                tool = f"tool{i % TOOLS}"
                error = None if i % 4 else f"Error{i % ERROR_TYPES}"
                started = clock()
                recorder.record_mcp_tool(tool, 0.002, error, None, "tcp")
                times.append(clock() - started)
        stop.set()
        collector.join()
    finally:
        otel_perf.shutdown()
    times.sort()
    count = len(times)

    def pct(q: float) -> float:
        return float(times[min(int(q * count), count - 1)])

    return {
        "count": float(count),
        "p50": pct(0.50),
        "p99": pct(0.99),
        "p999": pct(0.999),
        "max": float(times[-1]),
        "collections": float(collections),
    }


def run(seconds: float) -> Section:
    section = Section(
        "Record calls during collections, every cap full",
        "Wall-clock time of one `record_mcp_tool` call (median in the table, tail in the note) "
        "while another thread runs collections back to back, after filling every cap past its "
        "limit (520 tools x 60 error types, 110 caches, 110 providers). The noise-floor row "
        "replaces the collections by a thread spinning Python: its tail is GIL hand-overs and "
        "this shared machine's scheduler. `python -m benchmarks._contention`.",
    )
    results = {}
    cases = (
        ("SDK limits sized from the caps (default)", False, True),
        ("SDK limit 2,000 (before)", True, True),
        ("no collection, a thread spinning Python (noise floor)", False, False),
    )
    for label, old, collect in cases:
        r = measure(seconds, old, collect)
        results[(old, collect)] = r
        section.row(
            f"record call, {label}",
            r["p50"],
            "ns",
            note=(
                f"**p99 {r['p99'] / 1e3:,.0f} us**, p99.9 {r['p999'] / 1e3:,.0f} us, "
                f"max {r['max'] / 1e6:,.1f} ms; {r['count']:,.0f} calls, "
                f"{r['collections']:,.0f} collections"
            ),
        )
    section.targets.append(
        Target(
            "record-call p99 while collecting continuously, every cap full",
            results[(False, True)]["p99"] / 1e3,
            1000.0,
            unit="us",
            detail="target well under 1 ms; no record call takes the SDK's instrument lock",
        )
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    args = parser.parse_args()
    import logging

    logging.getLogger("otel_perf").setLevel(logging.ERROR)
    section = run(args.seconds)
    for row in section.rows:
        print(f"{row.name}: {row.note}")
    for target in section.targets:
        print(f"{target.name}: {target.measured:.1f} {target.unit} (limit {target.limit:g})")


if __name__ == "__main__":
    main()
