"""The same small tool set on the three server kinds the integrations support.

Tools (every kind):

- ``ok(x)`` returns ``x``;
- ``boom()`` raises ``ValueError``;
- ``flag_error()`` returns a result with ``isError`` set (no exception);
- ``gate(path)`` waits until the file ``path`` exists, so a test can hold calls in flight for
  as long as it needs without timing assumptions (works across processes);

and on the low-level server only, ``reject()`` / ``fail_rpc()`` raise ``MCPError`` with a
client-error code (-32602) and a server-error code (-32603).

Nothing here imports otel_perf: the servers are unmodified, tests instrument them. No
``from __future__ import annotations``: the SDKs evaluate tool annotations, which name
locally imported types.
"""

import os
from typing import Any

import anyio

KINDS = ("mcpserver", "lowlevel", "fastmcp")
GATE_LIMIT_S = 30.0


async def wait_for_file(path: str) -> str:
    with anyio.fail_after(GATE_LIMIT_S):
        while not os.path.exists(path):
            await anyio.sleep(0.01)
    return "released"


def build_mcpserver() -> Any:
    from mcp.server import MCPServer
    from mcp.types import CallToolResult, TextContent

    # CRITICAL: MCPServer logs crashing tools with a Rich traceback, which is slow to render.
    server = MCPServer("otel-perf-test", log_level="CRITICAL")

    @server.tool()
    async def ok(x: int) -> int:
        return x

    @server.tool()
    async def boom() -> str:
        raise ValueError("kaboom")

    @server.tool()
    async def flag_error() -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="bad")], is_error=True)

    @server.tool()
    async def gate(path: str) -> str:
        return await wait_for_file(path)

    return server


def build_lowlevel() -> Any:
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError
    from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool

    names = ("ok", "boom", "flag_error", "gate", "reject", "fail_rpc")

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        schema = {"type": "object", "additionalProperties": True}
        return ListToolsResult(tools=[Tool(name=name, input_schema=schema) for name in names])

    def text(value: object) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=str(value))])

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        arguments = params.arguments or {}
        if params.name == "ok":
            return text(arguments.get("x"))
        if params.name == "boom":
            raise ValueError("kaboom")
        if params.name == "flag_error":
            return CallToolResult(content=[TextContent(type="text", text="bad")], is_error=True)
        if params.name == "gate":
            return text(await wait_for_file(str(arguments["path"])))
        if params.name == "reject":
            raise MCPError(code=-32602, message="bad arguments")
        if params.name == "fail_rpc":
            raise MCPError(code=-32603, message="internal")
        raise MCPError(code=-32602, message=f"unknown tool {params.name}")

    return Server("otel-perf-test-lowlevel", on_list_tools=list_tools, on_call_tool=call_tool)


def build_fastmcp() -> Any:
    from fastmcp import FastMCP
    from fastmcp.tools.base import ToolResult

    server: Any = FastMCP("otel-perf-test-fastmcp")

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


BUILDERS = {"mcpserver": build_mcpserver, "lowlevel": build_lowlevel, "fastmcp": build_fastmcp}


def build(kind: str) -> Any:
    return BUILDERS[kind]()


def http_app(kind: str, server: Any, *, stateless: bool = False) -> Any:
    """The streamable-HTTP ASGI app of ``server`` (path ``/mcp``)."""
    if kind == "fastmcp":
        return server.http_app(path="/mcp", stateless_http=stateless)
    return server.streamable_http_app(stateless_http=stateless)


def run_stdio(kind: str, server: Any) -> None:
    """Serve ``server`` on stdin/stdout until the client closes the pipe."""
    if kind == "fastmcp":
        server.run(transport="stdio", show_banner=False)
    elif kind == "mcpserver":
        server.run("stdio")
    else:
        from mcp.server.stdio import stdio_server

        async def main() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(main)
