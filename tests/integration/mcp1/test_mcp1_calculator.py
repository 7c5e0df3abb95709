"""A real mcp 1.x server from PyPI, unmodified, under ``otel-perf run``.

mcp-server-calculator (``mcp>=1.4.1,<2``, a ``mcp.server.fastmcp.FastMCP`` server) spawned over
stdio by the SDK's own ``stdio_client`` + ``ClientSession``: 50 good calls and 10 failing ones
read 60 / 10 with the failure's real cause, and one active session while connected.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import stdio_client

from tests.support.servers.mcp1_harness import stdio_params, under_otel_perf_run, url_file_read

GOOD = 50
FAILING = 10


async def test_calculator_reads_60_calls_10_failures_one_session(tmp_path: Path) -> None:
    calculator = str(Path(sys.executable).parent / "mcp-server-calculator")  # dev-mcp1 extra
    url_file = tmp_path / "url"
    params = stdio_params(under_otel_perf_run(url_file, calculator))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for i in range(GOOD):
            result = await session.call_tool("calculate", {"expression": f"{i} * 2 + 1"})
            assert not result.isError
            assert result.content[0].text == str(i * 2 + 1)  # type: ignore[union-attr]
        for _ in range(FAILING):
            result = await session.call_tool("calculate", {"expression": "1 / 0"})
            assert result.isError
        # a client mistake: not a failure, and no new tool
        assert (await session.call_tool("no_such_tool", {})).isError
        document = await url_file_read(url_file)()
    calculate = document["tool_metrics"]["calculate"]
    assert (calculate["total_calls"], calculate["failed_calls"]) == (GOOD + FAILING, FAILING)
    assert calculate["error_types"] == {"ZeroDivisionError": FAILING}
    assert "no_such_tool" not in document["tool_metrics"]
    system = document["system_metrics"]
    assert system["active_sessions"] == 1
    assert system["concurrent_requests"] == 0
    # initialize + notifications/initialized + the 61 calls (+ the SDK's own tools/list, if any)
    assert system["total_requests"] >= 2 + GOOD + FAILING + 1
