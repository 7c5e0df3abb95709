"""Metrics for FastMCP 3.x and 4.x servers (``pip install 'otel-perf[fastmcp]'``).

>>> from fastmcp import FastMCP
>>> import otel_perf.fastmcp
>>> server = otel_perf.fastmcp.instrument(FastMCP("demo"))

:func:`instrument` puts :class:`OtelPerfMiddleware` **first** in ``server.middleware`` (moving
it there if the server already has one), so it sees every message before the server's own
middleware, whether that was passed to the constructor or added later with
``add_middleware``: a call the server's middleware rejects is still counted. Passing
``OtelPerfMiddleware()`` to the constructor yourself works too; put it first in the list.

The coverage is the same as :mod:`otel_perf.mcp` (rules in
:mod:`otel_perf._integrations.mcp_policy`): every request and notification timed into
``mcp.server.operation.duration``; ``tools/call`` per registered tool (FastMCP's
``get_tool`` is asked the first time a name is seen; ``tools/list`` answers teach names too;
others count under ``_OTHER``), with the innermost cause behind FastMCP's ``ToolError`` as
``error.type`` and ``tool_error`` for a result with ``is_error`` set; unknown tools and invalid
arguments (FastMCP's ``NotFoundError`` / ``ValidationError``) as client mistakes, not failures;
requests in flight; handshake sessions while open, and their duration when they end. On FastMCP
4, messages its transports reject before any middleware are counted too (under ``_OTHER``, with
their JSON-RPC code; see :mod:`otel_perf._integrations.mcp_v2_transports`).

FastMCP 3.x (on mcp 1.x) and 4.x (on mcp 2.x) have the same middleware API, so this one class
serves both; what differs between the SDKs underneath (how a session's end is reached) is
resolved in the policy.
"""

from __future__ import annotations

import importlib
from time import perf_counter
from typing import Any, cast

from otel_perf._integrations import sdk_versions

try:
    from fastmcp import FastMCP
    from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without fastmcp
    raise ImportError(
        sdk_versions.import_failure_message(
            "otel_perf.fastmcp", "fastmcp", "fastmcp", sdk_versions.FASTMCP_GENERATIONS, exc
        )
    ) from exc

from otel_perf import _semconv as n
from otel_perf._configure import active_recorder
from otel_perf._integrations import mcp_policy as policy
from otel_perf._log import warn_once

__all__ = ["OtelPerfMiddleware", "instrument"]

_TOOLS_LIST = "tools/list"
_INITIALIZE = "initialize"
_UNSET: Any = object()


