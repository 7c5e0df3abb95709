"""How every MCP integration measures: outcomes, registered tool names, sessions.

This module is the one measurement policy of otel-perf's MCP integrations. It imports no MCP
SDK: the integrations for mcp 2.x / FastMCP 4.x (:mod:`otel_perf.mcp`, :mod:`otel_perf.fastmcp`)
and for the older generation (mcp 1.x, FastMCP 3.x) all call it, so a rule changes in one place.
Exceptions are recognised by shape and class name, never by import.

**Outcomes.** Every finished request is one :class:`Outcome`:

- success: ``Outcome()`` (:data:`SUCCESS`);
- server failure: ``error_type`` set (the ``error.type`` attribute) and, when the answer was a
  JSON-RPC error, ``status_code`` (``rpc.response.status_code``, the code as a string);
- client mistake: ``client_error=True``, ``error_type=None`` and a ``status_code``. Unknown tool,
  invalid or missing arguments, malformed requests and unknown methods are the client's mistake
  however the SDK answers them (JSON-RPC error or an ``isError`` result); an ``isError`` answer
  gets the code the specification gives that mistake (``-32602``) so it can be watched.
  Client mistakes are counted in ``total_requests`` but never in a tool's ``error_types``.

**Error causes.** SDKs wrap a tool's exception, often twice: mcp 2.x ``MCPServer`` raises
``ToolError("Error executing tool t: ...") from <the tool's ToolError> from <the real cause>``.
:func:`innermost_cause` follows ``__cause__`` (or the implicit ``__context__`` of an exception
raised inside an ``except`` block) through every SDK wrapper layer (:data:`WRAPPER_NAMES`) and
stops at the first exception that is not a wrapper. A wrapper that wraps nothing is its own
cause, so ``raise ToolError("empty argument")`` reads as ``ToolError``.

**API** (typed; nothing here raises into the server):

- the recorder comes from :func:`otel_perf._configure.active_recorder`, the one resolver
  (``None`` when metrics are off).
- ``Outcome`` / ``SUCCESS`` / ``UNKNOWN_TOOL``: how a request ended (see above).
- ``classify_exception(exc, *, wire)``: the outcome of a request that raised ``exc``. ``wire``
  says whether the SDK answers it as a JSON-RPC error (``True``; a non-MCP exception then gets
  ``-32603``) or folds it into an ``isError`` result (``False``).
- ``classify_result(result)``: the outcome of a ``tools/call`` that returned ``result``
  (``isError`` -> failure ``tool_error``).
- ``innermost_cause(exc)``, ``is_argument_error(exc)``: the two rules above, on their own.
- ``request_method(method, is_notification, outcome)``: the ``mcp.method.name`` to record;
  unserved methods fold into ``_OTHER`` (``SPEC_CLIENT_METHODS`` /
  ``SPEC_CLIENT_NOTIFICATION_METHODS`` are the specification's, from mcp-types when present).
- ``tool_name(params)``, ``is_error_result(result)``: read raw (mapping) or typed messages.
- ``ToolGate(lookup=None)``: registered tool names. ``known(name)`` (a set lookup once seen;
  else ``lookup(name)`` if given), ``resolve(name)`` (the name or ``_OTHER``), ``add(name)``,
  ``learn_listing(result)`` (every name of a ``tools/list`` answer).
- ``SessionTracker().opened(recorder, key, on_close, transport)``: count a handshake session
  until ``on_close`` (which registers a callback the SDK runs once when the connection ends)
  fires, then record ``mcp.server.session.duration``.
- ``network_transport(over_http)``: ``"tcp"`` over HTTP, ``"pipe"`` on a stdio server, else
  ``None`` (omit the attribute). Cache the non-HTTP answer per integration object.
- ``classify_code(code)``: the outcome of a request answered with JSON-RPC error ``code`` when
  only the answer is seen (mcp 1.x); ``INVALID_ARGUMENTS``: a ``tools/call`` the SDK refused
  before the tool ran.
- ``session_close_hook(session)``: (key, register-a-close-callback) of an SDK session, mcp 1.x
  or 2.x, for ``SessionTracker.opened``; ``None`` (one warning) if unreachable.
- ``record_tool(recorder, name, seconds, outcome, transport)`` and
  ``record_request(recorder, method, seconds, outcome, transport)``.

How an integration uses it, per ``tools/call`` (see :mod:`otel_perf.mcp`)::

    recorder = active_recorder()                   # None: call through, record nothing
    recorder.request_started(); start = perf_counter()
    try:
        result = await call_next(...)
    except BaseException as exc:
        outcome = classify_exception(exc, wire=...)  # then re-raise unchanged
    else:
        outcome = classify_result(result)
    recorder.request_finished()
    if not gate.known(name):                       # made-up name: _OTHER, a client mistake
        name = "_OTHER"
        if outcome.error_type is not None:
            outcome = UNKNOWN_TOOL
    record_tool(recorder, name, perf_counter() - start, outcome, transport)
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from otel_perf import _semconv as n
from otel_perf._log import warn_once
from otel_perf._recorder import warn_dropped
from otel_perf._stdio import stdout_is_protocol_pipe

if TYPE_CHECKING:
    from otel_perf._recorder import Recorder

__all__ = [
    "CLIENT_ERROR_CODES",
    "INTERNAL_ERROR",
    "INVALID_ARGUMENTS",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "SPEC_CLIENT_METHODS",
    "SPEC_CLIENT_NOTIFICATION_METHODS",
    "SUCCESS",
    "TOOL_ERROR",
    "UNKNOWN_TOOL",
    "WRAPPER_NAMES",
    "Outcome",
    "SessionTracker",
    "ToolGate",
    "classify_code",
    "classify_exception",
    "classify_result",
    "innermost_cause",
    "is_argument_error",
    "is_error_result",
    "is_pydantic_validation_error",
    "network_transport",
    "record_request",
    "record_tool",
    "request_method",
    "session_close_hook",
    "tool_name",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
RESOURCE_NOT_FOUND: Final = -32002
#: The 2026-07-28 protocol's own client mistakes: routing headers that disagree with the body,
#: a capability the client did not declare, a protocol version the server does not serve.
HEADER_MISMATCH: Final = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY: Final = -32021
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

_METHOD_NOT_FOUND_STR: Final = str(METHOD_NOT_FOUND)

#: JSON-RPC codes that say the *client* got something wrong: parse error, invalid request,
#: method not found, invalid params, resource not found, and the three above.
CLIENT_ERROR_CODES: Final = frozenset(
    {
        PARSE_ERROR,
        INVALID_REQUEST,
        METHOD_NOT_FOUND,
        INVALID_PARAMS,
        RESOURCE_NOT_FOUND,
        HEADER_MISMATCH,
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        UNSUPPORTED_PROTOCOL_VERSION,
    }
)

#: ``error.type`` of an ``isError`` result whose exception no hook let us see (the semantic
#: conventions' value).
TOOL_ERROR: Final = "tool_error"

#: Class names of SDK exceptions that wrap another one: mcp's ``ToolError`` /
#: ``UnexpectedToolError`` / ``ResourceError`` / ``MCPError`` (``McpError`` in 1.x), FastMCP's
#: ``ToolError`` / ``ResourceError`` / ``PromptError`` / ``FastMCPError``.
WRAPPER_NAMES: Final = frozenset(
    {
        "ToolError",
        "UnexpectedToolError",
        "ResourceError",
        "UnexpectedResourceError",
        "PromptError",
        "FastMCPError",
        "MCPError",
        "McpError",
    }
)

#: Class names that mean "no such tool / resource / prompt" (FastMCP raises them).
_NOT_FOUND_NAMES: Final = frozenset({"NotFoundError", "DisabledError"})

#: How deep :func:`innermost_cause` looks; a cause chain is never this long in practice, and a
#: cycle (possible with ``__context__``) must not loop.
_MAX_DEPTH: Final = 32


class Outcome(NamedTuple):
    """How one request ended. ``Outcome()`` is a success."""

    error_type: str | None = None
    """``error.type``: the server failed. ``None``: it did not."""
    status_code: str | None = None
    """``rpc.response.status_code``: the JSON-RPC error code (as a string) of the answer."""
    client_error: bool = False
    """The client got it wrong (unknown tool, bad arguments, ...): not a server failure."""


SUCCESS: Final = Outcome()
UNKNOWN_TOOL: Final = Outcome(status_code=str(INVALID_PARAMS), client_error=True)
_INVALID_PARAMS: Final = UNKNOWN_TOOL
#: A ``tools/call`` the SDK refused before the tool ran (its arguments failed the input schema).
INVALID_ARGUMENTS: Final = _INVALID_PARAMS
_CANCELLED: Final = Outcome(error_type="CancelledError")


def _is_wrapper(exc: BaseException) -> bool:
    return any(cls.__name__ in WRAPPER_NAMES for cls in type(exc).__mro__[:-2])


def _wrapped(exc: BaseException) -> BaseException | None:
    cause = exc.__cause__
    if cause is None and not exc.__suppress_context__:
        cause = exc.__context__
    return cause


def innermost_cause(exc: BaseException) -> BaseException:
    """The exception an SDK wrapper chain stands for (see the module docstring)."""
    current = exc
    for _ in range(_MAX_DEPTH):
        if not _is_wrapper(current):
            return current
        inner = _wrapped(current)
        if inner is None:
            return current
        current = inner
    return current


def _json_rpc_code(exc: BaseException) -> int | None:
    # mcp's MCPError (1.x: McpError) carries ``error: ErrorData(code, message, data)``.
    code = getattr(getattr(exc, "error", None), "code", None)
    return code if type(code) is int else None


def is_pydantic_validation_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a pydantic ``ValidationError`` (recognised by class, not import)."""
    if exc is None:
        return False
    return any(
        cls.__name__ == "ValidationError" and cls.__module__.startswith("pydantic")
        for cls in type(exc).__mro__
    )


