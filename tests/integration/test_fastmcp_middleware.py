"""otel_perf.fastmcp details on real FastMCP 4.x servers with in-process fastmcp clients."""

from __future__ import annotations

from pathlib import Path

import fastmcp
import pytest

import otel_perf
from otel_perf.fastmcp import OtelPerfMiddleware, instrument
from tests.support.servers import apps, harness


async def test_middleware_in_the_constructor_and_instrument_twice() -> None:
    server = fastmcp.FastMCP("ctor", middleware=[OtelPerfMiddleware()])

    @server.tool
    async def add(a: int, b: int) -> int:
        return a + b

    assert instrument(server) is server
    instrument(server)
    assert sum(isinstance(m, OtelPerfMiddleware) for m in server.middleware) == 1
    async with fastmcp.Client(server, mode="legacy") as client:
        assert (await client.call_tool("add", {"a": 1, "b": 2})).data == 3
        during = otel_perf.get_all_metrics()
    assert during["tool_metrics"]["add"]["total_calls"] == 1
    assert during["system_metrics"]["active_sessions"] == 1
    after = await harness.wait_until(
        harness.local_read(), lambda d: d["system_metrics"]["active_sessions"] == 0, "closed"
    )
    assert after["tool_metrics"]["add"]["successful_calls"] == 1


async def test_error_types_come_from_the_tool_exception() -> None:
    server = instrument(apps.build("fastmcp"))
    async with fastmcp.Client(server) as client:
        assert (await client.call_tool("boom", {}, raise_on_error=False)).is_error
        assert (await client.call_tool("nope", {}, raise_on_error=False)).is_error
        assert (await client.call_tool("flag_error", {}, raise_on_error=False)).is_error
        # bad arguments: FastMCP answers with an error result, but it is the client's mistake
        assert (await client.call_tool("ok", {"x": "NaN"}, raise_on_error=False)).is_error
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["boom"]["error_types"] == {"ValueError": 1}
    assert "nope" not in tools  # not a registered tool: a client mistake under _OTHER
    assert tools["_OTHER"]["client_errors"] == 1
    assert tools["_OTHER"]["failed_calls"] == 0
    assert tools["flag_error"]["error_types"] == {"tool_error": 1}
    assert tools["ok"]["error_types"] == {}
    assert tools["ok"]["client_errors"] == 1
    assert tools["ok"]["successful_calls"] == 0


async def test_cancelled_call_is_counted(tmp_path: Path) -> None:
    server = instrument(apps.build("fastmcp"))
    async with fastmcp.Client(server, mode="legacy") as client:
        with pytest.raises(Exception, match=r"[Tt]imed out|[Tt]imeout"):
            await client.call_tool(
                "gate", {"path": str(tmp_path / "never")}, timeout=0.3, raise_on_error=False
            )
        document = await harness.wait_until(
            harness.local_read(),
            lambda d: d["tool_metrics"].get("gate", {}).get("failed_calls") == 1,
            "the cancelled call",
        )
        assert document["tool_metrics"]["gate"]["error_types"] == {"CancelledError": 1}
        assert document["system_metrics"]["concurrent_requests"] == 0
        assert (await client.call_tool("ok", {"x": 1})).data == 1
