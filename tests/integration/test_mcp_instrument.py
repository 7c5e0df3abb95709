"""otel_perf.mcp details on real mcp 2.x servers and in-process clients.

Idempotence, what each request is recorded as (method names, the JSON-RPC error policy),
cancellation, several sessions over stateful and stateless HTTP, and the guarded private
attribute: a server whose sessions no longer expose their connection still serves and is still
measured, with one warning and no session counts.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from mcp import MCPError

import otel_perf
import otel_perf.mcp
from otel_perf import _semconv as n
from tests.support.servers import apps, harness


def operation_points() -> dict[tuple[tuple[str, str], ...], int]:
    """Counts of ``mcp.server.operation.duration`` per attribute set, from the SDK's data."""
    data = otel_perf.configure().pipeline.collect()
    out: dict[tuple[tuple[str, str], ...], int] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == n.MCP_SERVER_OPERATION_DURATION:
                    for point in metric.data.data_points:
                        # network.transport depends on how this test process was started
                        key = tuple(
                            sorted(
                                (k, str(v))
                                for k, v in point.attributes.items()
                                if k != n.NETWORK_TRANSPORT
                            )
                        )
                        out[key] = out.get(key, 0) + point.count
    return out


def attrs(**kwargs: str) -> tuple[tuple[str, str], ...]:
    names = {
        "method": n.MCP_METHOD_NAME,
        "tool": n.GEN_AI_TOOL_NAME,
        "error": n.ERROR_TYPE,
        "status": n.RPC_RESPONSE_STATUS_CODE,
    }
    pairs = [(names[k], v) for k, v in kwargs.items()]
    if kwargs.get("method") == n.METHOD_TOOLS_CALL:
        pairs.append((n.GEN_AI_OPERATION_NAME, n.OPERATION_EXECUTE_TOOL))
    return tuple(sorted(pairs))


@pytest.mark.parametrize("kind", ["mcpserver", "lowlevel"])
async def test_instrumenting_twice_counts_once(kind: str) -> None:
    server = apps.build(kind)
    assert otel_perf.mcp.instrument(server) is server
    assert otel_perf.mcp.instrument(server) is server
    ours = [m for m in server.middleware if isinstance(m, otel_perf.mcp.OtelPerfServerMiddleware)]
    assert len(ours) == 1
    async with mcp.Client(server, mode="legacy") as client:
        await client.call_tool("ok", {"x": 1})
        await harness.call(kind, client, "boom", {})
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["ok"]["total_calls"] == 1
    assert tools["boom"]["error_types"] == {"ValueError": 1}


async def test_tools_calling_tools_count_each_request_by_its_own_outcome() -> None:
    """An MCPServer tool may call the server's tools itself (``server.call_tool``): a nested
    failure the tool handles is not the request's failure, and a request that fails after a
    nested success is counted with its own exception, concurrent nested calls included."""
    from mcp.server import MCPServer

    server = MCPServer("nested")

    @server.tool()
    async def inner_boom() -> str:
        raise KeyError("inner")

    @server.tool()
    async def inner_ok() -> str:
        return "ok"

    @server.tool()
    async def handles_inner_failure() -> str:
        try:
            await server.call_tool("inner_boom", {})
        except Exception:
            return "handled"
        return "not reached"

    @server.tool()
    async def fails_after_inner_success() -> str:
        await server.call_tool("inner_ok", {})
        raise LookupError("outer")

    @server.tool()
    async def concurrent_inner_calls() -> str:
        async def swallow(name: str) -> None:
            try:
                await server.call_tool(name, {})
            except Exception:
                return

        async with anyio.create_task_group() as group:
            group.start_soon(swallow, "inner_ok")
            group.start_soon(swallow, "inner_boom")
        return "done"

    otel_perf.mcp.instrument(server)
    async with mcp.Client(server, mode="legacy") as client:
        for name in ("handles_inner_failure", "concurrent_inner_calls"):
            assert (await client.call_tool(name, {})).is_error is False
        assert (await client.call_tool("fails_after_inner_success", {})).is_error is True
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    # Only the client's requests are counted: programmatic calls are not requests.
    assert set(tools) == {
        "handles_inner_failure",
        "concurrent_inner_calls",
        "fails_after_inner_success",
    }
    for name in ("handles_inner_failure", "concurrent_inner_calls"):
        assert tools[name]["total_calls"] == 1
        assert tools[name]["failed_calls"] == 0, name
    assert tools["fails_after_inner_success"]["error_types"] == {"LookupError": 1}