def is_argument_error(exc: BaseException) -> bool:
    """Whether ``exc`` is how an SDK says a call's arguments failed validation.

    - pydantic's ``ValidationError`` itself (the SDK validating request params);
    - an mcp ``ToolError`` (not ``UnexpectedToolError``) whose direct ``__cause__`` is a pydantic
      ``ValidationError``: how ``MCPServer`` (2.x) and mcp 1.x's ``FastMCP`` report arguments
      that do not match the tool's input schema;
    - FastMCP's ``fastmcp.exceptions.ValidationError``.

    A tool that itself raises a pydantic error (parsing an upstream answer, say) is a crash the
    SDK wraps in ``UnexpectedToolError``, or a deliberate ``ToolError`` the SDK wraps again, so it
    is not mistaken for the client's fault.
    """
    if is_pydantic_validation_error(exc):
        return True
    cls = type(exc)
    if cls.__name__ == "ValidationError" and cls.__module__.startswith("fastmcp"):
        return True
    return cls.__name__ == "ToolError" and is_pydantic_validation_error(exc.__cause__)


def classify_exception(exc: BaseException, *, wire: bool) -> Outcome:
    """The outcome of a request that raised ``exc`` (see the module docstring).

    ``wire=True``: the SDK answers ``exc`` as a JSON-RPC error, so the outcome carries its code
    (``-32603`` for anything that is not an MCP error). ``wire=False``: the SDK folds it into an
    ``isError`` result (a status code is then given only to client mistakes).
    """
    try:
        if isinstance(exc, asyncio.CancelledError):
            return _CANCELLED
        code = _json_rpc_code(exc)
        if code is not None:
            inner = innermost_cause(exc)
            if inner is exc or code in CLIENT_ERROR_CODES:
                return classify_code(code)
            return Outcome(error_type=type(inner).__name__, status_code=str(code))
        if is_argument_error(exc) or type(exc).__name__ in _NOT_FOUND_NAMES:
            return _INVALID_PARAMS
        error = type(innermost_cause(exc)).__name__
        return Outcome(error_type=error, status_code=str(INTERNAL_ERROR) if wire else None)
    except Exception:  # a hostile exception object must not break the server
        return Outcome(error_type=n.OTHER)


