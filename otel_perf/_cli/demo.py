"""``otel-perf demo``: a real MCP server under a real client load, with its metrics served live.

What runs, all on 127.0.0.1 in this process:

- an ``mcp`` 2.x ``MCPServer`` over streamable HTTP (uvicorn, a free port), instrumented with
  :func:`otel_perf.mcp.instrument`. Its tools: ``search`` (fast; normalises queries through a
  ``functools.lru_cache`` observed with ``observe_lru_cache``), ``summarize`` (slow, wide
  latency spread), ``flaky_fetch`` (fails with ``TimeoutError`` or ``ValueError``),
  ``cached_lookup`` (behind an instrumented ``cachetools.TTLCache``) and ``ask_llm`` (calls a
  simulated LLM provider through ``track_provider``, which sometimes fails);
- a load generator: ``--concurrency`` real ``mcp.Client`` connections calling the tools, half
  of them handshake-era (``mode="legacy"``) sessions so active sessions show, half stateless
  2026-era clients. By default it runs until Ctrl-C at a steady :data:`STEADY_RATE` calls per
  second, so the dashboard a newcomer opens keeps moving; ``--duration`` seconds or ``--calls``
  calls make a bounded run, as fast as the clients go;
- the otel-perf endpoint (``--port``, default 9109) throughout, and after a bounded run until
  Ctrl-C with ``--serve``; OTLP export too when the environment configures it.

A progress line shows the load; at the end (on Ctrl-C too) the final document is printed as
the view ``otel-perf snapshot`` shows (:mod:`otel_perf._cli.view`). Needs the ``demo`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import otel_perf
from otel_perf._cli.view import ViewState, console_for, render
from otel_perf._integrations import sdk_versions

#: The tool mix of the load generator: (tool, weight).
TOOL_MIX: tuple[tuple[str, int], ...] = (
    ("search", 35),
    ("summarize", 15),
    ("flaky_fetch", 20),
    ("cached_lookup", 20),
    ("ask_llm", 10),
)

DEFAULT_CONCURRENCY = 4

#: Calls per second of the open-ended run (no ``--duration`` / ``--calls``): steady load that
#: keeps every chart moving without taking a core of the machine.
STEADY_RATE = 40.0


def _missing_extra(exc: ImportError) -> int:
    print(
        f"otel-perf demo needs the demo extra ({exc.name or exc} is missing): "
        "pip install 'otel-perf[demo]'",
        file=sys.stderr,
    )
    return 2


def _other_sdk_generation() -> int:
    """The demo's server is written for mcp 2.x; never advise upgrading a 1.x environment."""
    version = sdk_versions.installed_version("mcp")
    print(
        f"otel-perf demo runs an mcp 2.x server, and this environment has mcp {version}. "
        "otel-perf measures mcp 1.x servers too (see the README), but installing the demo extra "
        "here would upgrade mcp and break servers written for 1.x. Run the demo in an "
        "environment of its own: python3 -m venv otel-perf-demo && "
        "otel-perf-demo/bin/pip install 'otel-perf[demo]' && otel-perf-demo/bin/otel-perf demo",
        file=sys.stderr,
    )
    return 2


# --- the server --------------------------------------------------------------------------------


class _Latency:
    """Thread-safe lognormal latencies from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def seconds(self, median_ms: float, sigma: float) -> float:
        with self._lock:
            return self._rng.lognormvariate(math.log(median_ms / 1000.0), sigma)

    def uniform(self) -> float:
        with self._lock:
            return self._rng.random()


def build_server(seed: int) -> Any:
    """The demo's ``MCPServer`` with its five tools, instrumented."""
    import cachetools  # noqa: PLC0415 - optional: the demo extra
    from mcp.server import MCPServer  # noqa: PLC0415

    import otel_perf.mcp  # noqa: PLC0415
    from otel_perf.caches import instrument_cache, observe_lru_cache  # noqa: PLC0415

    latency = _Latency(seed)
    # Failing tools are part of the show; the SDK would log each with a full traceback.
    logging.getLogger("mcp.server.mcpserver.server").setLevel(logging.CRITICAL)
    server = MCPServer("otel-perf-demo", log_level="CRITICAL")

    @functools.lru_cache(maxsize=64)
    def normalize(query: str) -> str:
        return " ".join(query.lower().split())

    observe_lru_cache(normalize, "query_normalizer")

    lookup_cache: Any = instrument_cache(cachetools.TTLCache(maxsize=30, ttl=3.0), "lookup_cache")

    @cachetools.cached(lookup_cache, lock=threading.Lock())
    def lookup(key: int) -> str:
        time.sleep(latency.seconds(15.0, 0.4))  # the slow backend the cache saves
        return f"value-{key}"

    @server.tool()
    async def search(query: str) -> str:
        """Fast: a few milliseconds."""
        await asyncio.sleep(latency.seconds(3.0, 0.3))
        return f"results for {normalize(query)!r}"

    @server.tool()
    async def summarize(text: str) -> str:
        """Slow, with a wide latency spread."""
        await asyncio.sleep(latency.seconds(40.0, 0.9))
        return text[:20]

    @server.tool()
    async def flaky_fetch(url: str) -> str:
        """Fails now and then, two ways."""
        await asyncio.sleep(latency.seconds(8.0, 0.5))
        roll = latency.uniform()
        if roll < 0.10:
            raise TimeoutError("upstream timed out")
        if roll < 0.15:
            raise ValueError("upstream sent garbage")
        return f"fetched {url}"

    @server.tool()
    def cached_lookup(key: int) -> str:
        """Behind an instrumented cachetools TTL cache (sync: runs in a worker thread)."""
        return lookup(key)

    @server.tool()
    async def ask_llm(prompt: str) -> str:
        """Calls a simulated LLM provider (tracked with track_provider)."""
        model = "sim-large" if latency.uniform() < 0.3 else "sim-small"
        with otel_perf.track_provider("simulated-llm", model=model) as call:
            await asyncio.sleep(latency.seconds(60.0 if model == "sim-large" else 20.0, 0.5))
            if latency.uniform() < 0.05:
                raise ConnectionError("provider unavailable")
            call.set_tokens(input_tokens=len(prompt) + 20, output_tokens=50)
        return f"{model} says hello"

    return otel_perf.mcp.instrument(server)