async def test_methods_and_json_rpc_error_policy() -> None:
    server = otel_perf.mcp.instrument(apps.build("lowlevel"))
    async with mcp.Client(server, mode="legacy") as client:
        await client.list_tools()
        with pytest.raises(MCPError):  # -32602: the client's fault, not a server failure
            await client.call_tool("reject", {})
        with pytest.raises(MCPError):  # -32603: a server failure
            await client.call_tool("fail_rpc", {})
        with pytest.raises(MCPError):  # no prompts handler: -32601 method not found
            await client.list_prompts()
    async with mcp.Client(server) as client:  # the stateless 2026 era
        await client.call_tool("ok", {"x": 2})
    points = operation_points()
    assert points[attrs(method="initialize")] == 1
    assert points[attrs(method="notifications/initialized")] == 1
    assert points[attrs(method="server/discover")] == 1
    assert points[attrs(method="tools/list")] >= 1
    # a spec method keeps its name; the client's mistake carries its code, not error.type
    assert points[attrs(method="prompts/list", status="-32601")] == 1
    assert points[attrs(method="tools/call", tool="reject", status="-32602")] == 1
    assert points[attrs(method="tools/call", tool="fail_rpc", error="-32603", status="-32603")] == 1
    assert points[attrs(method="tools/call", tool="ok")] == 1
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"]["reject"]["failed_calls"] == 0
    assert document["tool_metrics"]["reject"]["client_errors"] == 1
    assert document["tool_metrics"]["fail_rpc"]["error_types"] == {"-32603": 1}
    assert document["system_metrics"]["total_requests"] == sum(points.values())


def test_unknown_methods_fold_into_other() -> None:
    from otel_perf._integrations import mcp_policy as policy

    not_found = policy.classify_exception(MCPError(code=-32601, message="x"), wire=True)
    assert policy.request_method("x/made-up-by-a-client", False, not_found) == n.OTHER
    assert policy.request_method("prompts/list", False, not_found) == "prompts/list"
    assert policy.request_method("x/custom", False, policy.SUCCESS) == "x/custom"  # served
    assert policy.request_method("notifications/made-up", True, policy.SUCCESS) == n.OTHER
    cancelled = "notifications/cancelled"
    assert policy.request_method(cancelled, True, policy.SUCCESS) == cancelled
    missing = policy.classify_exception(MCPError(code=-32002, message="no such"), wire=True)
    assert missing == policy.Outcome(status_code="-32002", client_error=True)
    timeout = policy.classify_exception(MCPError(code=-32001, message="timeout"), wire=True)
    assert timeout == policy.Outcome(error_type="-32001", status_code="-32001")


@pytest.mark.parametrize("kind", ["mcpserver", "lowlevel"])
async def test_cancelled_request_is_counted_and_server_goes_on(kind: str, tmp_path: Path) -> None:
    server = otel_perf.mcp.instrument(apps.build(kind))
    never = tmp_path / "never-created"
    async with mcp.Client(server, mode="legacy") as client:
        with pytest.raises(MCPError):
            await client.call_tool("gate", {"path": str(never)}, read_timeout_seconds=0.3)
        document = await harness.wait_until(
            harness.local_read(),
            lambda d: d["tool_metrics"].get("gate", {}).get("failed_calls") == 1,
            "the cancelled call",
        )
        assert document["tool_metrics"]["gate"]["error_types"] == {"CancelledError": 1}
        assert document["system_metrics"]["concurrent_requests"] == 0
        assert await client.call_tool("ok", {"x": 3})  # the connection still works
    assert otel_perf.get_all_metrics()["tool_metrics"]["ok"]["total_calls"] == 1


async def test_sessions_over_stateful_and_stateless_http() -> None:
    read = harness.local_read()
    server = otel_perf.mcp.instrument(apps.build("mcpserver"))
    with harness.uvicorn_server(apps.http_app("mcpserver", server)) as base:
        async with (
            mcp.Client(f"{base}/mcp", mode="legacy") as first,
            mcp.Client(f"{base}/mcp", mode="legacy") as second,
        ):
            await first.call_tool("ok", {"x": 1})
            await second.call_tool("ok", {"x": 2})
            document = await read()
            assert document["system_metrics"]["active_sessions"] == 2
        await harness.wait_until(read, lambda d: d["system_metrics"]["active_sessions"] == 0, "0")

    stateless = otel_perf.mcp.instrument(apps.build("lowlevel"))
    with harness.uvicorn_server(apps.http_app("lowlevel", stateless, stateless=True)) as base:
        async with mcp.Client(f"{base}/mcp", mode="legacy") as client:
            await client.call_tool("ok", {"x": 3})
            # every POST is its own connection: the handshake's session ends with its POST
            document = await harness.wait_until(
                read, lambda d: d["system_metrics"]["active_sessions"] == 0, "no session"
            )
    assert document["tool_metrics"]["ok"]["total_calls"] == 3