def classify_code(code: int) -> Outcome:
    """The outcome of a request answered with the JSON-RPC error ``code`` (no exception seen)."""
    status = str(code)
    if code in CLIENT_ERROR_CODES:
        return Outcome(status_code=status, client_error=True)
    return Outcome(error_type=status, status_code=status)


_TOOL_ERROR_OUTCOME: Final = Outcome(error_type=TOOL_ERROR)


def classify_result(result: object) -> Outcome:
    """The outcome of a ``tools/call`` that returned ``result``: ``isError`` is a failure."""
    return _TOOL_ERROR_OUTCOME if is_error_result(result) else SUCCESS


def tool_name(params: object) -> object:
    """The tool name of a ``tools/call`` from raw params (a mapping) or a typed params model."""
    # ``type() is dict`` first: this runs on every request, and an ABC isinstance check is a
    # Python-level call.
    if type(params) is dict or isinstance(params, Mapping):
        return params.get("name")
    return getattr(params, "name", None)


#: Per result type, the attribute that carries its ``isError`` flag (``None``: none). mcp 2.x and
#: FastMCP results have ``is_error``, mcp 1.x results ``isError``; asking a pydantic model for a
#: name it does not have raises inside it, which costs more than the rest of the check.
_MAPPING: Final = "<mapping>"  # a raw result: its "isError" key
_UNKNOWN: Final = "<unknown>"
_ERROR_FLAG_NAMES: dict[type, str | None] = {dict: _MAPPING}
_MAX_RESULT_TYPES: Final = 64


