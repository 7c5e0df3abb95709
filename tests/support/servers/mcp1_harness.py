"""Drive mcp 1.x servers with real 1.x clients and read their otel-perf metrics.

- ``memory``: ``ClientSession`` connected in-process through the SDK's own memory streams
  (``create_connected_server_and_client_session``, which calls the server's ``run()``);
- ``http``: streamable HTTP under uvicorn on 127.0.0.1 (a free port) in a thread, with the
  SDK's ``streamablehttp_client``;
- ``stdio``: the server as a child process under ``otel-perf run``, spawned by
  ``stdio_client``; the child serves its own metrics endpoint (port 0, URL from
  ``--url-file``).

FastMCP 3.x servers get ``fastmcp.Client`` instead of ``ClientSession`` (same SDK underneath).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import otel_perf

from . import harness, mcp1_apps

HERE = Path(__file__).resolve().parent
OTEL_PERF = str(Path(sys.executable).parent / "otel-perf")
PARALLEL = 4

#: How each kind answers a crashing tool: an isError result (all three fold it).
CRASH_OUTCOME = {"fastmcp1": "is_error", "lowlevel1": "is_error", "fastmcp3": "is_error"}


@asynccontextmanager
async def connect(kind: str, transport: str, target: Any) -> AsyncIterator[Any]:
    """A real 1.x client on ``target`` (a server, a URL or ``StdioServerParameters``)."""
    if kind == "fastmcp3":
        import fastmcp
        from fastmcp.client.transports import StdioTransport

        if transport == "stdio":
            target = StdioTransport(
                command=target.command, args=target.args, env=target.env, keep_alive=False
            )
        async with fastmcp.Client(target) as client:
            yield client
        return
    from mcp import ClientSession

    async with AsyncExitStack() as stack:
        if transport == "memory":
            from mcp.shared.memory import create_connected_server_and_client_session

            session = await stack.enter_async_context(
                create_connected_server_and_client_session(
                    mcp1_apps.lowlevel_of(kind, target), raise_exceptions=False
                )
            )
            yield session
            return
        if transport == "sse":
            from mcp.client.sse import sse_client

            read, write = await stack.enter_async_context(sse_client(target))
        elif transport == "http":
            from mcp.client.streamable_http import streamable_http_client

            read, write, _ = await stack.enter_async_context(streamable_http_client(target))
        else:
            from mcp.client.stdio import stdio_client

            read, write = await stack.enter_async_context(stdio_client(target))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


async def call(kind: str, client: Any, name: str, arguments: dict[str, Any]) -> str:
    """Call a tool: ``"ok"``, ``"is_error"`` (isError result) or ``"raised"`` (JSON-RPC error)."""
    from mcp.shared.exceptions import McpError

    try:
        if kind == "fastmcp3":
            result = await client.call_tool(name, arguments, raise_on_error=False)
            return "is_error" if result.is_error else "ok"
        result = await client.call_tool(name, arguments)
    except McpError:
        return "raised"
    return "is_error" if result.isError else "ok"


def local_read() -> Callable[[], Awaitable[dict[str, Any]]]:
    async def read() -> dict[str, Any]:
        return await asyncio.to_thread(otel_perf.get_all_metrics)

    return read


def url_file_read(url_file: Path) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def read() -> dict[str, Any]:
        base = await harness.wait_for_file(url_file)
        document: dict[str, Any] = await asyncio.to_thread(harness.fetch_json, f"{base}/metrics")
        return document

    return read


def stdio_params(command: list[str]) -> Any:
    from mcp import StdioServerParameters

    return StdioServerParameters(command=command[0], args=command[1:], env=harness.child_env({}))


def under_otel_perf_run(url_file: Path, *command: str) -> list[str]:
    """``otel-perf run --url-file URL_FILE -- COMMAND``: the zero-code way, unmodified server."""
    return [OTEL_PERF, "run", "--url-file", str(url_file), "--", *command]


def plain_server_command(kind: str) -> list[str]:
    return [sys.executable, str(HERE / "mcp1_apps.py"), kind]


async def run_scenario(
    kind: str, client: Any, read: Callable[[], Awaitable[dict[str, Any]]], tmp_path: Path
) -> dict[str, Any]:
    """The workload of tests/support/servers/harness.py on a 1.x server, with its checks.

    3 good calls, 2 crashes, 1 isError result, then PARALLEL calls held in flight. Returns the
    document read while the client is still connected.
    """
    release = tmp_path / f"release-{kind}"
    for x in range(3):
        assert await call(kind, client, "ok", {"x": x}) == "ok"
    for _ in range(2):
        assert await call(kind, client, "boom", {}) == CRASH_OUTCOME[kind]
    assert await call(kind, client, "flag_error", {}) == "is_error"
    outcomes: list[str] = []

    async def gated() -> None:
        outcomes.append(await call(kind, client, "gate", {"path": str(release)}))

    import anyio

    async with anyio.create_task_group() as group:
        for _ in range(PARALLEL):
            group.start_soon(gated)
        during = await harness.wait_until(
            read,
            lambda d: d["system_metrics"]["concurrent_requests"] == PARALLEL,
            f"{PARALLEL} concurrent requests",
        )
        assert during["system_metrics"]["active_sessions"] == 1
        release.write_text("go")
    assert outcomes == ["ok"] * PARALLEL
    settled = await harness.wait_until(
        read, lambda d: d["system_metrics"]["concurrent_requests"] == 0, "no request in flight"
    )
    assert settled["system_metrics"]["active_sessions"] == 1
    check_tools(settled)
    return settled


def check_tools(document: dict[str, Any]) -> None:
    tools = document["tool_metrics"]
    ok = tools["ok"]
    assert (ok["total_calls"], ok["failed_calls"], ok["error_types"]) == (3, 0, {})
    boom = tools["boom"]
    assert (boom["total_calls"], boom["failed_calls"]) == (2, 2)
    assert boom["error_types"] == {"ValueError": 2}
    assert tools["flag_error"]["error_types"] == {"tool_error": 1}
    gate = tools["gate"]
    assert (gate["total_calls"], gate["failed_calls"]) == (PARALLEL, 0)
    assert gate["max_latency_ms"] >= gate["p50_latency_ms"] >= gate["min_latency_ms"] > 0.0


def operation_points() -> dict[tuple[tuple[str, str], ...], int]:
    """Counts of ``mcp.server.operation.duration`` per method / tool / error type, from the
    SDK's data (other attributes, such as the status code and transport, are summed over)."""
    from otel_perf import _semconv as n

    kept = {n.MCP_METHOD_NAME, n.GEN_AI_TOOL_NAME, n.ERROR_TYPE}
    data = otel_perf.configure().pipeline.collect()
    out: dict[tuple[tuple[str, str], ...], int] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == n.MCP_SERVER_OPERATION_DURATION:
                    for point in metric.data.data_points:
                        key = tuple(
                            sorted((k, str(v)) for k, v in point.attributes.items() if k in kept)
                        )
                        out[key] = out.get(key, 0) + point.count
    return out


def attrs(**kwargs: str) -> tuple[tuple[str, str], ...]:
    from otel_perf import _semconv as n

    names = {"method": n.MCP_METHOD_NAME, "tool": n.GEN_AI_TOOL_NAME, "error": n.ERROR_TYPE}
    return tuple(sorted((names[k], v) for k, v in kwargs.items()))


def metric_points(name: str) -> list[tuple[dict[str, str], int]]:
    """(attributes, count) of every point of the histogram ``name``, from the SDK's data."""
    data = otel_perf.configure().pipeline.collect()
    out: list[tuple[dict[str, str], int]] = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        attributes = {k: str(v) for k, v in point.attributes.items()}
                        out.append((attributes, point.count))
    return out
