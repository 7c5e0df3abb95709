"""MCP numbers that are true on unmodified servers from PyPI, with real clients and transports.

- mcp-server-time over stdio, started by ``otel-perf run`` exactly as an MCP client would;
- mcp-server-git (its own reject-unknown-tool middleware passed to the constructor) over
  streamable HTTP under uvicorn;
- mcp-server-fetch, a plain ``MCPServer`` and FastMCP 4 (over streamable HTTP) flooded with
  made-up tool names;
- tools registered at run time, and server middleware added before or after otel-perf's.

Each checks what an operator reads: the real error cause, client mistakes kept out of failures
(but counted, with their JSON-RPC code), only registered tools as names, every rejected call
still one request, and the semantic-convention attributes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from mcp import MCPError, StdioServerParameters

import otel_perf
import otel_perf.mcp
from otel_perf import _semconv as n
from tests.support.servers import apps, harness


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a test URL
        return str(response.read().decode())


def check_sums(document: dict[str, Any]) -> None:
    """successful + failed + client errors = total, for every tool."""
    for name, entry in document["tool_metrics"].items():
        parts = entry["successful_calls"] + entry["failed_calls"] + entry["client_errors"]
        assert parts == entry["total_calls"], name


async def call(client: Any, name: str, arguments: dict[str, Any]) -> str:
    try:
        result = await client.call_tool(name, arguments)
    except MCPError as exc:
        return f"rpc {exc.error.code}"
    return "is_error" if result.is_error else "ok"


def operation_points() -> dict[tuple[tuple[str, str], ...], int]:
    data = otel_perf.configure().pipeline.collect()
    assert data is not None
    out: dict[tuple[tuple[str, str], ...], int] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    pairs = sorted((k, str(v)) for k, v in point.attributes.items())
                    key = (("metric", metric.name), *pairs)
                    out[key] = out.get(key, 0) + int(getattr(point, "count", 0))
    return out


async def test_time_server_over_stdio_under_otel_perf_run(tmp_path: Path) -> None:
    url_file = tmp_path / "url.txt"
    command = [sys.executable, "-m", "otel_perf", "run", "--url-file", str(url_file), "--"]
    command += [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
    params = StdioServerParameters(command=command[0], args=command[1:], env=harness.child_env({}))
    async with mcp.Client(params, mode="legacy") as client:
        assert await call(client, "get_current_time", {"timezone": "UTC"}) == "ok"
        assert await call(client, "get_current_time", {"timezone": "Europe/Warsaw"}) == "ok"
        # the tool's ToolError wraps zoneinfo's error, and MCPServer wraps that again
        assert await call(client, "get_current_time", {"timezone": "Mars/Olympus"}) == "is_error"
        # a ToolError the tool raised from nothing is its own cause
        assert await call(client, "get_current_time", {"timezone": ""}) == "is_error"
        # client mistakes, delivered as isError results by MCPServer
        assert await call(client, "get_current_time", {"timezone": 5}) == "is_error"
        assert await call(client, "get_current_time", {}) == "is_error"
        # the server's own middleware rejects unknown tools with -32602
        for i in range(3):
            assert await call(client, f"delete_everything_{i}", {}) == "rpc -32602"
        base = (await harness.wait_for_file(url_file)).strip()
        document = await anyio.to_thread.run_sync(harness.fetch_json, f"{base}/metrics")
        prometheus = await anyio.to_thread.run_sync(fetch_text, f"{base}/metrics/prometheus")
    tools = document["tool_metrics"]
    assert set(tools) == {"get_current_time", n.OTHER}
    current = tools["get_current_time"]
    assert current["error_types"] == {"ZoneInfoNotFoundError": 1, "ToolError": 1}
    assert (current["successful_calls"], current["failed_calls"]) == (2, 2)
    assert current["client_errors"] == 2
    assert tools[n.OTHER] == {**tools[n.OTHER], "client_errors": 3, "failed_calls": 0}
    check_sums(document)
    assert 'gen_ai_operation_name="execute_tool"' in prometheus
    assert 'network_transport="pipe"' in prometheus
    assert 'rpc_response_status_code="-32602"' in prometheus
    assert "error_type=" in prometheus


@asynccontextmanager
async def git_server_over_http(repository: Path) -> AsyncIterator[str]:
    from mcp_server_git.server import create_server

    server = otel_perf.mcp.instrument(create_server(repository))
    with harness.uvicorn_server(apps.http_app("mcpserver", server)) as base:
        yield f"{base}/mcp"


def make_repository(path: Path) -> Path:
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    (path / "a.txt").write_text("a\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    return path


async def test_git_server_over_http_counts_what_its_own_middleware_rejects(
    tmp_path: Path,
) -> None:
    otel_perf.configure()
    repository = make_repository(tmp_path / "repo")
    async with git_server_over_http(repository) as url:
        async with mcp.Client(url, mode="legacy") as client:
            assert await call(client, "git_status", {"repo_path": str(repository)}) == "ok"
            show = {"repo_path": str(repository), "revision": "no-such-revision"}
            assert await call(client, "git_show", show) == "is_error"
            for i in range(5):  # mcp-server-git's constructor middleware rejects these
                assert await call(client, f"made_up_{i}", {}) == "rpc -32602"
        document = await harness.wait_until(
            harness.local_read(),
            lambda d: d["system_metrics"]["active_sessions"] == 0,
            "the session to end",
        )
    tools = document["tool_metrics"]
    assert set(tools) == {"git_status", "git_show", n.OTHER}
    assert tools["git_show"]["error_types"] == {"BadName": 1}  # gitdb's error, not ToolError
    assert tools[n.OTHER]["client_errors"] == 5
    assert sum(t["total_calls"] for t in tools.values()) == 7  # every call is one request
    check_sums(document)
    points = operation_points()
    rejected = (
        ("metric", n.MCP_SERVER_OPERATION_DURATION),
        (n.GEN_AI_OPERATION_NAME, n.OPERATION_EXECUTE_TOOL),
        (n.GEN_AI_TOOL_NAME, n.OTHER),
        (n.MCP_METHOD_NAME, "tools/call"),
        (n.NETWORK_TRANSPORT, "tcp"),
        (n.RPC_RESPONSE_STATUS_CODE, "-32602"),
    )
    assert points[rejected] == 5
    session = (("metric", n.MCP_SERVER_SESSION_DURATION), (n.NETWORK_TRANSPORT, "tcp"))
    assert points[session] == 1  # one value when the handshake session ended


async def flood(client: Any, real: str, arguments: dict[str, Any], kind: str) -> None:
    for i in range(600):
        outcome = await harness.call(kind, client, f"made_up_{i}", {})
        assert outcome in ("is_error", "raised")
    for _ in range(3):
        assert await harness.call(kind, client, real, arguments) == "ok"


@pytest.mark.parametrize("kind", ["fetch", "mcpserver", "fastmcp"])
async def test_a_flood_of_made_up_names_adds_nothing_but_other(kind: str, tmp_path: Path) -> None:
    if kind == "fastmcp":
        async with (
            harness.open_target("fastmcp", "http", tmp_path) as target,
            harness.connect("fastmcp", target.client_arg, "legacy") as client,
        ):
            await flood(client, "ok", {"x": 1}, "fastmcp")
        await harness.wait_until(
            harness.local_read(),
            lambda d: d["system_metrics"]["active_sessions"] == 0,
            "the session to end",
        )
        points = operation_points()
        session = (("metric", n.MCP_SERVER_SESSION_DURATION), (n.NETWORK_TRANSPORT, "tcp"))
        assert points[session] == 1
        ok = (
            ("metric", n.MCP_SERVER_OPERATION_DURATION),
            (n.GEN_AI_OPERATION_NAME, n.OPERATION_EXECUTE_TOOL),
            (n.GEN_AI_TOOL_NAME, "ok"),
            (n.MCP_METHOD_NAME, "tools/call"),
            (n.NETWORK_TRANSPORT, "tcp"),
        )
        assert points[ok] == 3
        real = {"ok"}
    else:
        otel_perf.configure()
        if kind == "fetch":
            from mcp_server_fetch.server import create_server

            server: Any = create_server()
            real_tool, arguments = "fetch", None
        else:
            server = apps.build("mcpserver")
            real_tool, arguments = "ok", {"x": 1}
        otel_perf.mcp.instrument(server)
        async with mcp.Client(server, mode="legacy") as client:
            if arguments is None:  # fetch: a real call needs the network; an invalid one does not
                for i in range(600):
                    assert await call(client, f"made_up_{i}", {}) == "rpc -32602"
                for _ in range(3):
                    assert await call(client, "fetch", {"url": "not a url"}) == "is_error"
            else:
                await flood(client, real_tool, arguments, "mcpserver")
        real = {real_tool}
    document = otel_perf.get_all_metrics()
    tools = document["tool_metrics"]
    assert set(tools) == real | {n.OTHER}
    assert tools[n.OTHER]["client_errors"] == 600
    assert tools[n.OTHER]["failed_calls"] == 0
    (name,) = real
    assert tools[name]["total_calls"] == 3
    check_sums(document)


async def test_tools_registered_at_run_time_are_picked_up() -> None:
    server = otel_perf.mcp.instrument(apps.build("mcpserver"))
    async with mcp.Client(server, mode="legacy") as client:
        assert await call(client, "later", {}) == "is_error"  # not registered yet

        @server.tool()
        async def later() -> str:
            return "here"

        assert await call(client, "later", {}) == "ok"
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["later"]["successful_calls"] == 1
    assert tools[n.OTHER]["client_errors"] == 1


async def test_a_lowlevel_server_learns_tools_from_its_listing() -> None:
    from mcp.server import Server
    from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool

    names = ["first"]

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        schema = {"type": "object"}
        return ListToolsResult(tools=[Tool(name=name, input_schema=schema) for name in names])

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        # answers every name, as many low-level servers do: only the listing tells the truth
        return CallToolResult(content=[TextContent(type="text", text=params.name)])

    server = otel_perf.mcp.instrument(
        Server("dynamic", on_list_tools=list_tools, on_call_tool=call_tool)
    )
    async with mcp.Client(server, mode="legacy") as client:
        assert await call(client, "first", {}) == "ok"
        assert await call(client, "second", {}) == "ok"  # not listed: _OTHER
        names.append("second")  # registered at run time (tools/list changes)
        await client.list_tools()
        assert await call(client, "second", {}) == "ok"
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["first"]["successful_calls"] == 1
    assert tools["second"]["successful_calls"] == 1
    assert tools[n.OTHER]["successful_calls"] == 1


async def test_mcpserver_middleware_appended_later_runs_after_ours() -> None:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

    server = otel_perf.mcp.instrument(apps.build("mcpserver"))

    async def deny_boom(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and (ctx.params or {}).get("name") == "boom":
            raise MCPError(code=-32001, message="denied by policy")
        return await call_next(ctx)

    server.middleware.append(deny_boom)
    assert otel_perf.mcp.instrument(server) is server  # still first, still once
    assert isinstance(server.middleware[0], otel_perf.mcp.OtelPerfServerMiddleware)
    async with mcp.Client(server, mode="legacy") as client:
        assert await call(client, "boom", {}) == "rpc -32001"
    boom = otel_perf.get_all_metrics()["tool_metrics"]["boom"]
    assert boom["error_types"] == {"-32001": 1}  # a server-side refusal is a failure


async def test_fastmcp_middleware_from_the_constructor_and_added_later() -> None:
    import fastmcp
    from fastmcp.server.middleware import Middleware

    import otel_perf.fastmcp

    class Refuse(Middleware):
        def __init__(self, name: str) -> None:
            self.name = name

        async def on_call_tool(self, context: Any, call_next: Any) -> Any:
            if context.message.name == self.name:
                raise MCPError(code=-32602, message="refused")
            return await call_next(context)

    server = fastmcp.FastMCP("layers", middleware=[Refuse("first")])

    @server.tool
    async def first() -> str:
        return "1"

    @server.tool
    async def second() -> str:
        return "2"

    otel_perf.fastmcp.instrument(server)
    server.add_middleware(Refuse("second"))
    async with fastmcp.Client(server, mode="legacy") as client:
        for name in ("first", "second"):
            with pytest.raises(Exception, match="refused"):
                await client.call_tool(name, {})
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    for name in ("first", "second"):
        assert tools[name]["client_errors"] == 1
        assert tools[name]["total_calls"] == 1


@pytest.mark.parametrize("launch", ["otel-perf run", "self-instrumented"])
def test_console_exporter_never_writes_into_the_stdio_protocol(launch: str, tmp_path: Path) -> None:
    """A real stdio server fed JSON-RPC lines, console exporter every 100 ms: stdout stays
    JSON-RPC only; the exporter's output goes to stderr. Under ``otel-perf run`` (the real
    mcp-server-time), and in a server that configures otel-perf itself, where only the pipes
    on stdin and stdout tell it stdout is the protocol."""
    env = harness.child_env(
        {
            "OTEL_METRICS_EXPORTER": "console",
            "OTEL_METRIC_EXPORT_INTERVAL": "100",
            "OTEL_PERF_TEST_URL_FILE": str(tmp_path / "url.txt"),
        }
    )
    if launch == "otel-perf run":
        command = [sys.executable, "-m", "otel_perf", "run", "--"]
        command += [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
        tool, arguments = "get_current_time", {"timezone": "UTC"}
    else:
        command = [sys.executable, str(harness.HERE / "stdio_server.py"), "mcpserver"]
        tool, arguments = "ok", {"x": 1}
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    messages += [
        {
            "jsonrpc": "2.0",
            "id": 3 + i,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        for i in range(5)
    ]
    # a malformed call (the name is a list): answered with an error, and measured without harm
    messages.append({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": ["x"]}})
    stderr_path = tmp_path / "stderr.txt"
    with (
        stderr_path.open("w") as stderr,  # a file: an unread pipe would fill and block the child
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
        ) as child,
    ):
        assert child.stdin is not None
        assert child.stdout is not None
        lines: list[str] = []
        for message in messages:
            child.stdin.write(json.dumps(message) + "\n")
            child.stdin.flush()
            if "id" in message:
                lines.append(child.stdout.readline())  # wait for its answer
        # let the exporter run several intervals while the server is idle, then close
        anyio.run(anyio.sleep, 1.0)
        child.stdin.close()
        lines += child.stdout.read().splitlines()
        assert child.wait(timeout=30) == 0
    errors = stderr_path.read_text()
    answered = [json.loads(line) for line in lines if line.strip()]
    assert all(m.get("jsonrpc") == "2.0" for m in answered)
    assert sorted(m["id"] for m in answered) == list(range(1, 9))
    assert next(m for m in answered if m["id"] == 8)["error"]["code"] == -32602
    assert errors.count('"resource_metrics"') >= 3  # the console exporter ran, on stderr