def is_error_result(result: object) -> bool:
    """Whether a ``tools/call`` result reports a tool error (``isError: true``)."""
    kind = type(result)
    name = _ERROR_FLAG_NAMES.get(kind, _UNKNOWN)
    if name is _UNKNOWN:
        if isinstance(result, Mapping):
            return result.get("isError") is True
        name = next((flag for flag in ("is_error", "isError") if hasattr(result, flag)), None)
        if len(_ERROR_FLAG_NAMES) < _MAX_RESULT_TYPES:
            _ERROR_FLAG_NAMES[kind] = name
    elif name is _MAPPING:
        return result.get("isError") is True  # type: ignore[attr-defined]
    return name is not None and getattr(result, name, None) is True


def _spec_methods() -> tuple[frozenset[str], frozenset[str]]:
    # mcp 2.x lists them publicly in mcp-types; older SDKs get the 2025-11-25 lists below.
    try:
        from mcp_types import methods  # noqa: PLC0415
    except ImportError:
        return _FALLBACK_REQUESTS, _FALLBACK_NOTIFICATIONS
    requests = getattr(methods, "SPEC_CLIENT_METHODS", None)
    notifications = getattr(methods, "SPEC_CLIENT_NOTIFICATION_METHODS", None)
    return (
        frozenset(requests) if requests else _FALLBACK_REQUESTS,
        frozenset(notifications) if notifications else _FALLBACK_NOTIFICATIONS,
    )


_FALLBACK_REQUESTS: Final = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
    }
)
_FALLBACK_NOTIFICATIONS: Final = frozenset(
    {
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "notifications/tasks/status",
    }
)

SPEC_CLIENT_METHODS, SPEC_CLIENT_NOTIFICATION_METHODS = _spec_methods()


def request_method(method: object, is_notification: bool, outcome: Outcome) -> object:
    """The ``mcp.method.name`` to record, folding methods nobody serves into ``_OTHER``.

    A client can send any method string; recording it verbatim would let it grow the metric's
    series without bound. A request answered "method not found" whose method is not one of
    :data:`SPEC_CLIENT_METHODS`, and a notification outside
    :data:`SPEC_CLIENT_NOTIFICATION_METHODS`, record as ``_OTHER``.
    """
    if is_notification:
        return method if method in SPEC_CLIENT_NOTIFICATION_METHODS else n.OTHER
    if outcome.status_code == _METHOD_NOT_FOUND_STR and method not in SPEC_CLIENT_METHODS:
        return n.OTHER
    return method


class ToolGate:
    """Which tool names the server has registered; only those become ``gen_ai.tool.name``.

    A name is known once ``lookup(name)`` (the SDK's own registry, when the integration has one)
    says so, once it appeared in a ``tools/list`` answer (:meth:`learn_listing`), or once the
    integration saw the SDK run it (:meth:`add`). Tools registered at run time are picked up the
    same ways. Every other name records as ``_OTHER``, so made-up names from a client can never
    take the place of real tools under ``METRICS_MAX_TOOLS``.

    The known set is bounded by :data:`MAX_KNOWN` (a server with more registered tools than that
    has its extra ones counted under ``_OTHER``).
    """

    MAX_KNOWN: Final = 100_000

    def __init__(self, lookup: Callable[[str], bool] | None = None) -> None:
        self._known: set[str] = set()
        self._lookup = lookup

    def known(self, name: object) -> bool:
        """Whether ``name`` is a registered tool (one set lookup for names seen before)."""
        if type(name) is not str:  # a client can send any JSON value, unhashable ones too
            return False
        if name in self._known:
            return True
        if self._lookup is None:
            return False
        try:
            found = self._lookup(name)
        except Exception as exc:
            warn_once(
                "mcp-tool-lookup",
                "otel-perf: the server's tool lookup failed (%s); tools are learned from "
                "tools/list answers only",
                type(exc).__name__,
            )
            self._lookup = None
            return False
        if found:
            self.add(name)
        return bool(found)

    def resolve(self, name: object) -> object:
        """``name`` if it is a registered tool, else ``_OTHER``."""
        return name if self.known(name) else n.OTHER

    def add(self, name: object) -> None:
        """Mark ``name`` as registered (the SDK found and ran it)."""
        if type(name) is str and len(self._known) < self.MAX_KNOWN:
            self._known.add(name)

    def learn_listing(self, result: object) -> None:
        """Add every tool name of a ``tools/list`` result (a mapping or a typed model)."""
        try:
            tools = result.get("tools") if isinstance(result, Mapping) else None
            if tools is None:
                tools = getattr(result, "tools", None)
            if tools is None and isinstance(result, (list, tuple)):
                tools = result  # FastMCP hands its middleware the list of Tool objects
            for tool in tools or ():
                self.add(
                    tool.get("name") if isinstance(tool, Mapping) else getattr(tool, "name", None)
                )
        except Exception as exc:
            warn_once(
                "mcp-tool-listing",
                "otel-perf: could not read tool names from a tools/list answer (%s)",
                type(exc).__name__,
            )