@contextlib.contextmanager
def serve_http(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn  # noqa: PLC0415 - optional: the demo extra

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    # A daemon thread: if uvicorn hangs on exit, it must not keep the process alive.
    thread = threading.Thread(target=server.run, name="otel-perf-demo-mcp", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo's MCP server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)


# --- the load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """How much load: ``calls`` tool calls if set, else ``duration_s`` seconds if set, else
    until interrupted; ``rate`` calls per second at most (``None``: as fast as they go)."""

    duration_s: float | None
    calls: int | None
    concurrency: int
    seed: int
    rate: float | None = None

    @property
    def bounded(self) -> bool:
        return self.calls is not None or self.duration_s is not None


class _Budget:
    """Hands out call slots to the workers until the plan is exhausted (one event loop)."""

    def __init__(self, plan: LoadPlan) -> None:
        self.calls = plan.calls
        self.deadline = None if plan.duration_s is None else time.monotonic() + plan.duration_s
        self.interval = None if not plan.rate else plan.concurrency / plan.rate
        self.issued = 0
        self.done = 0

    def take(self) -> bool:
        if self.calls is not None:
            if self.issued >= self.calls:
                return False
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        self.issued += 1
        return True


def _arguments(tool: str, rng: random.Random) -> dict[str, Any]:
    if tool == "search":
        return {"query": rng.choice(["MCP servers", "  OpenTelemetry ", "latency p99", "cache"])}
    if tool == "summarize":
        return {"text": "a long document " * rng.randint(1, 20)}
    if tool == "flaky_fetch":
        return {"url": f"https://example.invalid/{rng.randint(1, 100)}"}
    if tool == "cached_lookup":
        return {"key": rng.randint(0, 39)}
    return {"prompt": "why is the sky blue? " * rng.randint(1, 5)}


async def _worker(url: str, mode: str, budget: _Budget, rng: random.Random) -> None:
    from mcp import Client, MCPError  # noqa: PLC0415

    tools = [name for name, _ in TOOL_MIX]
    weights = [weight for _, weight in TOOL_MIX]
    async with Client(url, mode=mode) as client:
        next_at = time.monotonic()
        while budget.take():
            tool = rng.choices(tools, weights)[0]
            # a failed call is counted by the server; the load goes on
            with contextlib.suppress(MCPError):
                await client.call_tool(tool, _arguments(tool, rng))
            budget.done += 1
            if budget.interval is not None:  # steady pace: each client its share of the rate
                next_at = max(next_at + budget.interval, time.monotonic() - budget.interval)
                await asyncio.sleep(max(next_at - time.monotonic(), 0.0))


async def drive(url: str, plan: LoadPlan, on_progress: Callable[[int], None]) -> int:
    """Run the load against ``url``; returns the number of calls made."""
    budget = _Budget(plan)
    workers = [
        asyncio.create_task(
            _worker(url, "legacy" if i % 2 == 0 else "auto", budget, random.Random(plan.seed + i))
        )
        for i in range(plan.concurrency)
    ]
    try:
        while not all(worker.done() for worker in workers):
            on_progress(budget.done)
            await asyncio.wait(workers, timeout=0.2)
        on_progress(budget.done)
        for worker in workers:
            worker.result()  # a client that could not connect is the demo's failure
    finally:
        for worker in workers:
            worker.cancel()
    return budget.done


@contextlib.contextmanager
def _progress(plan: LoadPlan, out: TextIO) -> Iterator[Callable[[int], None]]:
    """A progress callback drawing a rich progress bar (a running count when open-ended)."""
    from rich.console import Console  # noqa: PLC0415 - the demo extra
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    start = time.monotonic()
    if not plan.bounded:  # open-ended: no bar to fill, a running count
        columns: tuple[Any, ...] = (
            TextColumn("load"),
            TextColumn("{task.fields[calls]} calls"),
            TextColumn("{task.fields[rate]:.1f} calls/s"),
            TimeElapsedColumn(),
            TextColumn("[dim](Ctrl-C to stop)"),
        )
        with Progress(*columns, console=Console(file=out)) as progress:
            task = progress.add_task("load", total=None, calls=0, rate=0.0)

            def running(done: int) -> None:
                elapsed = max(time.monotonic() - start, 1e-9)
                progress.update(task, calls=done, rate=done / elapsed)

            yield running
        return

    columns = (
        TextColumn("load"),
        BarColumn(),
        TextColumn("{task.fields[calls]} calls"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=out)) as progress:
        total = float(plan.calls) if plan.calls is not None else float(plan.duration_s or 0.0)
        task = progress.add_task("load", total=total, calls=0)

        def update(done: int) -> None:
            if plan.calls is not None:
                progress.update(task, completed=done, calls=done)
            else:
                elapsed = min(time.monotonic() - start, total)
                progress.update(task, completed=elapsed, calls=done)

        yield update


# --- the summary -------------------------------------------------------------------------------


def print_summary(document: dict[str, Any], source: str, out: TextIO) -> None:
    """The closing summary: the view ``otel-perf snapshot`` prints, of the final document."""
    console_for(out).print(render(document, ViewState(url=source)))


# --- the command -------------------------------------------------------------------------------


def _start_metrics(port: int, out: TextIO) -> otel_perf.Metrics:
    metrics = otel_perf.configure(json_port=port)
    if metrics.url is None and metrics.enabled and metrics.settings.json_enabled and port != 0:
        print(f"port {port} is busy; serving metrics on a free port instead", file=out)
        metrics = otel_perf.configure(json_port=0)
    return metrics


def run_demo(plan: LoadPlan, port: int, serve: bool, out: TextIO = sys.stdout) -> int:
    """Run the demo (see the module docstring); returns the exit code."""
    generation = sdk_versions.mcp_generation()
    if generation is not None and generation != 2:
        return _other_sdk_generation()
    try:
        import cachetools  # noqa: F401, PLC0415 - fail early, with the extra's name
        import mcp  # noqa: F401, PLC0415
        import rich  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as exc:
        return _missing_extra(exc)
    server = build_server(plan.seed)
    app = server.streamable_http_app()
    metrics = _start_metrics(port, out)
    if metrics.url is not None:
        print(
            f"dashboard: {metrics.url}/   metrics: {metrics.url}/metrics   "
            f"health: {metrics.url}/health",
            file=out,
        )
    interrupted = False
    with serve_http(app) as base:
        print(f"MCP server: {base}/mcp ({plan.concurrency} clients)", file=out, flush=True)
        try:
            with _progress(plan, out) as progress:
                asyncio.run(drive(f"{base}/mcp", plan, progress))
        except KeyboardInterrupt:
            interrupted = True
        print(file=out)
        source = "in this process" if metrics.url is None else f"{metrics.url}/metrics"
        print_summary(otel_perf.get_all_metrics(), source, out)
        if serve and plan.bounded and not interrupted and metrics.url is not None:
            # Ctrl-C is expected from the moment the line is out: the reader may act on it
            # before this thread runs its next bytecode.
            with contextlib.suppress(KeyboardInterrupt):
                print(
                    f"\nstill serving on {metrics.url}/metrics; Ctrl-C to stop",
                    file=out,
                    flush=True,
                )
                while True:
                    time.sleep(3600)
    otel_perf.shutdown()
    print("stopped", file=out, flush=True)
    return 0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a real MCP server under client load and serve its metrics"
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--duration",
        type=float,
        default=None,
        help=(
            "seconds of load, then the summary (default: steady load, "
            f"{STEADY_RATE:g} calls/s, until Ctrl-C)"
        ),
    )
    amount.add_argument("--calls", type=int, default=None, help="stop after this many tool calls")
    parser.add_argument("--port", type=int, default=9109, help="metrics port (0: any free one)")
    parser.add_argument(
        "--concurrency",
        "--threads",
        dest="concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"concurrent MCP clients (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the workload")
    parser.add_argument(
        "--serve", action="store_true", help="after a bounded run, keep serving until Ctrl-C"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    duration = args.duration
    if (
        (duration is not None and duration <= 0)
        or (args.calls is not None and args.calls <= 0)
        or args.concurrency <= 0
        or not 0 <= args.port <= 65535
    ):
        print("duration, calls and concurrency must be positive, port 0-65535", file=sys.stderr)
        return 2
    bounded = duration is not None or args.calls is not None
    plan = LoadPlan(
        duration, args.calls, args.concurrency, args.seed, None if bounded else STEADY_RATE
    )
    return run_demo(plan, args.port, args.serve)
