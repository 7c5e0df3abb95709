"""Run a test server over a real transport and read its otel-perf metrics while it runs.

- ``memory``: the server object in this process; the client talks to it in-process.
- ``stdio``: ``stdio_server.py`` as a child process spawned by the client; the child serves its
  own metrics endpoint (port 0) and the test reads it over real HTTP.
- ``http``: streamable HTTP under uvicorn on 127.0.0.1 (a free port) in a thread of this
  process; stopped when the context exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

import otel_perf
from otel_perf._cli.demo import serve_http

from . import apps

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TRANSPORTS = ("memory", "stdio", "http")
MODES = ("legacy", "auto")
WAIT_S = 30.0


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a test URL
        return json.loads(response.read())


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 on a free port in a thread; yields the base URL.

    The demo's own runner, so the tests exercise the code the demo ships.
    """
    with serve_http(app) as url:
        yield url
    alive = [t for t in threading.enumerate() if t.name == "otel-perf-demo-mcp"]
    assert not alive, "uvicorn did not stop"


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child process: this one's, minus otel-perf settings, plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PERFORMANCE_METRICS_", "METRICS_", "OTEL_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["METRICS_JSON_PORT"] = "0"
    env.update(extra)
    return env


async def wait_for_file(path: Path) -> str:
    with anyio.fail_after(WAIT_S):
        while not path.exists():
            await anyio.sleep(0.02)
    return path.read_text()


@dataclass
class Target:
    """A running server: what to hand a client, and how to read its metrics document."""

    kind: str
    transport: str
    client_arg: Any
    read: Callable[[], Awaitable[dict[str, Any]]]
    final: Callable[[], Awaitable[dict[str, Any]]]


def local_read() -> Callable[[], Awaitable[dict[str, Any]]]:
    async def read() -> dict[str, Any]:
        return await asyncio.to_thread(otel_perf.get_all_metrics)

    return read


@asynccontextmanager
async def open_target(kind: str, transport: str, tmp_path: Path) -> AsyncIterator[Target]:
    """Start ``kind`` (see apps.py) instrumented by otel-perf, behind ``transport``."""
    if transport == "stdio":
        url_file = tmp_path / f"{kind}-url.txt"
        env = child_env({"OTEL_PERF_TEST_URL_FILE": str(url_file)})
        command = [sys.executable, str(HERE / "stdio_server.py"), kind]
        client_arg = stdio_target(kind, command, env)

        async def read() -> dict[str, Any]:
            base = await wait_for_file(url_file)
            return await asyncio.to_thread(fetch_json, f"{base}/metrics")

        async def final() -> dict[str, Any]:
            return json.loads(await wait_for_file(Path(f"{url_file}.final.json")))

        yield Target(kind, transport, client_arg, read, final)
        return

    otel_perf.configure()
    server = apps.build(kind)
    instrument(kind, server)
    if transport == "memory":
        yield Target(kind, transport, server, local_read(), local_read())
        return
    with uvicorn_server(apps.http_app(kind, server)) as base:
        yield Target(kind, transport, f"{base}/mcp", local_read(), local_read())


def instrument(kind: str, server: Any) -> None:
    if kind == "fastmcp":
        import otel_perf.fastmcp

        otel_perf.fastmcp.instrument(server)
    else:
        import otel_perf.mcp

        otel_perf.mcp.instrument(server)


def stdio_target(kind: str, command: list[str], env: dict[str, str]) -> Any:
    """What a client of ``kind``'s family needs to spawn ``command`` as a stdio server."""
    if kind == "fastmcp":
        from fastmcp.client.transports import StdioTransport

        return StdioTransport(command=command[0], args=command[1:], env=env, keep_alive=False)
    from mcp import StdioServerParameters

    return StdioServerParameters(command=command[0], args=command[1:], env=env)


@asynccontextmanager
async def connect(kind: str, client_arg: Any, mode: str) -> AsyncIterator[Any]:
    """A real client: ``fastmcp.Client`` for FastMCP servers, ``mcp.Client`` for the others."""
    if kind == "fastmcp":
        import fastmcp

        async with fastmcp.Client(client_arg, mode=mode) as client:
            yield client
    else:
        import mcp

        async with mcp.Client(client_arg, mode=mode) as client:
            yield client


