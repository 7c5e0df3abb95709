"""The mcp 1.x hooks of :mod:`otel_perf.mcp` (which picks them when mcp 1.x is installed).

>>> from mcp.server.fastmcp import FastMCP      # or mcp.server.lowlevel.Server
>>> import otel_perf.mcp
>>> server = otel_perf.mcp.instrument(FastMCP("demo"))

mcp 1.x has no middleware. What it offers, and what :func:`instrument` uses:

- **``Server.run(read_stream, write_stream, ...)``, once per session** (public; the stdio
  runner, the streamable-HTTP session manager — stateful or stateless — and the SSE transport all
  call it on the low-level server). :func:`instrument` wraps it on the instance and taps the two
  message streams it is given: every JSON-RPC request and notification the client sends, and
  every response the server sends back. A request is timed from its arrival to its response;
  its outcome is the response (a JSON-RPC error code, or a result with ``isError``). This sees
  what no handler sees: ``initialize`` and ``notifications/initialized`` (the session answers
  them itself), requests the session rejects before any handler (unknown methods, invalid
  params: ``-32602``), and cancellations. A session is counted from a successful
  ``initialize`` response until ``run()`` returns (client EOF, HTTP DELETE, idle timeout,
  shutdown). A stateless server (``run(stateless=True)``, once per HTTP request) keeps no
  session and counts none, although 1.x clients still send ``initialize``, as on mcp 2.x.
- **the ``call_tool`` decorator and the ``request_handlers`` map** (public): the tool function
  a ``call_tool`` handler calls is wrapped, so the exception a failing tool raised is seen
  before the SDK folds it into an ``isError`` result, and so is a call refused before the tool
  ran (input validation: the client's mistake). The ``tools/list`` handler in
  ``request_handlers`` is wrapped to learn the registered tool names (the SDK calls it itself
  before a call to a name it has not seen listed, so the names are fresh when the answer goes
  out).

Two things are reachable only through private attributes, each guarded, each degrading with one
warning and never breaking the server:

- the low-level server of an ``mcp.server.fastmcp.FastMCP`` is ``server._mcp_server``;
- a tool function registered *before* :func:`instrument` is inside the SDK's handler closure
  (the ``func`` cell); without it a failing tool is recorded as ``tool_error`` instead of its
  exception's class. Tools registered after :func:`instrument` go through the public decorator.

The measurement policy (error causes, client mistakes, registered names, sessions) is
:mod:`otel_perf._integrations.mcp_policy`, shared with mcp 2.x and FastMCP.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import sys
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter
from typing import Any, Final

import anyio.abc

from otel_perf import _semconv as n
from otel_perf._configure import active_recorder
from otel_perf._integrations import mcp_policy as policy
from otel_perf._log import logger, warn_once
from otel_perf._recorder import Recorder

__all__ = ["instrument"]

# mcp 1.x modules, loaded by name: mypy checks this package against the newest SDK.
_types: Any = importlib.import_module("mcp.types")
_lowlevel: Any = importlib.import_module("mcp.server.lowlevel.server")
LowLevelServer: Final[type] = _lowlevel.Server

_INITIALIZE: Final = "initialize"
_CANCELLED_NOTIFICATION: Final = "notifications/cancelled"
_CANCELLED: Final = policy.classify_exception(asyncio.CancelledError(), wire=False)


def _fastmcp_v1_class() -> type | None:
    # Checked through sys.modules: a FastMCP server exists only if its module is imported, and
    # a program serving a low-level Server does not pay for importing FastMCP.
    module = sys.modules.get("mcp.server.fastmcp")
    found = getattr(module, "FastMCP", None)
    return found if isinstance(found, type) else None


class _ToolNote:
    """What the wrapped tool function saw of one ``tools/call``."""

    __slots__ = ("exc", "ran")

    def __init__(self) -> None:
        self.ran = False
        self.exc: BaseException | None = None


class _Pending:
    """A request received and not answered yet."""

    __slots__ = ("cancelled", "method", "params", "recorder", "start", "transport")

    def __init__(
        self, recorder: Recorder, method: str, params: object, transport: str | None
    ) -> None:
        self.recorder = recorder
        self.method = method
        self.params = params
        self.transport = transport
        self.cancelled = False
        self.start = perf_counter()


class _ServerHooks:
    """Per low-level server: what the hooks learnt and share across its sessions."""

    def __init__(self) -> None:
        self.tools = policy.ToolGate()
        self.sessions = policy.SessionTracker()
        #: Whether the tool function of the ``call_tool`` handler is wrapped (else failures can
        #: only be read from the result, as ``tool_error``).
        self.tool_function_seen = False
        #: Whether the server has a ``tools/list`` handler to learn registered names from (else
        #: a name is registered once its tool ran without a client mistake).
        self.listing = False


# The tap of the session whose ``run()`` started the current task: the SDK starts every handler
# task from inside ``run()``, so they inherit it.
_TAP: contextvars.ContextVar[_SessionTap | None] = contextvars.ContextVar(
    "otel_perf_mcp1_session_tap", default=None
)


def _root(item: object) -> object:
    """The JSON-RPC message inside a stream item (``SessionMessage`` or a bare message)."""
    message = getattr(item, "message", item)
    return getattr(message, "root", message)


def _over_http(item: object) -> bool:
    """Whether a stream item came over HTTP (the streamable-HTTP transport attaches the request)."""
    return getattr(getattr(item, "metadata", None), "request_context", None) is not None


class _SessionTap:
    """Sees every message of one session (one ``run()``) and records it."""

    def __init__(self, hooks: _ServerHooks, *, stateless: bool = False) -> None:
        self.hooks = hooks
        self.stateless = stateless
        self.pending: dict[object, deque[_Pending]] = {}
        self.notes: dict[object, _ToolNote] = {}
        # A notification is timed until the session asks for the next message.
        self._notification: tuple[Recorder, object, float, str | None] | None = None
        self._session_end: list[Callable[[], object]] = []
        self._transport: str | None = None
        self._transport_known = False

    def _transport_of(self, item: object) -> str | None:
        if not self._transport_known:  # one transport per run(): read it once
            self._transport = policy.network_transport(_over_http(item))
            self._transport_known = True
        return self._transport

    # --- inbound ------------------------------------------------------------------------------

    def before_receive(self) -> None:
        if self._notification is not None:
            recorder, label, start, transport = self._notification
            self._notification = None
            policy.record_request(
                recorder, label, perf_counter() - start, policy.SUCCESS, transport
            )

    def inbound(self, item: object) -> None:
        root = _root(item)
        if isinstance(root, _types.JSONRPCRequest):
            recorder = active_recorder()
            if recorder is None:
                return
            entry = _Pending(recorder, root.method, root.params, self._transport_of(item))
            self.pending.setdefault(root.id, deque()).append(entry)
            recorder.request_started()
        elif isinstance(root, _types.JSONRPCNotification):
            recorder = active_recorder()
            if recorder is None:
                return
            params = root.params
            if root.method == _CANCELLED_NOTIFICATION and isinstance(params, Mapping):
                for entry in self.pending.get(params.get("requestId"), ()):
                    entry.cancelled = True
            label = policy.request_method(root.method, True, policy.SUCCESS)
            self._notification = (recorder, label, perf_counter(), self._transport_of(item))

    # --- outbound -----------------------------------------------------------------------------

    def outbound(self, item: object) -> None:
        root = _root(item)
        code: int | None
        if isinstance(root, _types.JSONRPCResponse):
            code = None
            result = root.result
        elif isinstance(root, _types.JSONRPCError):
            code = root.error.code
            result = None
        else:  # a request or notification of the server's own
            return
        queue = self.pending.get(root.id)
        if not queue:
            return
        entry = queue.popleft()
        if not queue:
            del self.pending[root.id]
        self._finish(entry, code, result, self.notes.pop(root.id, None))

    def _tool_outcome(
        self, entry: _Pending, code: int | None, result: object, note: _ToolNote | None
    ) -> policy.Outcome:
        if entry.cancelled:
            return _CANCELLED
        if note is not None and note.exc is not None:
            return policy.classify_exception(note.exc, wire=code is not None)
        if code is not None:
            return policy.classify_code(code)
        refused = self.hooks.tool_function_seen and (note is None or not note.ran)
        if refused and policy.is_error_result(result):  # refused before the tool ran
            return policy.INVALID_ARGUMENTS
        return policy.classify_result(result)

    def _finish(
        self, entry: _Pending, code: int | None, result: object, note: _ToolNote | None
    ) -> None:
        recorder = entry.recorder
        seconds = perf_counter() - entry.start
        recorder.request_finished()
        if entry.method == n.METHOD_TOOLS_CALL:
            name = policy.tool_name(entry.params)
            outcome = self._tool_outcome(entry, code, result, note)
            ran = note is not None and note.ran
            if not self.hooks.listing and ran and not outcome.client_error:
                self.hooks.tools.add(name)  # no tools/list to learn from: the tool ran
            if not self.hooks.tools.known(name) and outcome.error_type is not None:
                outcome = policy.UNKNOWN_TOOL  # a made-up name: the client's mistake
            tool = self.hooks.tools.resolve(name)
            policy.record_tool(recorder, tool, seconds, outcome, entry.transport)
            return
        if entry.cancelled:
            outcome = _CANCELLED
        else:
            outcome = policy.SUCCESS if code is None else policy.classify_code(code)
        # The 1.x session answers a method outside its request models with -32602 before any
        # handler sees it: such a method is nobody's, whatever the code.
        method = entry.method if entry.method in policy.SPEC_CLIENT_METHODS else n.OTHER
        label = policy.request_method(method, False, outcome)
        policy.record_request(recorder, label, seconds, outcome, entry.transport)
        if entry.method == _INITIALIZE and code is None and not self.stateless:
            self.hooks.sessions.opened(recorder, self, self._session_end.append, entry.transport)

    def close(self) -> None:
        """The session ended: requests never answered did not complete; the session is over."""
        self.before_receive()
        for queue in self.pending.values():
            for entry in queue:
                entry.cancelled = True
                self._finish(entry, None, None, None)
        self.pending.clear()
        self.notes.clear()
        callbacks, self._session_end = self._session_end, []
        for callback in callbacks:
            callback()


def _guarded(what: str, action: Callable[[], None]) -> None:
    """Run one recording step; a failure is one warning, never an exception in the server."""
    try:
        action()
    except Exception as exc:
        warn_once(
            f"mcp1-{what}",
            "otel-perf: could not record an MCP %s (%s); further ones may be missing",
            what,
            type(exc).__name__,
        )


class _TapReceive(anyio.abc.ObjectReceiveStream[Any]):
    """The read stream ``run()`` is given, reporting each message to the tap."""

    def __init__(self, inner: Any, tap: _SessionTap) -> None:
        self._inner = inner
        self._tap = tap

    async def receive(self) -> Any:
        _guarded("notification", self._tap.before_receive)
        item = await self._inner.receive()
        _guarded("request", functools.partial(self._tap.inbound, item))
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:  # clone(), statistics(), ... of the real stream
        return getattr(self._inner, name)


class _TapSend(anyio.abc.ObjectSendStream[Any]):
    """The write stream ``run()`` is given, reporting each response to the tap."""

    def __init__(self, inner: Any, tap: _SessionTap) -> None:
        self._inner = inner
        self._tap = tap

    async def send(self, item: Any) -> None:
        _guarded("response", functools.partial(self._tap.outbound, item))
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _request_id(server: Any) -> object:
    try:
        return server.request_context.request_id
    except Exception:  # LookupError outside a request; nothing to attach the note to
        return None


def _wrap_tool_function(server: Any, func: Any) -> Any:
    """``func`` (a ``call_tool`` function) noting, per request, that it ran and what it raised."""
    if getattr(func, "__otel_perf_wrapped__", False):
        return func

    @functools.wraps(func)
    async def tool_function(*args: Any, **kwargs: Any) -> Any:
        tap = _TAP.get()
        note = _ToolNote()
        if tap is not None:
            request_id = _request_id(server)
            if request_id is not None:
                tap.notes[request_id] = note
        note.ran = True
        try:
            return await func(*args, **kwargs)
        except BaseException as exc:
            note.exc = exc
            raise

    tool_function.__otel_perf_wrapped__ = True  # type: ignore[attr-defined]
    return tool_function


def _wrap_list_tools(server: Any, hooks: _ServerHooks) -> None:
    """Learn the registered tool names from every answer of the ``tools/list`` handler."""
    handlers = server.request_handlers
    handler: Callable[[Any], Awaitable[Any]] | None = handlers.get(_types.ListToolsRequest)
    if handler is None or getattr(handler, "__otel_perf_wrapped__", False):
        return
    hooks.listing = True

    @functools.wraps(handler)
    async def list_tools(request: Any) -> Any:
        result = await handler(request)
        hooks.tools.learn_listing(getattr(result, "root", result))  # never raises
        return result

    list_tools.__otel_perf_wrapped__ = True  # type: ignore[attr-defined]
    handlers[_types.ListToolsRequest] = list_tools


def _wrap_registered_tool_function(server: Any, hooks: _ServerHooks) -> None:
    """The tool function of a ``call_tool`` handler registered before :func:`instrument`."""
    handler = server.request_handlers.get(_types.CallToolRequest)
    if handler is None or hooks.tool_function_seen:
        return
    code = getattr(handler, "__code__", None)
    closure = getattr(handler, "__closure__", None)
    names = getattr(code, "co_freevars", ())
    if closure and "func" in names:
        cell = closure[names.index("func")]
        if callable(cell.cell_contents):
            cell.cell_contents = _wrap_tool_function(server, cell.cell_contents)
            hooks.tool_function_seen = True
            return
    warn_once(
        "mcp1-tool-function",
        "otel-perf: the tools/call handler of this mcp 1.x server was not registered with "
        "Server.call_tool() as this SDK version does it; failing tools are counted as "
        "'tool_error' instead of their exception's class (call otel_perf.mcp.instrument() "
        "before registering tools to see it)",
    )


_HOOKS: weakref.WeakKeyDictionary[Any, _ServerHooks] = weakref.WeakKeyDictionary()


def _is_stateless(run_session: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether this ``run()`` serves one stateless request (``stateless=True``, public).

    The streamable-HTTP transport in stateless mode runs the server once per HTTP request; the
    1.x client still sends ``initialize``, but the server keeps no session: none is counted, as
    on mcp 2.x's stateless era.
    """
    try:
        bound = inspect.signature(run_session).bind_partial(None, None, *args, **kwargs)
    except (TypeError, ValueError):
        return bool(kwargs.get("stateless", False))
    return bool(bound.arguments.get("stateless", False))


