"""The MCP request path, as users feel it: ``tools/call`` round trips and stdio start-up.

In process, an SDK client calls one tool of an in-memory server over and over; three variants of
each server kind run in interleaved rounds, each round timing the whole process's CPU:

- **plain**: the server as the SDK ships it (mcp 2.x still runs its span middleware, against
  OpenTelemetry's no-op tracer);
- **otel-perf**: the same server instrumented with ``otel_perf.mcp.instrument`` /
  ``otel_perf.fastmcp.instrument``; its record calls queue, and the queue is handed to the SDK
  at the end of each of its rounds, inside the timed span (what a collection does), so the
  figure includes every measurement's whole cost;
- **one bare SDK record**: a middleware that times each call and records it inline into an
  SDK histogram (the floor of recording inline);
- **one queued SDK record**: a middleware that times each call and queues the same record,
  handed to the SDK at the end of the round like otel-perf's queue (the floor of recording on
  the OpenTelemetry SDK off the request path: what otel-perf would cost if its own code were
  free);
- **SDK spans**: the plain server with the SDK's own built-in spans recorded by an SDK
  ``TracerProvider`` (batch processor, in-memory exporter) -- what full tracing costs.

The tracer provider is installed once for the process (the OpenTelemetry API allows one) and
hands out tracers that follow a switch, so the plain and otel-perf rounds still get no-op spans.

Over stdio, the server runs in a child process, as MCP clients run servers: the time to the
first handshake of ``python server.py`` against ``otel-perf run -- python server.py`` (fresh
processes, interleaved), and blocks of ``tools/call`` round trips over the pipes of three
children in turn, fresh ones in every round: plain, under ``otel-perf run``, and plain with one
queued SDK record per request (``benchmarks/_mcp_servers.py --queued-record``, the floor),
timed as totals over every block; and the same three children's instructions per round trip,
counted by callgrind (:mod:`benchmarks._stdio_instructions`). Start-up also includes ``import
otel_perf`` against ``import opentelemetry.sdk.metrics`` alone, each in a fresh interpreter.
"""

from __future__ import annotations

import compileall
import contextlib
import cProfile
import functools
import gc
import json
import os
import pstats
import random
import selectors
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from benchmarks import _baselines as base
from benchmarks import _mcp_servers, _runtimes, _stdio_instructions
from benchmarks._report import ROOT, Section, Target
from otel_perf import _semconv as n

#: Labels of the in-process server kinds, in report order.
KIND_LABELS = {
    "mcpserver": "mcp MCPServer",
    "lowlevel": "mcp low-level Server",
    "fastmcp": "FastMCP",
}
PLAIN = "plain"
OTEL_PERF = "otel-perf"
FLOOR = "one bare SDK record"
QUEUED = "one queued SDK record"
SPANS = "SDK spans"
VARIANTS = (PLAIN, OTEL_PERF, FLOOR, QUEUED, SPANS)

IN_PROCESS_LIMIT = 1.05
STDIO_LIMIT = 1.02
IMPORT_LIMIT = 1.2
HANDSHAKE_LIMIT_MS = 50.0

SERVER_SCRIPT = Path(_mcp_servers.__file__).resolve()
_PREFIXES = ("PERFORMANCE_METRICS_", "METRICS_", "OTEL_")
_READ_TIMEOUT_S = 60.0


# --- the SDK's own spans, switchable --------------------------------------------------------


class _SpanSwitch:
    """A tracer provider whose tracers record through an SDK provider only while ``on``."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.trace import NoOpTracer, Tracer
        from opentelemetry.trace import TracerProvider as ApiTracerProvider

        self.on = False
        self.exporter = InMemorySpanExporter()
        self.sdk = TracerProvider()
        self.sdk.add_span_processor(BatchSpanProcessor(self.exporter))
        switch = self
        noop = NoOpTracer()

        class SwitchedTracer(Tracer):
            def __init__(self, real: Any) -> None:
                self._real = real

            def start_span(self, *args: Any, **kwargs: Any) -> Any:
                tracer = self._real if switch.on else noop
                return tracer.start_span(*args, **kwargs)

            def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
                tracer = self._real if switch.on else noop
                return tracer.start_as_current_span(*args, **kwargs)

        tracers: dict[tuple[Any, ...], SwitchedTracer] = {}

        class SwitchedProvider(ApiTracerProvider):
            def get_tracer(
                self, name: str, version: str | None = None, *args: Any, **kwargs: Any
            ) -> Any:
                key = (name, version)
                tracer = tracers.get(key)
                if tracer is None:
                    tracer = tracers[key] = SwitchedTracer(switch.sdk.get_tracer(name, version))
                return tracer

        self.provider = SwitchedProvider()

    def install(self) -> bool:
        from opentelemetry import trace

        trace.set_tracer_provider(self.provider)
        return trace.get_tracer_provider() is self.provider

    def drain(self) -> None:
        self.sdk.force_flush()
        self.exporter.clear()


_SWITCH: _SpanSwitch | None = None


def _span_switch() -> _SpanSwitch | None:
    """The process's switch (installed once); ``None`` if another provider was already set."""
    global _SWITCH
    if _SWITCH is None:
        switch = _SpanSwitch()
        if not switch.install():
            return None
        _SWITCH = switch
    return _SWITCH


