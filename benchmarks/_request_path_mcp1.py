"""The in-process request path on the mcp 1.x generation, run in ``.venv-mcp1``.

mcp 1.x (and FastMCP 3.x on it) cannot share an environment with mcp 2.x, so the harness runs
this module with the interpreter of ``.venv-mcp1`` (``python3 dev.py test`` and
``python3 dev.py bench`` build it) and reads its figures from stdout as JSON:
``{kind: {"plain": [...], "otel-perf": [...], "one queued SDK record": [...]}}``, microseconds
of process CPU per ``tools/call`` in each round. The rounds are interleaved as in
:mod:`benchmarks._request_path`; the otel-perf server's queue is handed to the SDK inside each
of its rounds.

The third variant, ``one queued SDK record``, is the floor of recording each request through
the OpenTelemetry SDK off the request path, as in :mod:`benchmarks._request_path`: a minimal
timing wrapper queues one SDK record per ``tools/call``, handed to a bare SDK histogram at the
end of the round. mcp 1.x has no middleware list, so on its servers the wrapper wraps the
low-level server's ``tools/call`` request handler (where otel-perf's own 1.x hooks sit, see
``otel_perf._integrations.mcp_v1``); on FastMCP 3 it is a last middleware, as on FastMCP 4.

    .venv-mcp1/bin/python -m benchmarks._request_path_mcp1 CALLS ROUNDS
"""

import contextlib
import json
import random
import sys
import time
from typing import Any

#: Kind -> label, in report order.
KINDS = {
    "fastmcp1": "mcp 1.x FastMCP",
    "lowlevel1": "mcp 1.x low-level Server",
    "fastmcp3": "FastMCP 3",
}
PLAIN = "plain"
OTEL_PERF = "otel-perf"
QUEUED = "one queued SDK record"
VARIANTS = (PLAIN, OTEL_PERF, QUEUED)


def build(kind: str) -> Any:
    """A server of ``kind`` with one tool, ``echo(x)``."""
    if kind == "fastmcp1":
        from mcp.server.fastmcp import FastMCP

        server = FastMCP("bench-fastmcp1", log_level="CRITICAL")

        @server.tool()
        async def echo(x: int) -> int:
            return x

        return server
    if kind == "fastmcp3":
        from fastmcp import FastMCP as FastMCP3

        server3: Any = FastMCP3("bench-fastmcp3")

        @server3.tool(name="echo")
        async def echo3(x: int) -> int:
            return x

        return server3
    from mcp import types
    from mcp.server.lowlevel import Server

    lowlevel: Any = Server("bench-lowlevel1")

    @lowlevel.list_tools()  # type: ignore[misc, no-untyped-call]
    async def list_tools() -> list[types.Tool]:
        schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
        return [types.Tool(name="echo", inputSchema=schema)]

    @lowlevel.call_tool()  # type: ignore[misc]
    async def call_tool(name: str, arguments: dict[str, Any]) -> list[types.TextContent]:
        return [types.TextContent(type="text", text=str(arguments.get("x")))]

    return lowlevel


@contextlib.asynccontextmanager
async def connect(kind: str, server: Any) -> Any:
    """An in-process client of ``server`` with ``call(x)``, as each SDK's own tests connect."""
    if kind == "fastmcp3":
        import fastmcp

        async with fastmcp.Client(server) as client:

            async def call3(x: int) -> None:
                await client.call_tool("echo", {"x": x})

            yield call3
        return
    from mcp.shared.memory import create_connected_server_and_client_session

    lowlevel = server._mcp_server if kind == "fastmcp1" else server
    async with create_connected_server_and_client_session(lowlevel) as session:

        async def call(x: int) -> None:
            await session.call_tool("echo", {"x": x})

        yield call


def add_timing(kind: str, server: Any, done: Any) -> Any:
    """``server`` with a minimal wrapper that times each ``tools/call`` and calls
    ``done(seconds)``: a last middleware on FastMCP 3, the wrapped request handler on mcp 1.x."""
    if kind == "fastmcp3":
        from benchmarks._request_path import _add_timing

        return _add_timing("fastmcp", server, done)
    from mcp import types

    lowlevel = server._mcp_server if kind == "fastmcp1" else server
    handler = lowlevel.request_handlers[types.CallToolRequest]

    async def timed(request: Any) -> Any:
        start = time.perf_counter()
        result = await handler(request)
        done(time.perf_counter() - start)
        return result

    lowlevel.request_handlers[types.CallToolRequest] = timed
    return server


def measure(kind: str, calls: int, rounds: int) -> dict[str, list[float]]:
    import anyio

    from benchmarks._baselines import BareSdk
    from benchmarks._request_path import (
        _hand_over_queue,
        _instrument,
        _QueuedRecords,
        timed_round,
    )

    per_call: dict[str, list[float]] = {name: [] for name in VARIANTS}
    # FastMCP 3 is instrumented as FastMCP 4 is; both 1.x servers through otel_perf.mcp.
    instrumented_as = "fastmcp" if kind == "fastmcp3" else kind
    bare = BareSdk()
    queue = _QueuedRecords(bare)
    hand_overs = {OTEL_PERF: _hand_over_queue, QUEUED: queue.hand_over}

    async def main() -> None:
        servers = {
            PLAIN: build(kind),
            OTEL_PERF: _instrument(instrumented_as, build(kind)),
            QUEUED: add_timing(kind, build(kind), queue.queue_one()),
        }
        async with contextlib.AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(connect(kind, server))
                for name, server in servers.items()
            }
            order = list(clients)
            rng = random.Random(7)
            for round_index in range(rounds + 1):  # round 0 warms up
                rng.shuffle(order)
                for name in order:
                    us = await timed_round(clients[name], calls, hand_overs.get(name))
                    if round_index:
                        per_call[name].append(us)

    try:
        anyio.run(main)
    finally:
        bare.shutdown()
    return per_call


def main(argv: list[str]) -> int:
    calls, rounds = int(argv[0]), int(argv[1])
    import otel_perf

    otel_perf.configure(json_enabled=False)
    try:
        out = {kind: measure(kind, calls, rounds) for kind in KINDS}
    finally:
        otel_perf.shutdown()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