def _instrument_lowlevel(server: Any) -> None:
    if server in _HOOKS:
        return
    hooks = _ServerHooks()
    _HOOKS[server] = hooks
    register_tool_function = server.call_tool  # the public decorator factory

    @functools.wraps(register_tool_function)
    def call_tool(*args: Any, **kwargs: Any) -> Any:
        decorator = register_tool_function(*args, **kwargs)

        def register(func: Any) -> Any:
            decorator(_wrap_tool_function(server, func))
            hooks.tool_function_seen = True
            _wrap_list_tools(server, hooks)
            return func

        return register

    _wrap_registered_tool_function(server, hooks)
    server.call_tool = call_tool
    _wrap_list_tools(server, hooks)
    run_session = server.run

    @functools.wraps(run_session)
    async def run(read_stream: Any, write_stream: Any, *args: Any, **kwargs: Any) -> Any:
        _wrap_list_tools(server, hooks)  # a tools/list handler registered after instrument()
        _wrap_registered_tool_function(server, hooks)
        tap = _SessionTap(hooks, stateless=_is_stateless(run_session, args, kwargs))
        token = _TAP.set(tap)
        try:
            return await run_session(
                _TapReceive(read_stream, tap), _TapSend(write_stream, tap), *args, **kwargs
            )
        finally:
            _TAP.reset(token)
            _guarded("session end", tap.close)

    server.run = run
    logger.debug("otel-perf: instrumented mcp 1.x server %r", getattr(server, "name", server))


def instrument(server: Any) -> Any:
    """Measure ``server`` (an mcp 1.x ``FastMCP`` or low-level ``Server``); returns it."""
    fastmcp_class = _fastmcp_v1_class()
    if fastmcp_class is not None and isinstance(server, fastmcp_class):
        lowlevel = getattr(server, "_mcp_server", None)
        if not isinstance(lowlevel, LowLevelServer):
            warn_once(
                "mcp1-fastmcp",
                "otel-perf: this mcp 1.x FastMCP keeps no low-level server in _mcp_server; "
                "the server is not instrumented",
            )
            return server
        _instrument_lowlevel(lowlevel)
        return server
    if isinstance(server, LowLevelServer):
        _instrument_lowlevel(server)
        return server
    raise TypeError(
        "otel_perf.mcp.instrument expects an mcp.server.fastmcp.FastMCP or "
        f"mcp.server.lowlevel.Server (mcp 1.x), not {type(server).__name__}"
    )