# --- in process -------------------------------------------------------------------------------


def _instrument(kind: str, server: Any) -> Any:
    if kind == "fastmcp":
        import otel_perf.fastmcp

        return otel_perf.fastmcp.instrument(server)
    import otel_perf.mcp

    return otel_perf.mcp.instrument(server)


def _hand_over_queue() -> None:
    """Give the SDK what otel-perf queued (a collection does this; see otel_perf._handoff)."""
    from otel_perf._configure import active_recorder

    recorder = active_recorder()
    if recorder is not None:
        recorder.flush()


async def timed_round(
    call: Callable[[int], Awaitable[object]], calls: int, hand_over: Callable[[], object] | None
) -> float:
    """Microseconds of process CPU per call over ``calls`` awaited ``call(i)``, garbage
    collection off, with ``hand_over()`` (a queue given to the SDK) inside the timing, so that
    a queued record's whole cost falls inside its round. Every variant of both SDK generations
    (see :mod:`benchmarks._request_path_mcp1`) is timed by this one loop."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time_ns()
        for i in range(calls):
            await call(i)
        if hand_over is not None:
            hand_over()
        elapsed = time.process_time_ns() - start
    finally:
        gc.enable()
    return elapsed / calls / 1000.0


def _add_timing(kind: str, server: Any, done: Callable[[float], object]) -> Any:
    """``server`` with a last middleware that times each request and calls ``done(seconds)``:
    nothing else (no error policy, no method label), so the floors below are the least a
    per-request record can cost."""
    if kind == "fastmcp":
        from fastmcp.server.middleware import Middleware

        class TimingMiddleware(Middleware):
            async def on_request(self, context: Any, call_next: Any) -> Any:
                start = perf_counter()
                result = await call_next(context)
                done(perf_counter() - start)
                return result

        server.add_middleware(TimingMiddleware())
        return server

    async def timing_middleware(ctx: Any, call_next: Any) -> Any:
        start = perf_counter()
        result = await call_next(ctx)
        done(perf_counter() - start)
        return result

    server.middleware.append(timing_middleware)
    return server


def _tool_attrs() -> dict[str, str]:
    return {**base.TOOL_ATTRS, n.GEN_AI_TOOL_NAME: "echo"}


def _add_floor(kind: str, server: Any, bare: base.BareSdk) -> Any:
    """``server`` with one inline SDK record per request: the floor of any metrics middleware
    built on the OpenTelemetry SDK that records on the request path (a ``Histogram.record``
    with a tool series' attributes, built once, on a bare SDK provider with otel-perf's views)."""
    return _add_timing(
        kind, server, functools.partial(bare.histogram.record, attributes=_tool_attrs())
    )


class _QueuedRecords:
    """The floor of recording off the request path: each request's record is queued as
    ``(record, seconds, attributes, context)`` and handed to a bare SDK histogram in one batch,
    as otel-perf's queue is (see otel_perf._handoff), with none of otel-perf's own code."""

    def __init__(self, bare: base.BareSdk) -> None:
        self.items: deque[tuple[Any, float, dict[str, str], Any]] = deque()
        self._record = bare.histogram.record

    def queue_one(self) -> Callable[[float], None]:
        """The function a timing wrapper calls with each request's seconds."""
        from opentelemetry.context import get_current

        # The context as otel-perf's queue keeps it (a call outside any span keeps a context
        # that says so), so the floor pays what otel-perf pays for it and no more.
        from otel_perf._handoff import OUTSIDE_ANY_SPAN

        record, append, attrs = self._record, self.items.append, _tool_attrs()

        def queue(seconds: float) -> None:
            append((record, seconds, attrs, get_current() or OUTSIDE_ANY_SPAN))

        return queue

    def add_to(self, kind: str, server: Any) -> Any:
        return _add_timing(kind, server, self.queue_one())

    def hand_over(self) -> None:
        pop = self.items.popleft
        for _ in range(len(self.items)):
            record, seconds, attrs, context = pop()
            record(seconds, attrs, context)


def _client(kind: str, server: Any) -> Any:
    if kind == "fastmcp":
        import fastmcp

        return fastmcp.Client(server)
    import mcp

    return mcp.Client(server)


