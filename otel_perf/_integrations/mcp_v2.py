"""The mcp 2.x hooks of :mod:`otel_perf.mcp` (which picks them when mcp 2.x is installed).

>>> from mcp.server import MCPServer
>>> import otel_perf.mcp
>>> server = otel_perf.mcp.instrument(MCPServer("demo"))

:func:`instrument` puts one ``ServerMiddleware`` **first** in ``server.middleware`` (the SDK's
public, provisional hook; it sees every inbound message), ahead of the SDK's own and the
server's middleware, whether those were passed to the constructor or appended later: a call the
server's middleware rejects is still counted. It works for ``mcp.server.MCPServer`` and the
low-level ``mcp.server.Server``, and hands a FastMCP server to :mod:`otel_perf.fastmcp`.

What is measured (the rules are :mod:`otel_perf._integrations.mcp_policy`'s):

- every request and notification, timed into ``mcp.server.operation.duration`` with
  ``mcp.method.name`` (methods nobody serves fold into ``_OTHER``), ``rpc.response.status_code``
  on JSON-RPC errors and ``network.transport`` (``tcp`` over HTTP, ``pipe`` on stdio);
- ``tools/call`` per registered tool (``gen_ai.tool.name``, ``gen_ai.operation.name``
  ``execute_tool``). A name becomes a tool only if the server has it: ``MCPServer`` is asked
  through its public ``list_tools()`` the first time a name is seen; a low-level ``Server``
  through its ``get_tool_input_schema`` hook when it has one, and every ``tools/list`` answer
  teaches the names it lists. Tools added at run time are picked up the same ways. Other names
  count under ``_OTHER``.
- ``error.type`` is the innermost cause behind the SDK's wrappers. ``MCPServer`` folds a tool's
  exception into an ``isError`` result, so :func:`instrument` also wraps the instance's public
  ``call_tool`` method (documented to raise ``ToolError`` / ``UnexpectedToolError`` with the
  original exception as ``__cause__``) to see it. Invalid arguments and unknown tools are client
  mistakes, not failures. An ``isError`` result with no exception seen is ``tool_error``;
- messages the transport rejects before any middleware (stdio lines that are not a message,
  requests of the other protocol era, the POSTs streamable HTTP answers itself): one request
  each under ``_OTHER`` with its JSON-RPC code, through taps on the public ``Server.run()`` and
  ``Server.streamable_http_app()`` (:mod:`otel_perf._integrations.mcp_v2_transports`); this
  middleware claims every message it sees, so none is counted twice. An HTTP ``tools/call`` of
  the 2026 era makes the SDK run ``tools/list`` through the chain for itself (to check
  ``Mcp-Param-*`` headers): that call is not the client's and is not counted;
- requests in flight (``system_metrics.concurrent_requests``);
- handshake sessions (``mode="legacy"`` clients, 1.x clients, stateful HTTP) while they are
  open, and ``mcp.server.session.duration`` when each ends. Clients of the 2026-07-28 era have
  no handshake and no session, so they count as 0.
"""

from __future__ import annotations

import contextvars
import dataclasses
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
        "otel_perf.mcp could not load the hooks for mcp 2.x from the installed mcp package "
        f"({exc}); otel_perf.mcp supports the official MCP SDK 1.x and 2.x"
    ) from exc

from otel_perf import _semconv as n
from otel_perf._configure import active_recorder
from otel_perf._integrations import mcp_policy as policy
from otel_perf._integrations import mcp_v2_transports as transports
from otel_perf._integrations.rejected import CLAIMS
from otel_perf._log import logger, warn_once

__all__ = ["OtelPerfServerMiddleware", "instrument"]

_INITIALIZE = "initialize"
_TOOLS_LIST = "tools/list"


