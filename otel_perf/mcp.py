"""Metrics for servers built with the official MCP Python SDK 2.x (``otel-perf[mcp]`` extra).

>>> from mcp.server import MCPServer
>>> import otel_perf.mcp
>>> server = otel_perf.mcp.instrument(MCPServer("demo"))

:func:`instrument` appends one ``ServerMiddleware`` to ``server.middleware`` (the SDK's public,
provisional hook; it sees every inbound message). It works for ``mcp.server.MCPServer`` and the
low-level ``mcp.server.Server``, and hands a FastMCP server to :mod:`otel_perf.fastmcp`.

What is measured:

- every request and notification, timed into ``mcp.server.operation.duration`` with
  ``mcp.method.name`` (methods nobody serves fold into ``_OTHER``);
- ``tools/call`` per tool (``gen_ai.tool.name``). ``error.type`` is the exception's class where
  the SDK lets it through: on a low-level ``Server`` the tool's exception reaches the middleware;
  on ``MCPServer`` the SDK folds it into an ``isError`` result, so :func:`instrument` also wraps the
  instance's public ``call_tool`` method, which raises ``ToolError`` with the original exception
  as ``__cause__`` before the fold. An ``isError`` result with no exception seen is
  ``tool_error``. Which JSON-RPC errors count as failures: see
  :mod:`otel_perf._integrations.mcp_policy`;
- requests in flight (``system_metrics.concurrent_requests``);
- handshake sessions (``mode="legacy"`` clients, 1.x clients, stateful HTTP) while they are open.
  Clients of the 2026-07-28 era have no handshake and no session, so they count as 0.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

try:
    from mcp.server import MCPServer, Server
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without mcp
    raise ImportError(
        "otel_perf.mcp needs the official MCP SDK 2.x; install it with: "
        "pip install 'otel-perf[mcp]'"
    ) from exc

from otel_perf import _semconv as n
from otel_perf._configure import active_recorder
from otel_perf._integrations import mcp_policy as shared
from otel_perf._log import logger, warn_once

__all__ = ["OtelPerfServerMiddleware", "instrument"]

_INITIALIZE = "initialize"


class _ToolOutcome:
    """Where the ``call_tool`` wrapper leaves the exception class for the middleware."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: str | None = None


# Set by the middleware around a ``tools/call``; read (and cleared for nested calls) by the
# ``call_tool`` wrapper. A mutable holder, so the value survives any task boundary in between.
_OUTCOME: contextvars.ContextVar[_ToolOutcome | None] = contextvars.ContextVar(
    "otel_perf_tool_outcome", default=None
)


class OtelPerfServerMiddleware:
    """The ``ServerMiddleware`` :func:`instrument` installs; one per server.

    Recording never raises into the server; the request's own exception (``CancelledError``
    included) propagates unchanged after it is counted.
    """

    def __init__(self) -> None:
        self._sessions = shared.SessionCounter()

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        recorder = active_recorder()
        if recorder is None:
            return await call_next(ctx)
        method = ctx.method
        is_request = ctx.request_id is not None
        outcome: _ToolOutcome | None = None
        token: contextvars.Token[_ToolOutcome | None] | None = None
        if method == n.METHOD_TOOLS_CALL:
            outcome = _ToolOutcome()
            token = _OUTCOME.set(outcome)
        if is_request:
            recorder.request_started()
        start = perf_counter()
        try:
            result = await call_next(ctx)
        except BaseException as exc:
            seconds = perf_counter() - start
            if is_request:
                recorder.request_finished()
            if outcome is not None:
                error = outcome.error or shared.error_type(exc)
                recorder.record_tool_seconds(shared.tool_name(ctx.params), seconds, error)
            else:
                label = shared.request_method(method, not is_request, exc)
                recorder.record_request_seconds(label, seconds, shared.error_type(exc))
            raise
        finally:
            if token is not None:
                _OUTCOME.reset(token)
        seconds = perf_counter() - start
        if is_request:
            recorder.request_finished()
        if outcome is not None:
            error = outcome.error
            if error is None and shared.is_error_result(result):
                error = shared.TOOL_ERROR
            recorder.record_tool_seconds(shared.tool_name(ctx.params), seconds, error)
            return result
        if method == _INITIALIZE and is_request:
            self._sessions.opened(recorder, ctx.session)
        label = shared.request_method(method, not is_request, None)
        recorder.record_request_seconds(label, seconds, None)
        return result


def _wrap_call_tool(server: MCPServer[Any]) -> None:
    """Let the middleware see the exception class of a failing ``MCPServer`` tool.

    ``MCPServer.call_tool`` is public and documented to raise ``ToolError`` /
    ``UnexpectedToolError`` with the original exception as ``__cause__``; the SDK's request
    handler calls it through the instance and folds the exception into ``isError``. Wrapping it
    on the instance notes the class for the middleware and re-raises unchanged. If a future SDK
    stops calling it, failures are still counted, as ``tool_error``.
    """
    original: Callable[..., Awaitable[Any]] | None = getattr(server, "call_tool", None)
    if original is None or not inspect.iscoroutinefunction(original):
        return
    if getattr(original, "__otel_perf_wrapped__", False):
        return

    @functools.wraps(original)
    async def call_tool(*args: Any, **kwargs: Any) -> Any:
        outcome = _OUTCOME.get()
        if outcome is None:
            return await original(*args, **kwargs)
        token = _OUTCOME.set(None)  # a tool calling tools programmatically is not this request
        try:
            return await original(*args, **kwargs)
        except BaseException as exc:
            outcome.error = shared.tool_error_type(exc)
            raise
        finally:
            _OUTCOME.reset(token)

    call_tool.__otel_perf_wrapped__ = True  # type: ignore[attr-defined]
    setattr(server, "call_tool", call_tool)  # noqa: B010 - an instance attribute, on purpose


def _is_fastmcp(server: object) -> bool:
    # Checked through sys.modules: a FastMCP server exists only if fastmcp is already imported.
    fastmcp = sys.modules.get("fastmcp")
    server_class = getattr(fastmcp, "FastMCP", None)
    return isinstance(server_class, type) and isinstance(server, server_class)


def instrument(server: Any) -> Any:
    """Measure every request ``server`` handles; returns ``server``. Calling it again is a no-op.

    ``server`` is an ``mcp.server.MCPServer``, an ``mcp.server.Server``, or a
    ``fastmcp.FastMCP`` (which gets :class:`otel_perf.fastmcp.OtelPerfMiddleware`).

    >>> from mcp.server import MCPServer
    >>> server = instrument(MCPServer("demo"))
    >>> instrument(server) is server
    True
    """
    if _is_fastmcp(server):
        integration = importlib.import_module("otel_perf.fastmcp")
        return integration.instrument(server)
    if not isinstance(server, (MCPServer, Server)):
        raise TypeError(
            f"otel_perf.mcp.instrument expects an mcp.server.MCPServer or mcp.server.Server, "
            f"not {type(server).__name__}"
        )
    chain = getattr(server, "middleware", None)
    if not isinstance(chain, list):
        # ``middleware`` is provisional in mcp 2.x; a future shape must not break the server.
        warn_once(
            "mcp-middleware",
            "otel-perf: this mcp SDK version has no Server.middleware list; the server is not "
            "instrumented",
        )
        return server
    if isinstance(server, MCPServer):
        _wrap_call_tool(server)
    if not any(isinstance(entry, OtelPerfServerMiddleware) for entry in chain):
        chain.append(OtelPerfServerMiddleware())
        logger.debug("otel-perf: instrumented MCP server %r", getattr(server, "name", server))
    return server