def _in_process(
    kind: str, *, calls: int, rounds: int, switch: _SpanSwitch | None
) -> dict[str, list[float]]:
    """Per-round microseconds of process CPU per ``tools/call``, for every variant."""
    import anyio

    per_call: dict[str, list[float]] = {name: [] for name in VARIANTS}
    bare = base.BareSdk()
    queue = _QueuedRecords(bare)
    hand_overs = {OTEL_PERF: _hand_over_queue, QUEUED: queue.hand_over}

    async def main() -> None:
        plain = _mcp_servers.build(kind)
        instrumented = _instrument(kind, _mcp_servers.build(kind))
        floor = _add_floor(kind, _mcp_servers.build(kind), bare)
        queued = queue.add_to(kind, _mcp_servers.build(kind))
        async with contextlib.AsyncExitStack() as stack:
            plain_client = await stack.enter_async_context(_client(kind, plain))
            clients = {
                PLAIN: plain_client,
                OTEL_PERF: await stack.enter_async_context(_client(kind, instrumented)),
                FLOOR: await stack.enter_async_context(_client(kind, floor)),
                QUEUED: await stack.enter_async_context(_client(kind, queued)),
                SPANS: plain_client,
            }
            order = [name for name in VARIANTS if name != SPANS or switch is not None]
            rng = random.Random(7)
            for round_index in range(rounds + 1):  # round 0 warms up
                rng.shuffle(order)
                for name in order:
                    client = clients[name]
                    if switch is not None:
                        switch.on = name == SPANS
                    try:
                        us = await timed_round(
                            lambda i, client=client: client.call_tool("echo", {"x": i}),
                            calls,
                            hand_overs.get(name),
                        )
                    finally:
                        if switch is not None:
                            switch.on = False
                            switch.drain()
                    if round_index:
                        per_call[name].append(us)

    try:
        anyio.run(main)
    finally:
        bare.shutdown()
    return per_call


def _profile_shares(kind: str, calls: int) -> dict[str, float]:
    """Shares (%) of the CPU of ``calls`` instrumented round trips, by cProfile.

    ``own``: self time of functions in otel_perf/; ``record``: the SDK's ``Histogram.record``
    and everything below it (the one record otel-perf makes per request, when its queue is
    handed to the SDK at the end, inside the profile); ``rest``: the client,
    the MCP SDK, the event loop. cProfile charges every Python call a fixed cost, which inflates
    code made of many small calls (otel-perf's and the SDK record's alike).
    """
    import anyio

    stats: dict[Any, Any] = {}

    async def main() -> None:
        server = _instrument(kind, _mcp_servers.build(kind))
        async with _client(kind, server) as client:
            for i in range(20):
                await client.call_tool("echo", {"x": i})
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(calls):
                await client.call_tool("echo", {"x": i})
            _hand_over_queue()  # the SDK records of these calls happen here
            profiler.disable()
            stats.update(pstats.Stats(profiler).stats)  # type: ignore[attr-defined]

    anyio.run(main)
    total = sum(entry[2] for entry in stats.values()) or 1.0
    own = sum(entry[2] for (filename, _l, _f), entry in stats.items() if "/otel_perf/" in filename)
    record = sum(
        entry[3]
        for (filename, _l, function), entry in stats.items()
        if function == "record"
        and filename.endswith("opentelemetry/sdk/metrics/_internal/instrument.py")
    )
    return {"own": 100.0 * own / total, "record": 100.0 * record / total}


def _paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    pairs = [a / b for a, b in zip(numerator, denominator, strict=True) if b > 0]
    return statistics.median(pairs) if pairs else float("nan")


def _mcp1_rows(path: Section, *, calls: int, rounds: int) -> None:
    """The mcp 1.x generation (mcp 1.x FastMCP and low-level ``Server``, FastMCP 3), measured
    by :mod:`benchmarks._request_path_mcp1` in ``.venv-mcp1``, plain vs otel-perf."""
    python = ROOT / ".venv-mcp1" / "bin" / "python"
    if not python.exists():
        path.notes.append(
            "The mcp 1.x generation is not measured: .venv-mcp1 is missing "
            "(`python3 dev.py bench` builds it)."
        )
        return
    done = subprocess.run(  # noqa: S603 - this checkout's own environment and module
        [str(python), "-m", "benchmarks._request_path_mcp1", str(calls), str(rounds)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)},
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        path.notes.append(f"The mcp 1.x generation could not be measured: {tail[0]}")
        return
    from benchmarks._request_path_mcp1 import KINDS  # the same variant names as here

    samples: dict[str, dict[str, list[float]]] = json.loads(done.stdout)
    for kind, label in KINDS.items():
        per_call = samples[kind]
        for name in (PLAIN, OTEL_PERF, QUEUED):
            values = per_call[name]
            path.row(f"{label}: {name}", statistics.median(values), "µs", min(values))
        ratio = _paired_ratio(per_call[OTEL_PERF], per_call[PLAIN])
        queued = _paired_ratio(per_call[QUEUED], per_call[PLAIN])
        path.row(f"{label}: otel-perf vs plain", ratio, "x")
        path.row(f"{label}: one queued SDK record vs plain", queued, "x")
        path.row(
            f"{label}: otel-perf vs one queued SDK record",
            _paired_ratio(per_call[OTEL_PERF], per_call[QUEUED]),
            "x",
        )
        path.target(
            Target(
                f"otel-perf vs plain, {label} `tools/call` in process",
                ratio,
                IN_PROCESS_LIMIT,
                detail=f"Measured in .venv-mcp1. In the same rounds, the floor of recording on "
                f"the SDK (one queued SDK record per `tools/call`, timed by a minimal wrapper "
                f"of the request handler, or a last middleware on FastMCP 3) costs "
                f"{queued:.3f}x plain.",
            )
        )


