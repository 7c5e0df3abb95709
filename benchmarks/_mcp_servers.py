"""The servers the request-path benchmark calls: one ``echo(x)`` tool on each server kind.

Also a script: ``python benchmarks/_mcp_servers.py KIND`` serves KIND on stdin/stdout, as MCP
clients run servers. Nothing here imports otel_perf: the harness instruments what it measures
(in process) or runs it under ``otel-perf run`` (stdio).
"""

import sys
from typing import Any

KINDS = ("mcpserver", "lowlevel", "fastmcp")


def build_mcpserver() -> Any:
    from mcp.server import MCPServer

    server = MCPServer("bench-mcpserver", log_level="CRITICAL")

    @server.tool()
    async def echo(x: int) -> int:
        return x

    return server


def build_lowlevel() -> Any:
    from mcp.server import Server
    from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
        return ListToolsResult(tools=[Tool(name="echo", input_schema=schema)])

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        value = (params.arguments or {}).get("x")
        return CallToolResult(content=[TextContent(type="text", text=str(value))])

    return Server("bench-lowlevel", on_list_tools=list_tools, on_call_tool=call_tool)


def build_fastmcp() -> Any:
    from fastmcp import FastMCP

    server: Any = FastMCP("bench-fastmcp")

    @server.tool
    async def echo(x: int) -> int:
        return x

    return server


BUILDERS = {"mcpserver": build_mcpserver, "lowlevel": build_lowlevel, "fastmcp": build_fastmcp}


def build(kind: str) -> Any:
    return BUILDERS[kind]()


def serve_stdio(kind: str) -> None:
    server = build(kind)
    if kind == "fastmcp":
        server.run(transport="stdio", show_banner=False)
    elif kind == "mcpserver":
        server.run("stdio")
    else:
        import anyio
        from mcp.server.stdio import stdio_server

        async def main() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(main)


if __name__ == "__main__":
    serve_stdio(sys.argv[1] if len(sys.argv) > 1 else "mcpserver")
