"""Metrics for FastMCP 4.x servers (``pip install 'otel-perf[fastmcp]'``).

>>> from fastmcp import FastMCP
>>> from otel_perf.fastmcp import OtelPerfMiddleware
>>> server = FastMCP("demo", middleware=[OtelPerfMiddleware()])

or ``otel_perf.fastmcp.instrument(server)`` on an existing server. The coverage is the same as
:mod:`otel_perf.mcp`: every request and notification timed into
``mcp.server.operation.duration``; ``tools/call`` per tool, with the class of the exception the
tool raised as ``error.type`` (FastMCP raises ``ToolError`` through its middleware with the
original exception as ``__cause__``), ``tool_error`` for a result with ``is_error`` set;
requests in flight; handshake sessions while open.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

try:
    from fastmcp import FastMCP
    from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without fastmcp
    raise ImportError(
        "otel_perf.fastmcp needs FastMCP 4.x; install it with: pip install 'otel-perf[fastmcp]'"
    ) from exc

from otel_perf import _semconv as n
from otel_perf._configure import active_recorder
from otel_perf._integrations import mcp_policy as shared

__all__ = ["OtelPerfMiddleware", "instrument"]


class OtelPerfMiddleware(Middleware):
    """FastMCP middleware recording otel-perf's MCP server metrics. Add it once per server.

    Recording never raises into the server; the request's own exception (``CancelledError``
    included) propagates unchanged after it is counted.
    """

    def __init__(self) -> None:
        self._sessions = shared.SessionCounter()

    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        # FastMCP runs ``on_request`` once per request: inside the tool/resource/prompt
        # handler for component methods (wrapping ``on_call_tool``, so a tool's exception
        # passes through here), at the dispatch root for everything else.
        recorder = active_recorder()
        if recorder is None:
            return await call_next(context)
        method = context.method
        recorder.request_started()
        start = perf_counter()
        try:
            result = await call_next(context)
        except BaseException as exc:
            seconds = perf_counter() - start
            recorder.request_finished()
            if method == n.METHOD_TOOLS_CALL:
                tool = shared.tool_name(context.message)
                recorder.record_tool_seconds(tool, seconds, shared.tool_error_type(exc))
            else:
                label = shared.request_method(method, False, exc)
                recorder.record_request_seconds(label, seconds, shared.error_type(exc))
            raise
        seconds = perf_counter() - start
        recorder.request_finished()
        if method == n.METHOD_TOOLS_CALL:
            error = shared.TOOL_ERROR if shared.is_error_result(result) else None
            recorder.record_tool_seconds(shared.tool_name(context.message), seconds, error)
        else:
            recorder.record_request_seconds(method, seconds, None)
        return result

    async def on_notification(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        recorder = active_recorder()
        if recorder is None:
            return await call_next(context)
        label = shared.request_method(context.method, True, None)
        start = perf_counter()
        try:
            result = await call_next(context)
        except BaseException as exc:
            recorder.record_request_seconds(label, perf_counter() - start, shared.error_type(exc))
            raise
        recorder.record_request_seconds(label, perf_counter() - start, None)
        return result

    async def on_initialize(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        result = await call_next(context)  # raising here refuses the handshake: no session
        recorder = active_recorder()
        fastmcp_context = context.fastmcp_context
        if recorder is not None and fastmcp_context is not None:
            try:
                session = fastmcp_context.session
            except Exception:  # no request context: nothing to attach the session to
                return result
            self._sessions.opened(recorder, session)
        return result


def instrument(server: FastMCP[Any]) -> FastMCP[Any]:
    """Add :class:`OtelPerfMiddleware` to ``server`` unless it has one; returns ``server``."""
    if not isinstance(server, FastMCP):
        raise TypeError(
            f"otel_perf.fastmcp.instrument expects a fastmcp.FastMCP, not {type(server).__name__}"
        )
    if not any(isinstance(entry, OtelPerfMiddleware) for entry in server.middleware):
        server.add_middleware(OtelPerfMiddleware())
    return server
