"""``otel-perf demo``: a synthetic workload through the public API, served live on the endpoint.

Four worker threads call five pretend tools for a while: a fast one, a slow one with a wide
latency spread, a flaky one that fails with two error types, one behind a cache, and one that
calls a simulated LLM provider. The JSON endpoint serves the numbers while it runs; at the end a
summary table is printed.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import otel_perf


class _Workload:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._cache: dict[int, str] = {}
        self._cache_lock = threading.Lock()
        self.tools: dict[str, Callable[[], None]] = {
            "search": self.search,
            "summarize": self.summarize,
            "flaky_fetch": self.flaky_fetch,
            "cached_lookup": self.cached_lookup,
            "ask_llm": self.ask_llm,
        }

    def _lognormal_s(self, median_ms: float, sigma: float) -> float:
        with self._rng_lock:
            return self._rng.lognormvariate(math.log(median_ms / 1000.0), sigma)

    def _uniform(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def search(self) -> None:
        time.sleep(self._lognormal_s(3.0, 0.3))

    def summarize(self) -> None:
        time.sleep(self._lognormal_s(40.0, 0.9))

    def flaky_fetch(self) -> None:
        time.sleep(self._lognormal_s(8.0, 0.5))
        roll = self._uniform()
        if roll < 0.10:
            raise TimeoutError("upstream timed out")
        if roll < 0.15:
            raise ValueError("upstream sent garbage")

    def cached_lookup(self) -> None:
        key = int(self._uniform() * 40)
        with self._cache_lock:
            value = self._cache.get(key)
            if value is None:
                otel_perf.record_cache_miss("lookup_cache")
                if len(self._cache) >= 30:
                    self._cache.pop(next(iter(self._cache)))
                    otel_perf.record_cache_eviction("lookup_cache")
            else:
                otel_perf.record_cache_hit("lookup_cache")
        if value is None:
            time.sleep(self._lognormal_s(15.0, 0.4))
            with self._cache_lock:
                self._cache[key] = f"value-{key}"

    def ask_llm(self) -> None:
        model = "sim-large" if self._uniform() < 0.3 else "sim-small"
        with otel_perf.track_provider("simulated-llm", model=model) as call:
            time.sleep(self._lognormal_s(60.0 if model == "sim-large" else 20.0, 0.5))
            if self._uniform() < 0.05:
                raise ConnectionError("provider unavailable")
            call.set_tokens(input_tokens=int(200 * self._uniform()) + 20, output_tokens=50)


def _worker(workload: _Workload, deadline: float, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    names = list(workload.tools)
    with otel_perf.track_session():  # each worker plays one connected client session
        while time.monotonic() < deadline and not stop.is_set():
            name = rng.choice(names)
            try:
                with otel_perf.track_tool(name):
                    workload.tools[name]()
            except Exception:  # the demo's failures are recorded by track_tool; keep going
                continue


def format_summary(document: dict[str, Any]) -> str:
    """A per-tool table of the document, for the terminal."""
    header = (
        f"{'tool':<16} {'calls':>7} {'ok %':>7} {'p50 ms':>9} {'p95 ms':>9} "
        f"{'p99 ms':>9} {'max ms':>9}  errors"
    )
    lines = [header, "-" * len(header)]
    for name, tool in document.get("tool_metrics", {}).items():
        errors = ", ".join(f"{k}={v}" for k, v in tool["error_types"].items()) or "-"
        lines.append(
            f"{name:<16} {tool['total_calls']:>7} {tool['success_rate']:>7.2f} "
            f"{tool['p50_latency_ms']:>9.2f} {tool['p95_latency_ms']:>9.2f} "
            f"{tool['p99_latency_ms']:>9.2f} {tool['max_latency_ms']:>9.2f}  {errors}"
        )
    for name, cache in document.get("cache_metrics", {}).items():
        lines.append(
            f"cache {name}: hit rate {cache['hit_rate']:.2f}% of {cache['total_requests']} "
            f"lookups, {cache['evictions']} evictions"
        )
    for name, provider in document.get("provider_metrics", {}).items():
        lines.append(
            f"provider {name}: {provider['total_calls']} calls, p95 "
            f"{provider['p95_latency_ms']:.2f} ms, {provider['input_tokens']} input / "
            f"{provider['output_tokens']} output tokens"
        )
    return "\n".join(lines)


def run_demo(
    duration_s: float, port: int, serve: bool, threads: int = 4, out: TextIO = sys.stdout
) -> int:
    metrics = otel_perf.configure(json_port=port)
    if metrics.url is None and port != 0:
        print(f"port {port} is busy; serving on a free port instead", file=out)
        metrics = otel_perf.configure(json_port=0)
    if metrics.url is not None:
        print(f"metrics: {metrics.url}/metrics   health: {metrics.url}/health", file=out)
    workload = _Workload(seed=7)
    stop = threading.Event()
    deadline = time.monotonic() + duration_s
    workers = [
        threading.Thread(target=_worker, args=(workload, deadline, stop, i), daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    try:
        while any(w.is_alive() for w in workers):
            time.sleep(0.5)
            total = otel_perf.get_all_metrics()["system_metrics"]["total_requests"]
            remaining = max(deadline - time.monotonic(), 0.0)
            print(f"\r{total:>7} tool calls, {remaining:5.1f} s left", end="", file=out, flush=True)
    except KeyboardInterrupt:
        stop.set()
    for worker in workers:
        worker.join(timeout=5.0)
    print("\n", file=out)
    print(format_summary(otel_perf.get_all_metrics()), file=out)
    if serve and metrics.url is not None:
        print(f"\nstill serving on {metrics.url}/metrics; Ctrl-C to stop", file=out)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    otel_perf.shutdown()
    return 0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run a synthetic workload and serve its metrics")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--port", type=int, default=9109, help="endpoint port (0: any free one)")
    parser.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.threads <= 0 or not 0 <= args.port <= 65535:
        print("duration and threads must be positive, port 0-65535", file=sys.stderr)
        return 2
    return run_demo(args.duration, args.port, args.serve, args.threads)