# --- child processes --------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env["METRICS_JSON_PORT"] = "0"  # each instrumented child serves on a free port
    env["PYTHONPATH"] = str(ROOT)  # this checkout's otel_perf, not another installed one
    return env


def run_prefix() -> list[str]:
    """How to start a command under ``otel-perf run`` with this interpreter's installation."""
    script = Path(sys.executable).with_name("otel-perf")
    if script.exists():
        return [str(script), "run", "--"]
    return [sys.executable, "-m", "otel_perf", "run", "--"]


def server_command(kind: str, *, instrumented: bool, queued_record: bool = False) -> list[str]:
    command = [sys.executable, str(SERVER_SCRIPT), kind]
    if queued_record:
        command.append("--queued-record")
    return run_prefix() + command if instrumented else command


class StdioPeer:
    """A child MCP server on pipes, spoken to in newline-delimited JSON-RPC."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        read_timeout_s: float = _READ_TIMEOUT_S,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**_child_env(), **(extra_env or {})},
            cwd=ROOT,
        )
        self._read_timeout_s = read_timeout_s
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._next_id = 0

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False
    ) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if not notify:
            self._next_id += 1
            message["id"] = self._next_id
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        if not self._selector.select(self._read_timeout_s):
            raise TimeoutError("the stdio server did not answer in time")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the stdio server exited (code {self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the stdio server answered an error: {reply['error']}")
        return reply

    def handshake(self) -> None:
        self.initialize()
        self.send("notifications/initialized", notify=True)

    def initialize(self) -> None:
        """Send ``initialize`` and read its answer (the handshake's first half)."""
        self.send(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "otel-perf-bench", "version": "1"},
            },
        )
        self.receive()

    def call(self, x: int) -> None:
        self.send("tools/call", {"name": "echo", "arguments": {"x": x}})
        self.receive()

    def close(self) -> float:
        """Close the pipe, reap the child; returns the CPU seconds it used in its life."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        return self._finish()

    def kill(self) -> float:
        """Kill the child now (SIGKILL: no exit handler runs), reap it; returns the CPU seconds
        it had used until then, every thread's, to the microsecond (``wait4``'s resource use)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        return self._finish()

    def _finish(self) -> float:
        cpu_s = self._reap(deadline=time.monotonic() + 10.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._selector.close()
        return cpu_s

    def _reap(self, deadline: float) -> float:
        # os.wait4, not Popen.wait: it also gives the child's resource usage (user + system
        # CPU of the launcher and the server it exec'd: one process).
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return usage.ru_utime + usage.ru_stime
            if time.monotonic() > deadline:
                self.proc.kill()
                deadline = time.monotonic() + 10.0
            time.sleep(0.005)


@contextlib.contextmanager
def _peer(command: Sequence[str], **options: Any) -> Iterator[StdioPeer]:
    peer = StdioPeer(command, **options)
    try:
        yield peer
    finally:
        peer.close()


def _first_handshake(command: list[str], *, to_exit: bool) -> tuple[float, float]:
    """Wall seconds from spawning ``command`` to its ``initialize`` answer, and CPU seconds.

    The CPU is the process's until that answer (``to_exit=False``: killed the moment it is
    read, so what the target names is measured and nothing after it), or over its whole life
    (``to_exit=True``: stdin closed after the handshake, the process exits as it would when
    its client goes, exit handlers included).
    """
    start = time.perf_counter()
    peer = StdioPeer(command)
    try:
        peer.initialize()
    except BaseException:
        peer.kill()
        raise
    wall_s = time.perf_counter() - start
    if not to_exit:
        return wall_s, peer.kill()
    try:
        peer.send("notifications/initialized", notify=True)
    except BaseException:
        peer.kill()
        raise
    return wall_s, peer.close()


def _process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far; ``None`` without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class StdioSamples:
    """Per round (one fresh child of each variant): wall and server CPU seconds over the round's
    timed calls, and how many calls that was."""

    wall_s: dict[str, list[float]]
    server_cpu_s: dict[str, list[float]]
    calls_per_round: int

    def per_call_us(self, name: str) -> list[float]:
        """Wall microseconds per call, one value per round."""
        return [value / self.calls_per_round * 1e6 for value in self.wall_s[name]]

    def total_ratio(self, numerator: str, denominator: str) -> float:
        """Total wall time of ``numerator`` over that of ``denominator``, all rounds."""
        return sum(self.wall_s[numerator]) / sum(self.wall_s[denominator])

    def round_ratios(self, numerator: str, denominator: str) -> list[float]:
        pairs = zip(self.wall_s[numerator], self.wall_s[denominator], strict=True)
        return [a / b for a, b in pairs]

    def cpu_us_per_call(self, name: str) -> float | None:
        """Server CPU microseconds per call over all rounds (``None`` without /proc)."""
        values = self.server_cpu_s[name]
        if len(values) != len(self.wall_s[name]):
            return None
        return sum(values) / (len(values) * self.calls_per_round) * 1e6


def _stdio_commands(kind: str) -> dict[str, list[str]]:
    """The three stdio servers compared: plain, under ``otel-perf run``, and the floor."""
    return {
        PLAIN: server_command(kind, instrumented=False),
        OTEL_PERF: server_command(kind, instrumented=True),
        QUEUED: server_command(kind, instrumented=False, queued_record=True),
    }


#: Untimed calls each fresh child answers first (its imports, caches and, under ``otel-perf
#: run``, the SDK's start after the first measurement, are then behind it).
_STDIO_WARM_UP_CALLS = 200


def _stdio_round_trips(kind: str, *, rounds: int, blocks: int, calls: int) -> StdioSamples:
    """``tools/call`` round trips over the pipes of a plain child, an ``otel-perf run`` child
    and a child with one queued SDK record per request (the floor).

    Each round starts a fresh child of each variant: one process is a few per cent faster or
    slower than another of the same program (address-space layout, hash seed), which no number
    of blocks in one process averages out. In a round the three children answer ``blocks``
    blocks of ``calls`` calls in turn. The figures are totals over every block: both the floor
    and otel-perf hand their queue to the SDK in batches (every 512 requests; at 1,024 waiting
    or at a collection), so a statistic that drops the slow blocks (a median) would drop the
    SDK's work with them; and a child's timed calls must be a few thousand, or its batches
    would fall after them (1,024 calls would hold one of otel-perf's hand-overs, or none).
    """
    commands = _stdio_commands(kind)
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for round_index in range(rounds):
        rng = random.Random(round_index)
        names = list(wall)
        with contextlib.ExitStack() as stack:
            peers = {name: stack.enter_context(_peer(commands[name])) for name in names}
            for name in names:
                peer = peers[name]
                peer.handshake()
                for i in range(_STDIO_WARM_UP_CALLS):
                    peer.call(i)
            round_wall = dict.fromkeys(names, 0.0)
            round_cpu: dict[str, float | None] = dict.fromkeys(names, 0.0)
            for _block in range(blocks):
                rng.shuffle(names)
                for name in names:
                    peer = peers[name]
                    cpu_before = _process_cpu_s(peer.proc.pid)
                    start = time.perf_counter()
                    for i in range(calls):
                        peer.call(i)
                    round_wall[name] += time.perf_counter() - start
                    cpu_after = _process_cpu_s(peer.proc.pid)
                    used = round_cpu[name]
                    if cpu_before is None or cpu_after is None or used is None:
                        round_cpu[name] = None
                    else:
                        round_cpu[name] = used + cpu_after - cpu_before
        for name, walls in wall.items():
            walls.append(round_wall[name])
            used = round_cpu[name]
            if used is not None:
                cpu[name].append(used)
    return StdioSamples(wall, cpu, blocks * calls)


def _stdio_instruction_rows(path: Section, names: dict[str, str], calls: int) -> str:
    """The stdio server's instructions per round trip (rows); a sentence for the target's note."""
    if not calls:
        path.notes.append(
            "Stdio instructions per round trip: not counted in quick mode (under valgrind)."
        )
        return ""
    if not _stdio_instructions.available():
        path.notes.append("Stdio instructions per round trip: not counted (no valgrind).")
        return ""
    counted = _stdio_instructions.counts(_stdio_commands("mcpserver"), calls)
    totals = {name: sum(per_thread.values()) for name, per_thread in counted.items()}
    for name, shown in names.items():
        path.row(f"stdio MCPServer: server instructions per call, {shown}", totals[name], "instr")
        path.row(
            f"stdio MCPServer: server instructions per call, {shown}, main thread",
            counted[name][1],
            "instr",
        )
    ours, floor = totals[OTEL_PERF] / totals[PLAIN], totals[QUEUED] / totals[PLAIN]
    path.row("stdio MCPServer: otel-perf run vs plain, by count", ours, "x")
    path.row(f"stdio MCPServer: {QUEUED} vs plain, by count", floor, "x")
    path.row(
        f"stdio MCPServer: otel-perf run vs {QUEUED}, by count",
        totals[OTEL_PERF] / totals[QUEUED],
        "x",
    )
    return (
        f" Counted by callgrind ({calls:,} round trips, every thread of the server, "
        f"`benchmarks/_stdio_instructions.py`): otel-perf run {ours:.3f}x plain, the floor "
        f"{floor:.3f}x."
    )


def _printed_seconds(code: str) -> float:
    """The last line ``code`` prints in a fresh interpreter of ours, as a number."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return float(done.stdout.strip().splitlines()[-1])


def _import_seconds(statement: str) -> float:
    """Seconds ``statement`` (an import) takes in a fresh interpreter, timed inside it."""
    return _printed_seconds(
        f"import time\n_t = time.perf_counter()\n{statement}\nprint(time.perf_counter() - _t)"
    )


#: What otel-perf's pipeline loads of the OpenTelemetry SDK (the API is already loaded by
#: mcp 2.x). Timed after the plain server's own imports, so only what the SDK adds counts.
_SDK_AFTER_SERVER = """
import time
import benchmarks._mcp_servers
from mcp.server import MCPServer
import mcp.server.stdio
_t = time.process_time()
import opentelemetry.sdk.metrics, opentelemetry.sdk.metrics.export
import opentelemetry.sdk.metrics.view, opentelemetry.sdk.resources
print(time.process_time() - _t)
"""


def _sdk_import_after_server_s() -> float:
    """CPU seconds the SDK's metrics modules take to import in a server that has its own."""
    return _printed_seconds(_SDK_AFTER_SERVER)


def _interleaved(subjects: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in subjects}
    order = list(subjects)
    rng = random.Random(11)
    for _ in range(runs):
        rng.shuffle(order)
        for name in order:
            out[name].append(subjects[name]())
    return out


# --- the sections -----------------------------------------------------------------------------


def run(
    *,
    calls: int,
    rounds: int,
    stdio_rounds: int,
    stdio_blocks: int,
    stdio_calls: int,
    stdio_instruction_calls: int,
    handshakes: int,
    imports: int,
    profile_calls: int,
    kinds: Sequence[str] = tuple(KIND_LABELS),
) -> list[Section]:
    path = Section(
        "The MCP request path",
        "`tools/call` round trips through an SDK client and an in-memory server, per call "
        f"(process CPU, {calls} calls per variant and round, {rounds} interleaved rounds): plain, "
        "instrumented by otel-perf (its queued measurements are handed to the SDK inside each of "
        "its timed rounds; its endpoint off, so that no periodic collection lands in a round), "
        "with one bare SDK record inline in a middleware, with one SDK record "
        "queued by a minimal middleware and handed over the same way (the floor of recording "
        "each request through the OpenTelemetry SDK), and with the SDK's own spans recorded by "
        "an SDK `TracerProvider`. "
        "Ratios are medians of per-round ratios. "
        f"Then a real stdio round trip: {stdio_rounds} rounds, each starting a fresh child "
        "`python server.py`, a child `otel-perf run -- python server.py` and a child "
        "`python server.py` with one SDK record per request queued by a minimal middleware "
        f"(the floor), which answer {_STDIO_WARM_UP_CALLS} calls untimed and then "
        f"{stdio_blocks} blocks of {stdio_calls} calls each over their pipes, in turn (wall "
        "time). Its ratios are of total times over every block: the floor and otel-perf hand "
        "their queues to the SDK in batches, which a median of blocks would leave out.",
    )
    switch = _span_switch()
    # The endpoint off: its history sampler collects every 5 s on its own thread, which would
    # add a collection to whichever round runs then and replay the queue outside the profiled
    # thread (the profile's SDK-record share then drops to nothing). Recording is the same.
    on = _runtimes.build({"METRICS_JSON_ENABLED": "false"})
    try:
        _runtimes.activate(on)
        for kind in kinds:
            label = KIND_LABELS[kind]
            samples = _in_process(kind, calls=calls, rounds=rounds, switch=switch)
            for name in VARIANTS:
                if samples[name]:
                    path.row(
                        f"{label}: {name}",
                        statistics.median(samples[name]),
                        "µs",
                        min(samples[name]),
                    )
            ours = _paired_ratio(samples[OTEL_PERF], samples[PLAIN])
            inline = _paired_ratio(samples[FLOOR], samples[PLAIN])
            queued = _paired_ratio(samples[QUEUED], samples[PLAIN])
            path.row(f"{label}: otel-perf vs plain", ours, "x")
            path.row(f"{label}: one bare SDK record vs plain", inline, "x")
            path.row(f"{label}: one queued SDK record vs plain", queued, "x")
            path.row(
                f"{label}: otel-perf vs one queued SDK record",
                _paired_ratio(samples[OTEL_PERF], samples[QUEUED]),
                "x",
            )
            if samples[SPANS]:
                spans = _paired_ratio(samples[SPANS], samples[PLAIN])
                path.row(f"{label}: SDK spans vs plain", spans, "x")
            shares = _profile_shares(kind, profile_calls)
            path.row(f"{label}: profile, otel-perf's own code", shares["own"], "%")
            path.row(f"{label}: profile, the SDK record", shares["record"], "%")
            path.target(
                Target(
                    f"otel-perf vs plain, {label} `tools/call` in process",
                    ours,
                    IN_PROCESS_LIMIT,
                    detail=f"In the same rounds, the floor of recording on the SDK (one queued "
                    f"SDK record handed over in a batch, no otel-perf code) costs {queued:.3f}x "
                    f"plain, and one bare SDK record inline {inline:.3f}x; by cProfile, of an "
                    f"instrumented round trip {shares['record']:.1f} % is the SDK record and "
                    f"{shares['own']:.1f} % otel-perf's own code.",
                )
            )
    finally:
        _runtimes.release(on)
    _mcp1_rows(path, calls=calls, rounds=rounds)
    stdio = _stdio_round_trips(
        "mcpserver", rounds=stdio_rounds, blocks=stdio_blocks, calls=stdio_calls
    )
    stdio_names = {PLAIN: "plain", OTEL_PERF: "otel-perf run", QUEUED: QUEUED}
    for name, shown in stdio_names.items():
        values = stdio.per_call_us(name)
        path.row(f"stdio MCPServer: {shown}", statistics.median(values), "µs", min(values))
    stdio_ratio = stdio.total_ratio(OTEL_PERF, PLAIN)
    stdio_floor = stdio.total_ratio(QUEUED, PLAIN)
    ours_rounds = stdio.round_ratios(OTEL_PERF, PLAIN)
    path.row("stdio MCPServer: otel-perf run vs plain", stdio_ratio, "x")
    path.row(f"stdio MCPServer: {QUEUED} vs plain", stdio_floor, "x")
    path.row(
        f"stdio MCPServer: otel-perf run vs {QUEUED}", stdio.total_ratio(OTEL_PERF, QUEUED), "x"
    )
    cpu_per_call = {name: stdio.cpu_us_per_call(name) for name in stdio_names}
    for name, shown in stdio_names.items():
        cpu_us = cpu_per_call[name]
        if cpu_us is not None:
            path.row(f"stdio MCPServer: server CPU per call, {shown}", cpu_us, "µs")
    cpu_plain, cpu_ours, cpu_queued = (cpu_per_call[name] for name in stdio_names)
    cpu_text = ""
    if cpu_plain and cpu_ours is not None and cpu_queued is not None:
        cpu_text = (
            f" By server CPU (every thread, from /proc): otel-perf run {cpu_ours / cpu_plain:.3f}x "
            f"plain, the floor {cpu_queued / cpu_plain:.3f}x."
        )
    count_text = _stdio_instruction_rows(path, stdio_names, stdio_instruction_calls)
    path.target(
        Target(
            "`otel-perf run` vs plain, stdio `tools/call` round trip",
            stdio_ratio,
            STDIO_LIMIT,
            detail="Total wall time of every timed round trip, client and server in separate "
            f"processes, over {stdio_rounds} rounds of fresh children (per round: "
            f"{min(ours_rounds):.3f}x to {max(ours_rounds):.3f}x). In the same blocks, the floor "
            "(a plain server with one SDK record per request, queued by a minimal middleware and "
            f"handed over every {_mcp_servers.QUEUED_HAND_OVER_EVERY} requests) costs "
            f"{stdio_floor:.3f}x plain.{cpu_text}{count_text}",
        )
    )
    if switch is None:
        path.notes.append(
            "SDK spans not measured: another tracer provider was already installed in this process."
        )

    # An installed package has its bytecode compiled at install time (pip does it), as the SDK's
    # has here; a source checkout run with PYTHONDONTWRITEBYTECODE=1 would compile otel_perf
    # from source in every fresh interpreter and bill that to start-up.
    compileall.compile_dir(ROOT / "otel_perf", quiet=1)
    startup = Section(
        "Start-up",
        f"Each figure is the median of {imports} (imports) or {handshakes} (handshakes) fresh "
        "interpreters, the subjects of each pair started alternately. An import is timed inside "
        "the interpreter around the import statement; a handshake is the wall time from "
        "spawning the stdio server to its `initialize` response. otel_perf's bytecode is compiled "
        "first, as installing a package does.",
    )
    sdk = "import opentelemetry.sdk.metrics"
    api = "from otel_perf import track_tool"
    timed = _interleaved(
        {
            "import otel_perf": lambda: _import_seconds("import otel_perf"),
            api: lambda: _import_seconds(api),
            sdk: lambda: _import_seconds(sdk),
        },
        imports,
    )
    for name, values in timed.items():
        ms = [v * 1000.0 for v in values]
        startup.row(name, statistics.median(ms), "ms", min(ms))
    startup.target(
        Target(
            "`import otel_perf` vs `import opentelemetry.sdk.metrics`",
            _paired_ratio(timed["import otel_perf"], timed[sdk]),
            IMPORT_LIMIT,
        )
    )
    startup.target(
        Target(
            "`from otel_perf import track_tool` vs `import opentelemetry.sdk.metrics`",
            _paired_ratio(timed[api], timed[sdk]),
            IMPORT_LIMIT,
            detail="`import otel_perf` loads each public name on first use; this is what a "
            "server that decorates its tools pays at start-up.",
        )
    )
    plain_cmd = server_command("mcpserver", instrumented=False)
    ours_cmd = server_command("mcpserver", instrumented=True)
    walls: dict[str, list[float]] = {"plain": [], "run": []}
    cpus: dict[str, list[float]] = {"plain": [], "run": []}
    lives: dict[str, list[float]] = {"plain": [], "run": []}
    order = [("plain", plain_cmd), ("run", ours_cmd)]
    for index in range(handshakes):
        random.Random(index).shuffle(order)
        for key, command in order:
            wall_s, cpu_s = _first_handshake(command, to_exit=False)
            walls[key].append(wall_s * 1000.0)
            cpus[key].append(cpu_s * 1000.0)
    for index in range(max(1, handshakes // 2)):
        random.Random(1000 + index).shuffle(order)
        for key, command in order:
            lives[key].append(_first_handshake(command, to_exit=True)[1] * 1000.0)
    sdk_import = [_sdk_import_after_server_s() * 1000.0 for _ in range(max(1, imports // 2))]
    for label, values in (
        ("first handshake, wall: python server.py", walls["plain"]),
        ("first handshake, wall: otel-perf run -- python server.py", walls["run"]),
        ("CPU to the first handshake: python server.py", cpus["plain"]),
        ("CPU to the first handshake: otel-perf run -- python server.py", cpus["run"]),
        ("CPU over the whole life: python server.py", lives["plain"]),
        ("CPU over the whole life: otel-perf run -- python server.py", lives["run"]),
    ):
        startup.row(label, statistics.median(values), "ms", min(values))
    added_wall = statistics.median(b - a for a, b in zip(walls["plain"], walls["run"], strict=True))
    added_cpu = statistics.median(b - a for a, b in zip(cpus["plain"], cpus["run"], strict=True))
    added_life = statistics.median(b - a for a, b in zip(lives["plain"], lives["run"], strict=True))
    sdk_ms = statistics.median(sdk_import)
    startup.row("first handshake, wall: added by otel-perf run", added_wall, "ms")
    startup.row("CPU to the first handshake: added by otel-perf run", added_cpu, "ms")
    startup.row("CPU over the whole life: added by otel-perf run", added_life, "ms")
    startup.row(
        "the OpenTelemetry SDK's import by itself (after the server's own)",
        sdk_ms,
        "ms",
        min(sdk_import),
    )
    startup.target(
        Target(
            "`otel-perf run`: time added to a stdio server's first handshake (CPU)",
            added_cpu,
            HANDSHAKE_LIMIT_MS,
            unit="ms",
            detail="Start-up is single-threaded, CPU-bound work (imports, then the endpoint "
            "thread), so on an idle machine the CPU it adds is what it adds to the wall time; on "
            "this shared machine a fresh interpreter's wall time varies by far more than 50 ms, "
            "so the target is judged on the process's CPU (user + system of every thread, "
            "launcher and server being one process) until its `initialize` answer: the process "
            "is killed the moment the answer is read, and its resource use read as it is "
            "reaped. Under `otel-perf run` the OpenTelemetry SDK starts 50 ms after the first "
            f"measurement (its import alone takes {sdk_ms:.1f} ms, timed in a process that has "
            "already imported the server's own modules), so that work is not in the handshake: "
            "it moved after it, and the whole-life rows, which also count the exit (the last "
            "hand-over to the server's group), show it.",
        )
    )
    return [path, startup]