class OtelPerfMiddleware(Middleware):
    """FastMCP middleware recording otel-perf's MCP server metrics. Add it once per server.

    Recording never raises into the server; the request's own exception (``CancelledError``
    included) propagates unchanged after it is counted.
    """

    def __init__(self) -> None:
        self._sessions = policy.SessionTracker()
        self._tools = policy.ToolGate()
        self._local_transport: str | None = _UNSET  # decided on the first request

    def _transport(self, context: MiddlewareContext[Any]) -> str | None:
        request_context = getattr(context.fastmcp_context, "request_context", None)
        if getattr(request_context, "request", None) is not None:
            return "tcp"  # the HTTP transports attach their request; stdio and memory do not
        local = self._local_transport
        if local is _UNSET:
            local = self._local_transport = policy.network_transport(False)
        return local

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        # FastMCP's own ``__call__`` builds a chain of every hook for each message (an async
        # dispatcher, three wrappers, and pass-through ``on_message`` / ``on_call_tool`` awaits).
        # This runs the three hooks this class has, in the order that chain would, directly:
        # ``on_initialize`` inside ``on_request``. Overriding ``__call__(context, call_next)`` is
        # FastMCP's documented entry point, called once per message. A subclass that adds hooks
        # gets FastMCP's chain.
        if type(self) is not OtelPerfMiddleware:
            return await super().__call__(context, call_next)
        kind = context.type
        if kind == "request":
            if context.method == _INITIALIZE:
                initialize = self.on_initialize
                next_step = call_next

                async def handshake(inner: MiddlewareContext[Any]) -> Any:
                    return await initialize(inner, next_step)

                return await self.on_request(context, cast("CallNext[Any, Any]", handshake))
            return await self.on_request(context, call_next)
        if kind == "notification":
            return await self.on_notification(context, call_next)
        return await call_next(context)

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
        if method == n.METHOD_TOOLS_CALL:
            return await self._tool_call(recorder, context, call_next)
        transport = self._transport(context)
        recorder.request_started()
        start = perf_counter()
        try:
            result = await call_next(context)
        except BaseException as exc:
            seconds = perf_counter() - start
            recorder.request_finished()
            outcome = policy.classify_exception(exc, wire=True)
            label = policy.request_method(method, False, outcome)
            policy.record_request(recorder, label, seconds, outcome, transport)
            raise
        seconds = perf_counter() - start
        recorder.request_finished()
        if method == _TOOLS_LIST:
            self._tools.learn_listing(result)
        recorder.record_mcp_request(method, seconds, None, None, transport)
        return result

    async def _tool_call(
        self, recorder: Any, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        name = policy.tool_name(context.message)
        known = self._tools.known(name)
        if not known and type(name) is str:
            await self._look_up(context, name)  # once per real tool, per call of a made-up one
            known = self._tools.known(name)
        transport = self._transport(context)
        recorder.request_started()
        start = perf_counter()
        try:
            result = await call_next(context)
        except BaseException as exc:
            seconds = perf_counter() - start
            recorder.request_finished()
            # FastMCP answers a tool's exception with an isError result (not on the wire).
            outcome = policy.classify_exception(exc, wire=False)
            _record_tool(recorder, name if known else None, seconds, outcome, transport)
            raise
        seconds = perf_counter() - start
        recorder.request_finished()
        if known and not policy.is_error_result(result):
            recorder.record_mcp_tool(name, seconds, None, None, transport)  # the common case
            return result
        outcome = policy.classify_result(result)
        _record_tool(recorder, name if known else None, seconds, outcome, transport)
        return result

    async def _look_up(self, context: MiddlewareContext[Any], name: str) -> None:
        server = getattr(context.fastmcp_context, "fastmcp", None)
        get_tool = getattr(server, "get_tool", None)
        if get_tool is None:
            return
        try:
            if await get_tool(name) is not None:
                self._tools.add(name)
        except Exception as exc:
            warn_once(
                "fastmcp-get-tool",
                "otel-perf: FastMCP's get_tool failed (%s); this tool name counts under _OTHER",
                type(exc).__name__,
            )

    async def on_notification(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        recorder = active_recorder()
        if recorder is None:
            return await call_next(context)
        label = policy.request_method(context.method, True, policy.SUCCESS)
        transport = self._transport(context)
        start = perf_counter()
        try:
            result = await call_next(context)
        except BaseException as exc:
            outcome = policy.classify_exception(exc, wire=False)
            policy.record_request(recorder, label, perf_counter() - start, outcome, transport)
            raise
        recorder.record_mcp_request(label, perf_counter() - start, None, None, transport)
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
            hook = policy.session_close_hook(session)
            if hook is not None:
                self._sessions.opened(recorder, hook[0], hook[1], self._transport(context))
        return result


def _record_tool(
    recorder: Any, name: object, seconds: float, outcome: policy.Outcome, transport: str | None
) -> None:
    """Record a call of tool ``name``; ``None``: a name the server does not have."""
    if name is None:
        name = n.OTHER
        if outcome.error_type is not None:  # FastMCP could not find the tool
            outcome = policy.UNKNOWN_TOOL
    policy.record_tool(recorder, name, seconds, outcome, transport)


def instrument(server: FastMCP[Any]) -> FastMCP[Any]:
    """Put :class:`OtelPerfMiddleware` first in ``server.middleware``; returns ``server``.

    Adds one if the server has none, or moves the existing one to the front.
    """
    if not isinstance(server, FastMCP):
        raise TypeError(
            f"otel_perf.fastmcp.instrument expects a fastmcp.FastMCP, not {type(server).__name__}"
        )
    chain = server.middleware
    ours = [entry for entry in chain if isinstance(entry, OtelPerfMiddleware)]
    middleware = ours[0] if ours else OtelPerfMiddleware()
    if ours:
        chain.remove(middleware)
    # FastMCP builds its chain from ``server.middleware`` at every dispatch, outermost first.
    chain.insert(0, middleware)
    if sdk_versions.mcp_generation() == 2:
        # FastMCP 4: messages its transports reject before any middleware (see
        # otel_perf._integrations.mcp_v2_transports). FastMCP 3 sits on mcp 1.x: not tapped.
        transports = importlib.import_module("otel_perf._integrations.mcp_v2_transports")
        transports.instrument_fastmcp(server)
    return server
