"""What delta temporality costs per export: ``python benchmarks/otlp_delta_cost.py``.

otel-perf computes OTLP deltas on the forwarder thread from two cumulative collections (see
``otel_perf/_export/delta.py``), so ``record`` costs the same with ``delta`` as with
``cumulative``. This measures the per-export price instead: building the baseline and the delta
batch for N tool series, next to the cost of the collection itself, median of several runs.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable

import otel_perf
from otel_perf._export.delta import baseline_of, to_delta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tools", type=int, default=500, help="distinct tools (default 500)")
    parser.add_argument("--repeat", type=int, default=7, help="runs to take the median of")
    args = parser.parse_args()

    metrics = otel_perf.configure(json_enabled=False, max_tools=max(args.tools, 1))
    pipeline = metrics.pipeline
    assert pipeline is not None
    rng = random.Random(1)

    def load() -> None:
        # Each tool gets a success series and a failure series (two histogram points).
        for i in range(args.tools):
            for _ in range(20):
                ok = rng.random() > 0.1
                latency = rng.lognormvariate(math.log(20.0), 1.0)
                otel_perf.record_tool_call(f"tool{i}", ok, latency, None if ok else "Timeout")

    load()
    first = pipeline.collect()
    load()
    second = pipeline.collect()
    assert first is not None
    assert second is not None
    points = sum(
        len(metric.data.data_points)
        for rm in second.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )

    def timed(work: Callable[[], object]) -> float:
        runs = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            work()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs) * 1000.0

    delta_ms = timed(lambda: to_delta(second, baseline_of(first)))
    collect_ms = timed(pipeline.collect)
    print(f"{points} data points ({args.tools} tools)")
    print(f"collect:            {collect_ms:8.1f} ms per export (cumulative and delta alike)")
    print(f"delta computation:  {delta_ms:8.1f} ms per export (delta only)")
    print(f"per series:         {delta_ms / points * 1000:8.1f} us")
    otel_perf.shutdown()


if __name__ == "__main__":
    main()