class _ToolOutcome:
    """Where the ``call_tool`` wrapper leaves the outcome of a raising tool for the middleware."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome: policy.Outcome | None = None


# Set by the middleware around a ``tools/call``; the ``call_tool`` wrapper leaves each call's
# outcome in it (nested calls included: the outermost ends last). A mutable holder, so the value
# survives any task boundary in between.
_OUTCOME: contextvars.ContextVar[_ToolOutcome | None] = contextvars.ContextVar(
    "otel_perf_tool_outcome", default=None
)

_UNSET: Any = object()

#: Lists the server's tools from within a request (its context is the argument).
ListTools = Callable[[ServerRequestContext[Any, Any]], Awaitable[object]]


class OtelPerfServerMiddleware:
    """The ``ServerMiddleware`` :func:`instrument` installs; one per server.

    ``lookup(name)`` says whether the server has a tool ``name``; ``list_tools(ctx)`` returns
    the server's tools (asked only for a name not known yet). Without either, tool names are learned
    from ``tools/list`` answers only. Recording never raises into the server; the request's
    own exception (``CancelledError`` included) propagates unchanged after it is counted.
    """

    def __init__(
        self,
        lookup: Callable[[str], bool] | None = None,
        list_tools: ListTools | None = None,
    ) -> None:
        self._sessions = policy.SessionTracker()
        self._tools = policy.ToolGate(lookup)
        self._known_tools = self._tools.known
        self._list_tools = list_tools
        self._local_transport: str | None = _UNSET  # decided on the first request
        #: Whether a ``call_tool`` wrapper reports tool exceptions (``MCPServer``): only then
        #: does a ``tools/call`` need an outcome holder.
        self.holds_outcomes = False

    def _transport(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        # The HTTP transports attach their request to the context; stdio and memory do not.
        if ctx.request is not None:
            return "tcp"
        local = self._local_transport
        if local is _UNSET:
            local = self._local_transport = policy.network_transport(False)
        return local

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        # Every request passes here: the common steps are written out (no helper calls).
        if ctx.request is not None and _sdk_internal(ctx):
            return await call_next(ctx)
        claims = CLAIMS.get()
        if claims is not None:  # this message is counted here, not by a transport tap
            claims.claim(ctx.request_id)
        recorder = active_recorder()
        if recorder is None:
            return await call_next(ctx)
        method = ctx.method
        if method == n.METHOD_TOOLS_CALL:
            return await self._tool_call(recorder, ctx, call_next)
        is_request = ctx.request_id is not None
        transport = self._transport(ctx)
        if is_request:
            recorder.request_started()
        start = perf_counter()
        try:
            result = await call_next(ctx)
        except BaseException as exc:
            seconds = perf_counter() - start
            if is_request:
                recorder.request_finished()
            outcome = policy.classify_exception(exc, wire=is_request)
            label = policy.request_method(method, not is_request, outcome)
            policy.record_request(recorder, label, seconds, outcome, transport)
            raise
        seconds = perf_counter() - start
        if is_request:
            recorder.request_finished()
            if method == _TOOLS_LIST:
                self._tools.learn_listing(result)
            elif method == _INITIALIZE:
                self._session_opened(recorder, ctx, transport)
            recorder.record_mcp_request(method, seconds, None, None, transport)
        else:
            label = policy.request_method(method, True, policy.SUCCESS)
            recorder.record_mcp_request(label, seconds, None, None, transport)
        return result

    async def _tool_call(
        self, recorder: Any, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        params = ctx.params
        name = params.get("name") if type(params) is dict else policy.tool_name(params)
        known = self._known_tools(name)
        if not known and self._list_tools is not None and type(name) is str:
            await self._learn_tools(ctx)  # once per new real tool, and per call of a made-up one
            known = self._tools.known(name)
        transport = self._local_transport if ctx.request is None else "tcp"
        if transport is _UNSET:
            transport = self._transport(ctx)
        holder = token = None
        if self.holds_outcomes:
            holder = _ToolOutcome()
            token = _OUTCOME.set(holder)
        recorder.request_started()
        start = perf_counter()
        try:
            result = await call_next(ctx)
        except BaseException as exc:
            seconds = perf_counter() - start
            recorder.request_finished()
            outcome = (holder and holder.outcome) or policy.classify_exception(exc, wire=True)
            self._record_tool(recorder, name if known else None, seconds, outcome, transport)
            raise
        finally:
            if token is not None:
                _OUTCOME.reset(token)
        seconds = perf_counter() - start
        recorder.request_finished()
        seen = holder.outcome if holder is not None else None
        if seen is None and known and not policy.is_error_result(result):
            # The common case, kept short: a registered tool that succeeded.
            recorder.record_mcp_tool(name, seconds, None, None, transport)
            return result
        outcome = seen or policy.classify_result(result)
        self._record_tool(recorder, name if known else None, seconds, outcome, transport)
        return result

    async def _learn_tools(self, ctx: ServerRequestContext[Any, Any]) -> None:
        list_tools = self._list_tools
        if list_tools is None:
            return
        try:
            self._tools.learn_listing(await list_tools(ctx))
        except Exception as exc:
            warn_once(
                "mcp-list-tools",
                "otel-perf: listing the server's tools failed (%s); tool names are learned "
                "from tools/list answers only",
                type(exc).__name__,
            )
            self._list_tools = None

    @staticmethod
    def _record_tool(
        recorder: Any,
        name: object,
        seconds: float,
        outcome: policy.Outcome,
        transport: str | None,
    ) -> None:
        """Record a call of tool ``name``; ``None``: a name the server does not have."""
        if name is None:
            name = n.OTHER
            if outcome.error_type is not None:  # the SDK could not find the tool
                outcome = policy.UNKNOWN_TOOL
        policy.record_tool(recorder, name, seconds, outcome, transport)

    def _session_opened(
        self, recorder: Any, ctx: ServerRequestContext[Any, Any], transport: str | None
    ) -> None:
        hook = session_close_hook(ctx.session)
        if hook is not None:
            self._sessions.opened(recorder, hook[0], hook[1], transport)


def _sdk_internal(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this is the SDK calling a handler for itself, not a client's message.

    A 2026-era HTTP ``tools/call`` with ``Mcp-Param-*`` headers, on a server without a
    ``get_tool_input_schema`` hook, makes the SDK run the server's ``tools/list`` through the
    middleware chain, with the POST's context, to find the tool's schema. Every 2026-era POST
    carries the ``Mcp-Method`` header, which the SDK has checked equals the message's method,
    so a method that differs from it is such an internal call.
    """
    try:
        method = ctx.request.headers.get("mcp-method")  # type: ignore[union-attr]
    except Exception:  # a request object of another shape: a client's message
        return False
    return method is not None and method != ctx.method


