"""The test tool set on the server kinds of the mcp 1.x generation (run in .venv-mcp1).

Kinds:

- ``fastmcp1``: ``mcp.server.fastmcp.FastMCP`` (the FastMCP that ships inside mcp 1.x);
- ``lowlevel1``: ``mcp.server.lowlevel.Server`` with ``list_tools`` / ``call_tool`` decorators;
- ``fastmcp3``: ``fastmcp.FastMCP`` 3.x (on mcp 1.x).

Tools (every kind): ``ok(x: int)`` returns ``x``; ``boom()`` raises ``ValueError``;
``flag_error()`` returns an ``isError`` result without raising; ``gate(path)`` waits until the
file ``path`` exists (holds calls in flight without timing assumptions, across processes).
On ``lowlevel1`` only: ``fail_rpc()`` raises ``McpError(-32603)``.

Nothing here imports otel_perf: the servers are unmodified; tests instrument them. No
``from __future__ import annotations``: the SDKs evaluate tool annotations.
"""

import os
from typing import Any

import anyio

KINDS = ("fastmcp1", "lowlevel1", "fastmcp3")
TOOLS = ("ok", "boom", "flag_error", "gate")
GATE_LIMIT_S = 30.0


async def wait_for_file(path: str) -> str:
    with anyio.fail_after(GATE_LIMIT_S):
        while not os.path.exists(path):
            await anyio.sleep(0.01)
    return "released"


def build_fastmcp1() -> Any:
    from mcp import types
    from mcp.server.fastmcp import FastMCP

    server = FastMCP("otel-perf-test-fastmcp1", log_level="CRITICAL")

    @server.tool()
    async def ok(x: int) -> int:
        return x

    @server.tool()
    async def boom() -> str:
        raise ValueError("kaboom")

    @server.tool()
    async def flag_error() -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text="bad")], isError=True
        )

    @server.tool()
    async def gate(path: str) -> str:
        return await wait_for_file(path)

    return server


def register_lowlevel_tools(server: Any) -> None:
    """The decorators of the low-level server (separate, so tests can order them)."""
    from mcp import types
    from mcp.shared.exceptions import McpError

    schemas = {
        "ok": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
        "gate": {"type": "object", "properties": {"path": {"type": "string"}}},
    }

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        names = (*TOOLS, "fail_rpc")
        return [
            types.Tool(name=name, inputSchema=schemas.get(name, {"type": "object"}))
            for name in names
        ]

    @server.call_tool()
    async def call_tool(name: str, arguments: dict[str, Any]) -> Any:
        if name == "ok":
            return [types.TextContent(type="text", text=str(arguments["x"]))]
        if name == "boom":
            raise ValueError("kaboom")
        if name == "flag_error":
            return types.CallToolResult(
                content=[types.TextContent(type="text", text="bad")], isError=True
            )
        if name == "gate":
            text = await wait_for_file(str(arguments["path"]))
            return [types.TextContent(type="text", text=text)]
        if name == "fail_rpc":
            raise McpError(types.ErrorData(code=-32603, message="internal"))
        raise ValueError(f"unknown tool {name}")


def build_lowlevel1() -> Any:
    from mcp.server.lowlevel import Server

    server = Server("otel-perf-test-lowlevel1")
    register_lowlevel_tools(server)
    return server


def build_fastmcp3() -> Any:
    from fastmcp import FastMCP
    from fastmcp.tools.tool import ToolResult

    server: Any = FastMCP("otel-perf-test-fastmcp3")

    @server.tool
    async def ok(x: int) -> int:
        return x

    @server.tool
    async def boom() -> str:
        raise ValueError("kaboom")

    @server.tool
    async def flag_error() -> ToolResult:
        return ToolResult(content="bad", is_error=True)

    @server.tool
    async def gate(path: str) -> str:
        return await wait_for_file(path)

    return server


BUILDERS = {"fastmcp1": build_fastmcp1, "lowlevel1": build_lowlevel1, "fastmcp3": build_fastmcp3}


def build(kind: str) -> Any:
    return BUILDERS[kind]()


def lowlevel_of(kind: str, server: Any) -> Any:
    """The low-level server a client session connects to in-process."""
    if kind == "fastmcp1":
        return server._mcp_server
    return server


def http_app(kind: str, server: Any, *, stateless: bool = False) -> Any:
    """The streamable-HTTP ASGI app of ``server`` at ``/mcp`` (run its lifespan)."""
    if kind == "fastmcp3":
        return server.http_app(path="/mcp", stateless_http=stateless)
    if kind == "fastmcp1":
        server.settings.stateless_http = stateless
        return server.streamable_http_app()
    return lowlevel_http_app(server, stateless=stateless)


def lowlevel_http_app(server: Any, *, stateless: bool) -> Any:
    import contextlib

    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette
    from starlette.routing import Route

    manager = StreamableHTTPSessionManager(app=server, stateless=stateless)

    class Endpoint:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with manager.run():
            yield

    return Starlette(routes=[Route("/mcp", endpoint=Endpoint())], lifespan=lifespan)


def run_stdio(kind: str, server: Any) -> None:
    """Serve ``server`` on stdin/stdout until the client closes the pipe."""
    if kind == "fastmcp3":
        server.run(transport="stdio", show_banner=False)
    elif kind == "fastmcp1":
        server.run("stdio")
    else:
        from mcp.server.stdio import stdio_server

        async def main() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(main)


if __name__ == "__main__":  # an unmodified stdio server: python mcp1_apps.py KIND
    import sys

    run_stdio(sys.argv[1], build(sys.argv[1]))
