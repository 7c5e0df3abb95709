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


async def test_a_subclass_with_its_own_hooks_gets_fastmcps_chain() -> None:
    """OtelPerfMiddleware runs its own hooks directly (not through FastMCP's per-message chain);
    a subclass that adds a hook must still have it called, and still be counted."""
    seen: list[str] = []

    class Watching(OtelPerfMiddleware):
        async def on_call_tool(self, context, call_next):  # type: ignore[no-untyped-def]
            seen.append(context.message.name)
            return await call_next(context)

        async def on_message(self, context, call_next):  # type: ignore[no-untyped-def]
            seen.append(context.method)
            return await call_next(context)

    server = fastmcp.FastMCP("subclass", middleware=[Watching()])

    @server.tool
    async def add(a: int, b: int) -> int:
        return a + b

    async with fastmcp.Client(server, mode="legacy") as client:
        assert (await client.call_tool("add", {"a": 1, "b": 2})).data == 3
    assert "add" in seen  # its on_call_tool ran
    assert "tools/call" in seen  # its on_message, for every message
    assert "initialize" in seen
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"]["add"]["successful_calls"] == 1
    assert document["system_metrics"]["total_requests"] >= 2  # initialize and tools/call
