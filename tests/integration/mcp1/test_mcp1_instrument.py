"""otel_perf.mcp.instrument on mcp 1.x servers, driven by a real 1.x ClientSession.

Every request is one point of ``mcp.server.operation.duration`` with its method, including
what only the session sees (``initialize``, ``notifications/initialized``, unknown methods);
``tools/call`` per tool with the exception's class; client mistakes (invalid arguments, unknown
tools, unknown methods) are not failures and made-up names never become tools; sessions and
requests in flight; instrumenting before or after the tools are registered; idempotence.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from mcp import types
from mcp.shared.exceptions import McpError

import otel_perf
import otel_perf.mcp
from otel_perf import _semconv as n
from tests.support.servers import harness, mcp1_apps
from tests.support.servers.mcp1_harness import (
    attrs,
    call,
    connect,
    metric_points,
    operation_points,
)


def build(kind: str, order: str = "after-registration") -> Any:
    """``kind`` instrumented after its tools are registered, or (low-level) before."""
    if order == "before-registration":
        from mcp.server.lowlevel import Server

        server = Server("otel-perf-test-lowlevel1")
        otel_perf.mcp.instrument(server)
        mcp1_apps.register_lowlevel_tools(server)
        return server
    return otel_perf.mcp.instrument(mcp1_apps.build(kind))


def test_generation_is_detected() -> None:
    assert otel_perf.mcp.GENERATION == 1
    with pytest.raises(AttributeError, match=r"mcp 1\.x has no middleware"):
        otel_perf.mcp.OtelPerfServerMiddleware  # noqa: B018


@pytest.mark.parametrize(
    ("kind", "order"),
    [
        ("fastmcp1", "after-registration"),
        ("lowlevel1", "after-registration"),
        ("lowlevel1", "before-registration"),
    ],
)
async def test_requests_tools_errors_and_session(kind: str, order: str) -> None:
    server = build(kind, order)
    async with connect(kind, "memory", server) as client:
        for x in range(3):
            assert await call(kind, client, "ok", {"x": x}) == "ok"
        assert await call(kind, client, "boom", {}) == "is_error"
        assert await call(kind, client, "flag_error", {}) == "is_error"
        assert await call(kind, client, "ok", {"x": "not a number"}) == "is_error"
        assert await call(kind, client, "made_up_by_the_client", {}) == "is_error"
        if kind == "lowlevel1":
            assert await call(kind, client, "fail_rpc", {}) == "is_error"
            with pytest.raises(McpError):  # no prompts handler: -32601
                await client.list_prompts()
        await client.list_tools()
        await client.send_ping()
        during = otel_perf.get_all_metrics()
    after = otel_perf.get_all_metrics()

    tools = during["tool_metrics"]
    ok = tools["ok"]
    # the call with invalid arguments is the client's mistake: counted, not a failure
    assert (ok["total_calls"], ok["failed_calls"], ok["error_types"]) == (4, 0, {})
    assert tools["boom"]["error_types"] == {"ValueError": 1}
    assert tools["flag_error"]["error_types"] == {"tool_error": 1}
    assert "made_up_by_the_client" not in tools
    assert (tools[n.OTHER]["total_calls"], tools[n.OTHER]["failed_calls"]) == (1, 0)
    if kind == "lowlevel1":
        assert tools["fail_rpc"]["error_types"] == {"-32603": 1}
    assert during["system_metrics"]["active_sessions"] == 1
    assert during["system_metrics"]["concurrent_requests"] == 0
    assert after["system_metrics"]["active_sessions"] == 0

    points = operation_points()
    assert points[attrs(method="initialize")] == 1
    assert points[attrs(method="notifications/initialized")] == 1
    assert points[attrs(method="ping")] == 1
    assert points[attrs(method="tools/list")] >= 1  # the 1.x client lists tools itself too
    if kind == "lowlevel1":
        assert points[attrs(method="prompts/list")] == 1  # -32601: not a failure
    assert after["system_metrics"]["total_requests"] == sum(points.values())
    # the semantic conventions' attributes, as on mcp 2.x
    calls = metric_points(n.MCP_SERVER_OPERATION_DURATION)
    unknown = [a for a, _ in calls if a.get(n.GEN_AI_TOOL_NAME) == n.OTHER]
    assert unknown == [{**unknown[0], n.RPC_RESPONSE_STATUS_CODE: "-32602"}]
    assert n.ERROR_TYPE not in unknown[0]
    # one handshake session, ended: one mcp.server.session.duration value
    sessions = metric_points(n.MCP_SERVER_SESSION_DURATION)
    assert sum(count for _, count in sessions) == 1


async def test_unknown_method_is_other_and_not_a_failure() -> None:
    """A client speaking raw JSON-RPC: a method no 1.x server can serve is ``_OTHER``."""
    import anyio
    from mcp.shared.memory import create_client_server_memory_streams
    from mcp.shared.message import SessionMessage

    server = build("lowlevel1")

    def message(**fields: Any) -> SessionMessage:
        return SessionMessage(types.JSONRPCMessage.model_validate({"jsonrpc": "2.0", **fields}))

    initialize = types.InitializeRequestParams(
        protocolVersion=types.LATEST_PROTOCOL_VERSION,
        capabilities=types.ClientCapabilities(),
        clientInfo=types.Implementation(name="raw", version="1"),
    ).model_dump(by_alias=True, exclude_none=True)
    async with create_client_server_memory_streams() as (client_streams, server_streams):
        client_read, client_write = client_streams
        async with anyio.create_task_group() as group:
            group.start_soon(server.run, *server_streams, server.create_initialization_options())
            with anyio.fail_after(10):
                await client_write.send(message(id=1, method="initialize", params=initialize))
                assert (await client_read.receive()).message.root.id == 1
                await client_write.send(message(method="notifications/initialized"))
                await client_write.send(message(id=2, method="x/made-up"))
                answer = (await client_read.receive()).message.root
            assert isinstance(answer, types.JSONRPCError)
            assert answer.error.code == -32602  # how the 1.x session refuses it
            group.cancel_scope.cancel()
    points = operation_points()
    assert points[attrs(method=n.OTHER)] == 1
    assert points[attrs(method="initialize")] == 1


async def test_a_flood_of_made_up_tool_names_leaves_real_tools_exact() -> None:
    server = build("fastmcp1")
    async with connect("fastmcp1", "memory", server) as client:
        for i in range(600):
            assert await call("fastmcp1", client, f"tool_{i}", {}) == "is_error"
        assert await call("fastmcp1", client, "ok", {"x": 1}) == "ok"
        assert await call("fastmcp1", client, "boom", {}) == "is_error"
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert sorted(tools) == sorted([n.OTHER, "ok", "boom"])
    assert (tools[n.OTHER]["total_calls"], tools[n.OTHER]["failed_calls"]) == (600, 0)
    assert tools["ok"]["total_calls"] == 1
    assert tools["boom"]["error_types"] == {"ValueError": 1}


@pytest.mark.parametrize("kind", ["fastmcp1", "lowlevel1"])
async def test_instrumenting_twice_counts_once(kind: str) -> None:
    server = build(kind)
    assert otel_perf.mcp.instrument(server) is server
    async with connect(kind, "memory", server) as client:
        assert await call(kind, client, "ok", {"x": 1}) == "ok"
        assert await call(kind, client, "boom", {}) == "is_error"
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["ok"]["total_calls"] == 1
    assert tools["boom"]["error_types"] == {"ValueError": 1}


async def test_cancelled_request_is_counted_and_the_session_goes_on(tmp_path: Path) -> None:
    server = build("fastmcp1")
    never = tmp_path / "never-created"
    async with connect("fastmcp1", "memory", server) as client:
        import anyio

        async def held() -> None:
            with pytest.raises(McpError, match="cancelled"):
                await client.call_tool("gate", {"path": str(never)})

        async with anyio.create_task_group() as group:
            request_id = client._request_id  # the id the next request gets (the client's own)
            group.start_soon(held)
            await harness.wait_until(
                harness.local_read(),
                lambda d: d["system_metrics"]["concurrent_requests"] == 1,
                "the held call",
            )
            await client.send_notification(
                types.ClientNotification(
                    types.CancelledNotification(
                        params=types.CancelledNotificationParams(requestId=request_id)
                    )
                )
            )
            document = await harness.wait_until(
                harness.local_read(),
                lambda d: d["tool_metrics"].get("gate", {}).get("failed_calls") == 1,
                "the cancelled call",
            )
        assert document["tool_metrics"]["gate"]["error_types"] == {"CancelledError": 1}
        assert document["system_metrics"]["concurrent_requests"] == 0
        assert await call("fastmcp1", client, "ok", {"x": 3}) == "ok"
    points = operation_points()
    assert points[attrs(method="notifications/cancelled")] == 1


async def test_tool_function_not_reachable_degrades_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mcp.server.lowlevel import Server

    server = Server("otel-perf-test-custom-handler")

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        raise_it = request.params.name == "boom"
        return types.ServerResult(
            types.CallToolResult(content=[], isError=raise_it)  # a handler of its own
        )

    async def list_tools(request: types.ListToolsRequest) -> types.ServerResult:
        names = ("boom", "fine")
        return types.ServerResult(
            types.ListToolsResult(tools=[types.Tool(name=name, inputSchema={}) for name in names])
        )

    server.request_handlers[types.CallToolRequest] = call_tool
    server.request_handlers[types.ListToolsRequest] = list_tools
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        otel_perf.mcp.instrument(server)
    assert sum("tool_error" in r.getMessage() for r in caplog.records) == 1
    async with connect("lowlevel1", "memory", server) as client:
        # a handler of its own does not ask the SDK's tools/list on a miss: the client's does
        await client.list_tools()
        assert await call("lowlevel1", client, "boom", {}) == "is_error"
        assert await call("lowlevel1", client, "fine", {}) == "ok"
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["boom"]["error_types"] == {"tool_error": 1}  # still counted as a failure
    assert tools["fine"]["failed_calls"] == 0


def test_instrument_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match=r"mcp 1\.x"):
        otel_perf.mcp.instrument(object())


async def test_fastmcp3_middleware_in_the_constructor(tmp_path: Path) -> None:
    """FastMCP 3.x has 4.x's middleware API: the same class, the same numbers."""
    import fastmcp

    from otel_perf.fastmcp import OtelPerfMiddleware
    from tests.support.servers.mcp1_harness import run_scenario

    assert fastmcp.__version__.startswith("3.")
    server = mcp1_apps.build("fastmcp3")
    server.add_middleware(OtelPerfMiddleware())
    otel_perf.configure()
    async with connect("fastmcp3", "memory", server) as client:
        await run_scenario("fastmcp3", client, harness.local_read(), tmp_path)
    after = otel_perf.get_all_metrics()
    assert after["system_metrics"]["active_sessions"] == 0
    assert after["system_metrics"]["concurrent_requests"] == 0


async def test_fastmcp3_client_mistakes_and_made_up_names() -> None:
    """On FastMCP 3.x as on 4.x: invalid arguments and made-up names are not failures."""
    server = otel_perf.mcp.instrument(mcp1_apps.build("fastmcp3"))
    async with connect("fastmcp3", "memory", server) as client:
        assert await call("fastmcp3", client, "ok", {"x": 1}) == "ok"
        assert await call("fastmcp3", client, "ok", {"x": "not a number"}) == "is_error"
        assert await call("fastmcp3", client, "boom", {}) == "is_error"
        for i in range(100):
            assert await call("fastmcp3", client, f"tool_{i}", {}) == "is_error"
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert sorted(tools) == sorted([n.OTHER, "ok", "boom"])
    assert (tools["ok"]["total_calls"], tools["ok"]["failed_calls"]) == (2, 0)
    assert tools["boom"]["error_types"] == {"ValueError": 1}
    assert (tools[n.OTHER]["total_calls"], tools[n.OTHER]["failed_calls"]) == (100, 0)