def network_transport(over_http: bool) -> str | None:
    """``network.transport`` of a request: ``"tcp"`` over HTTP; ``"pipe"`` when this process's
    stdout is its stdio protocol pipe (see :mod:`otel_perf._stdio`); else ``None`` (omitted)."""
    if over_http:
        return "tcp"
    return "pipe" if stdout_is_protocol_pipe() else None


def session_close_hook(
    session: object,
) -> tuple[object, Callable[[Callable[[], None]], object]] | None:
    """(key, register-a-close-callback) of an SDK ``ServerSession``, or ``None`` (one warning).

    Neither SDK generation has a public session lifecycle hook, so this reads one **private**
    attribute per generation, the path FastMCP itself uses:

    - mcp 2.x: the per-connection object (``mcp.server.connection.Connection``) has a documented
      ``exit_stack`` that the SDK unwinds when the connection ends (client EOF, HTTP DELETE, idle
      timeout, crash, shutdown), reachable from a request only through ``session._connection``;
    - mcp 1.x (under FastMCP 3.x): the session itself unwinds its ``_exit_stack`` when its
      context exits, which it does when the connection ends.

    If a future SDK moves them, sessions are not measured (one warning); requests and tools
    still are. (The mcp 1.x low-level integration needs neither: it sees each session's end
    through the public ``Server.run()``.)
    """
    connection = getattr(session, "_connection", None)
    if connection is not None:
        key: object = connection
        register = getattr(getattr(connection, "exit_stack", None), "callback", None)
    else:
        key = session
        register = getattr(getattr(session, "_exit_stack", None), "callback", None)
    if not callable(register):
        warn_once(
            "mcp-sessions",
            "otel-perf: this mcp SDK version does not expose the end of a session "
            "(session._connection.exit_stack in mcp 2.x, session._exit_stack in 1.x); sessions "
            "are not measured. Requests and tool calls still are.",
        )
        return None
    return key, register


class SessionTracker:
    """Handshake sessions: open count and ``mcp.server.session.duration`` when each ends.

    The integration calls :meth:`opened` after a successful ``initialize`` with the object that
    lives as long as the connection (``key``, held weakly; a repeated ``initialize`` on it is one
    session) and ``on_close``, a function that registers a callback the SDK runs once when the
    connection ends. If registering fails, the session is not counted (one warning).
    """

    def __init__(self) -> None:
        self._counted: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def opened(
        self,
        recorder: Recorder,
        key: object,
        on_close: Callable[[Callable[[], None]], object],
        transport: str | None = None,
    ) -> None:
        """Count one session open until ``on_close`` fires; never raises."""
        try:
            with self._lock:
                if key in self._counted:
                    return
                self._counted.add(key)
            start = time.monotonic()
            done = False

            def closed() -> None:
                nonlocal done
                if done:
                    return
                done = True
                recorder.session_finished(time.monotonic() - start, transport)

            recorder.session_started()
            try:
                on_close(closed)
            except Exception:
                done = True
                recorder.session_finished()  # never opened: no duration either
                raise
        except Exception as exc:
            warn_once(
                "mcp-sessions-error",
                "otel-perf: could not track an MCP session (%s); active sessions may be "
                "undercounted",
                type(exc).__name__,
            )


def record_tool(
    recorder: Recorder, name: object, seconds: float, outcome: Outcome, transport: str | None
) -> None:
    """Record one finished ``tools/call`` of tool ``name`` (already gated by :class:`ToolGate`).

    Never raises: the recorder drops what it cannot make sense of, with one warning.
    """
    try:
        recorder.record_mcp_tool(name, seconds, outcome.error_type, outcome.status_code, transport)
    except Exception as exc:  # e.g. a recorder of another otel-perf version
        warn_dropped("tool", exc)


def record_request(
    recorder: Recorder, method: object, seconds: float, outcome: Outcome, transport: str | None
) -> None:
    """Record one finished request or notification other than ``tools/call``; never raises."""
    try:
        recorder.record_mcp_request(
            method, seconds, outcome.error_type, outcome.status_code, transport
        )
    except Exception as exc:
        warn_dropped("request", exc)