async def call(kind: str, client: Any, name: str, arguments: dict[str, Any]) -> str:
    """Call a tool: ``"ok"``, ``"is_error"`` (isError result) or ``"raised"`` (JSON-RPC error)."""
    from mcp import MCPError

    try:
        if kind == "fastmcp":
            result = await client.call_tool(name, arguments, raise_on_error=False)
        else:
            result = await client.call_tool(name, arguments)
    except MCPError:
        return "raised"
    return "is_error" if result.is_error else "ok"


async def wait_until(
    read: Callable[[], Awaitable[dict[str, Any]]],
    predicate: Callable[[dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    """Poll the metrics document until ``predicate`` holds (fails after WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        document = await read()
        if predicate(document):
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last document: {document}")
        await anyio.sleep(0.05)


#: How each kind answers a crashing tool: MCPServer and FastMCP fold it into an isError result,
#: the low-level Server lets it become a JSON-RPC error.
CRASH_OUTCOME = {"mcpserver": "is_error", "lowlevel": "raised", "fastmcp": "is_error"}
PARALLEL = 4


def tool(document: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = document["tool_metrics"][name]
    return entry


async def run_scenario(target: Target, mode: str, tmp_path: Path) -> dict[str, Any]:
    """The workload every (kind, transport, era) combination runs, with its checks.

    Returns the final document (read after the client disconnected).
    """
    kind = target.kind
    release = tmp_path / f"release-{kind}-{target.transport}-{mode}"
    expected_sessions = 1 if mode == "legacy" else 0
    async with connect(kind, target.client_arg, mode) as client:
        for x in range(3):
            assert await call(kind, client, "ok", {"x": x}) == "ok"
        for _ in range(2):
            assert await call(kind, client, "boom", {}) == CRASH_OUTCOME[kind]
        assert await call(kind, client, "flag_error", {}) == "is_error"

        outcomes: list[str] = []

        async def gated() -> None:
            outcomes.append(await call(kind, client, "gate", {"path": str(release)}))

        async with anyio.create_task_group() as group:
            for _ in range(PARALLEL):
                group.start_soon(gated)
            during = await wait_until(
                target.read,
                lambda d: d["system_metrics"]["concurrent_requests"] == PARALLEL,
                f"{PARALLEL} concurrent requests",
            )
            assert during["system_metrics"]["active_sessions"] == expected_sessions
            release.write_text("go")
        assert outcomes == ["ok"] * PARALLEL

        settled = await wait_until(
            target.read,
            lambda d: d["system_metrics"]["concurrent_requests"] == 0,
            "no request in flight",
        )
        assert settled["system_metrics"]["active_sessions"] == expected_sessions
        check_tools(settled)
        # initialize/notifications (legacy) or server/discover (auto), tools/list, 10 calls
        assert settled["system_metrics"]["total_requests"] >= 3 + 2 + 1 + PARALLEL + 1

    if target.transport == "stdio":
        after = await target.final()
    else:
        after = await wait_until(
            target.read, lambda d: d["system_metrics"]["active_sessions"] == 0, "sessions closed"
        )
    assert after["system_metrics"]["active_sessions"] == 0
    assert after["system_metrics"]["concurrent_requests"] == 0
    check_tools(after)
    return after


def check_tools(document: dict[str, Any]) -> None:
    ok = tool(document, "ok")
    assert (ok["total_calls"], ok["failed_calls"], ok["error_types"]) == (3, 0, {})
    boom = tool(document, "boom")
    assert (boom["total_calls"], boom["failed_calls"]) == (2, 2)
    assert boom["error_types"] == {"ValueError": 2}
    flagged = tool(document, "flag_error")
    assert flagged["error_types"] == {"tool_error": 1}
    gate = tool(document, "gate")
    assert (gate["total_calls"], gate["failed_calls"]) == (PARALLEL, 0)
    assert gate["success_rate"] == 100.0
    assert gate["max_latency_ms"] >= gate["p50_latency_ms"] >= gate["min_latency_ms"] > 0.0