class _Hiding:
    """A stand-in for an object of a future SDK that no longer has attribute ``hidden``."""

    def __init__(self, wrapped: Any, hidden: str) -> None:
        self._wrapped = wrapped
        self._hidden = hidden

    def __getattr__(self, name: str) -> Any:
        if name == self._hidden:
            raise AttributeError(name)
        return getattr(self._wrapped, name)


async def _without_connection(ctx: Any, call_next: Any) -> Any:
    return await call_next(dataclasses.replace(ctx, session=_Hiding(ctx.session, "_connection")))


async def _without_exit_stack(ctx: Any, call_next: Any) -> Any:
    session = _Hiding(ctx.session, "none")
    session.__dict__["_connection"] = _Hiding(ctx.session._connection, "exit_stack")
    return await call_next(dataclasses.replace(ctx, session=session))


@pytest.mark.parametrize("simulate", [_without_connection, _without_exit_stack])
async def test_missing_private_attribute_degrades_to_no_sessions(
    simulate: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = otel_perf.mcp.instrument(apps.build("mcpserver"))
    ours = next(
        i
        for i, m in enumerate(server.middleware)
        if isinstance(m, otel_perf.mcp.OtelPerfServerMiddleware)
    )
    server.middleware.insert(ours, simulate)  # what our middleware sees: the future SDK
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        for x in range(2):
            async with mcp.Client(server, mode="legacy") as client:
                assert (await client.call_tool("ok", {"x": x})).is_error is False
                document = otel_perf.get_all_metrics()
                assert document["system_metrics"]["active_sessions"] == 0
    warnings = [r for r in caplog.records if "sessions are not measured" in r.getMessage()]
    assert len(warnings) == 1
    document = otel_perf.get_all_metrics()
    assert document["tool_metrics"]["ok"]["total_calls"] == 2
    assert document["system_metrics"]["active_sessions"] == 0


async def test_disabled_metrics_leave_the_server_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFORMANCE_METRICS_ENABLED", "false")
    server = otel_perf.mcp.instrument(apps.build("mcpserver"))
    async with mcp.Client(server, mode="legacy") as client:
        assert (await client.call_tool("ok", {"x": 1})).is_error is False
    document = otel_perf.get_all_metrics()
    assert document["enabled"] is False
    assert document["tool_metrics"] == {}


def test_instrument_rejects_what_is_not_a_server() -> None:
    with pytest.raises(TypeError, match="MCPServer"):
        otel_perf.mcp.instrument(object())


def test_instrument_hands_a_fastmcp_server_to_the_fastmcp_integration() -> None:
    import otel_perf.fastmcp

    server = apps.build("fastmcp")
    assert otel_perf.mcp.instrument(server) is server
    otel_perf.mcp.instrument(server)
    ours = [m for m in server.middleware if isinstance(m, otel_perf.fastmcp.OtelPerfMiddleware)]
    assert len(ours) == 1


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("otel_perf.mcp", "mcp", "otel-perf[mcp]"),
        ("otel_perf.fastmcp", "fastmcp", "otel-perf[fastmcp]"),
    ],
)
def test_missing_extra_names_it(module: str, blocked: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "import otel_perf\n"
        f"try:\n    import {module}\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert extra in result.stdout


def test_importing_otel_perf_imports_no_integration_dependency() -> None:
    code = (
        "import sys, otel_perf\n"
        "print(sorted(m for m in ('mcp', 'fastmcp', 'cachetools', 'uvicorn', 'rich') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


async def test_parallel_calls_on_one_session_are_concurrent(tmp_path: Path) -> None:
    server = otel_perf.mcp.instrument(apps.build("lowlevel"))
    release = tmp_path / "release"
    async with mcp.Client(server, mode="legacy") as client, anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(client.call_tool, "gate", {"path": str(release)})
        document = await harness.wait_until(
            harness.local_read(),
            lambda d: d["system_metrics"]["concurrent_requests"] == 6,
            "6 in flight",
        )
        assert document["system_metrics"]["active_sessions"] == 1
        release.write_text("go")
    assert otel_perf.get_all_metrics()["system_metrics"]["concurrent_requests"] == 0