#: Where a session's end is reached, for mcp 2.x and 1.x alike: see the policy.
session_close_hook = policy.session_close_hook


def _wrap_call_tool(server: MCPServer[Any]) -> bool:
    """Let the middleware see the exception of a failing ``MCPServer`` tool; ``True`` if the
    instance's ``call_tool`` is (now) wrapped.

    ``MCPServer.call_tool`` is public and documented to raise ``ToolError`` /
    ``UnexpectedToolError`` with the original exception as ``__cause__``; the SDK's request
    handler calls it through the instance and folds the exception into ``isError``. Wrapping it
    on the instance classifies the exception for the middleware and re-raises it unchanged. If a
    future SDK stops calling it, failures are still counted, as ``tool_error``.
    """
    original: Callable[..., Awaitable[Any]] | None = getattr(server, "call_tool", None)
    if original is None or not inspect.iscoroutinefunction(original):
        return False
    if getattr(original, "__otel_perf_wrapped__", False):
        return True

    @functools.wraps(original)
    async def call_tool(*args: Any, **kwargs: Any) -> Any:
        # A tool may call tools itself (through this same method): each call, nested or not,
        # leaves its own outcome when it ends, and the outermost call ends last, so the
        # request's holder ends with the request's outcome. One context-variable read per call.
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            holder = _OUTCOME.get()
            if holder is not None:
                holder.outcome = policy.classify_exception(exc, wire=False)
            raise
        holder = _OUTCOME.get()
        if holder is not None and holder.outcome is not None:
            holder.outcome = None  # a nested call failed, and this one handled it
        return result

    call_tool.__otel_perf_wrapped__ = True  # type: ignore[attr-defined]
    setattr(server, "call_tool", call_tool)  # noqa: B010 - an instance attribute, on purpose
    return True


def _tool_lookup(server: Server[Any]) -> Callable[[str], bool] | None:
    """Whether a low-level ``Server`` has a tool, from its ``get_tool_input_schema`` hook.

    A ``None`` answer may also mean "nothing to validate", so a name the hook does not vouch
    for is looked up with :func:`_handler_listing`.
    """
    schema_of = getattr(server, "get_tool_input_schema", None)
    if not callable(schema_of):
        return None

    def lookup(name: str) -> bool:
        return schema_of(name) is not None

    return lookup


def _handler_listing(server: Server[Any]) -> ListTools | None:
    """The low-level server's own ``tools/list`` answer, through its public handler registry.

    ``Server.get_request_handler`` returns the registered handler and its params model; calling
    it with the current request's context (method changed to ``tools/list``) is exactly what
    the server would answer a client that lists its tools (first page).
    """
    get_handler = getattr(server, "get_request_handler", None)
    if not callable(get_handler):
        return None

    async def list_tools(ctx: ServerRequestContext[Any, Any]) -> object:
        entry = get_handler(_TOOLS_LIST)
        if entry is None:
            return None
        params = entry.params_type.model_validate({})
        return await entry.handler(
            dataclasses.replace(ctx, method=_TOOLS_LIST, params=None), params
        )

    return list_tools


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
        # MCPServer.list_tools is public and reflects tools added or removed at run time.
        middleware = OtelPerfServerMiddleware(list_tools=lambda _ctx: server.list_tools())
        middleware.holds_outcomes = _wrap_call_tool(server)
    else:
        middleware = OtelPerfServerMiddleware(
            lookup=_tool_lookup(server), list_tools=_handler_listing(server)
        )
    # Messages the transports reject before any middleware: taps on the low-level server.
    lowlevel = (
        server
        if isinstance(server, Server)
        else transports.lowlevel_server(server, "_lowlevel_server", "this MCPServer")
    )
    if lowlevel is not None:
        transports.instrument_lowlevel(lowlevel)
    ours = [entry for entry in chain if isinstance(entry, OtelPerfServerMiddleware)]
    if ours:
        # Already instrumented: make sure it is still first (middleware added since goes after).
        if chain[0] is not ours[0]:
            chain.remove(ours[0])
            chain.insert(0, ours[0])
        return server
    # First in the chain: the SDK composes ``server.middleware`` outermost-first at every
    # request, so this sees every message before any other middleware can reject it.
    chain.insert(0, middleware)
    logger.debug("otel-perf: instrumented MCP server %r", getattr(server, "name", server))
    return server
