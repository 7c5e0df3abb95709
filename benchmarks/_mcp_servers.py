"""The servers the request-path benchmark calls: one ``echo(x)`` tool on each server kind.

Also a script: ``python benchmarks/_mcp_servers.py KIND [--queued-record]`` serves KIND on
stdin/stdout, as MCP clients run servers. Nothing here configures otel_perf: the harness
instruments what it measures (in process) or runs it under ``otel-perf run`` (stdio).
``--queued-record`` adds the stdio floor: one SDK record per request, queued by a minimal
middleware and handed to a bare SDK histogram in batches, with none of otel-perf's code.
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


#: How many queued records the stdio floor hands to the SDK at once, inline on the request that
#: fills the batch (as the per-call benchmark's loops do: ``benchmarks._overhead``).
QUEUED_HAND_OVER_EVERY = 512


def add_queued_record(kind: str, server: Any) -> Any:
    """``server`` recording each request as the floor of recording off the request path does
    (``benchmarks._request_path``'s "one queued SDK record"), handing the queue to the SDK
    every :data:`QUEUED_HAND_OVER_EVERY` requests."""
    from benchmarks import _baselines as base
    from benchmarks._request_path import _add_timing, _QueuedRecords

    records = _QueuedRecords(base.BareSdk())
    queue, items = records.queue_one(), records.items

    def done(seconds: float) -> None:
        queue(seconds)
        if len(items) >= QUEUED_HAND_OVER_EVERY:
            records.hand_over()

    return _add_timing(kind, server, done)


def serve_stdio(kind: str, *, queued_record: bool = False) -> None:
    server = build(kind)
    if queued_record:
        add_queued_record(kind, server)
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
    args = sys.argv[1:]
    serve_stdio(
        next((a for a in args if not a.startswith("--")), "mcpserver"),
        queued_record="--queued-record" in args,
    )
