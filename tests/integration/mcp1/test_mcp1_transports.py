"""Every 1.x server kind over streamable HTTP and over stdio under ``otel-perf run``.

HTTP (and SSE): the server instrumented with ``otel_perf.mcp.instrument`` (FastMCP 3.x through
it too), under uvicorn on 127.0.0.1; stateful sessions count while open and end with the
client's DELETE; stateless requests count no session. stdio: the unmodified server started by
``otel-perf run`` and spawned by a real 1.x client, read over the child's own metrics endpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import otel_perf
import otel_perf.mcp
from otel_perf import _semconv as n
from tests.support.servers import harness, mcp1_apps
from tests.support.servers.mcp1_harness import (
    connect,
    local_read,
    metric_points,
    plain_server_command,
    run_scenario,
    stdio_params,
    under_otel_perf_run,
    url_file_read,
)


@pytest.mark.parametrize("kind", mcp1_apps.KINDS)
async def test_streamable_http_stateful(kind: str, tmp_path: Path) -> None:
    otel_perf.configure()
    server = otel_perf.mcp.instrument(mcp1_apps.build(kind))
    read = local_read()
    with harness.uvicorn_server(mcp1_apps.http_app(kind, server)) as base:
        async with connect(kind, "http", f"{base}/mcp") as client:
            await run_scenario(kind, client, read, tmp_path)
        after = await harness.wait_until(
            read, lambda d: d["system_metrics"]["active_sessions"] == 0, "the session to end"
        )
    assert after["system_metrics"]["concurrent_requests"] == 0


async def test_sse(tmp_path: Path) -> None:
    """The legacy SSE transport calls the same run() per connection."""
    otel_perf.configure()
    server = otel_perf.mcp.instrument(mcp1_apps.build("fastmcp1"))
    read = local_read()
    with harness.uvicorn_server(server.sse_app()) as base:
        async with connect("fastmcp1", "sse", f"{base}/sse") as client:
            await run_scenario("fastmcp1", client, read, tmp_path)
        after = await harness.wait_until(
            read, lambda d: d["system_metrics"]["active_sessions"] == 0, "the session to end"
        )
    assert after["system_metrics"]["concurrent_requests"] == 0


@pytest.mark.parametrize("kind", ["fastmcp1", "lowlevel1"])
async def test_streamable_http_stateless_counts_no_session(kind: str) -> None:
    otel_perf.configure()
    server = otel_perf.mcp.instrument(mcp1_apps.build(kind))
    with harness.uvicorn_server(mcp1_apps.http_app(kind, server, stateless=True)) as base:
        async with connect(kind, "http", f"{base}/mcp") as client:
            for x in range(3):
                await client.call_tool("ok", {"x": x})
            document = otel_perf.get_all_metrics()
    assert document["tool_metrics"]["ok"]["total_calls"] == 3
    assert document["system_metrics"]["active_sessions"] == 0
    assert document["system_metrics"]["concurrent_requests"] == 0
    # the client's initialize was answered, but a stateless server keeps no session
    assert metric_points(n.MCP_SERVER_SESSION_DURATION) == []


@pytest.mark.parametrize("kind", mcp1_apps.KINDS)
async def test_stdio_under_otel_perf_run(kind: str, tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    params = stdio_params(under_otel_perf_run(url_file, *plain_server_command(kind)))
    async with connect(kind, "stdio", params) as client:
        document = await run_scenario(kind, client, url_file_read(url_file), tmp_path)
    # exact counts: the low-level server FastMCP builds is not instrumented a second time
    assert document["tool_metrics"]["ok"]["total_calls"] == 3
