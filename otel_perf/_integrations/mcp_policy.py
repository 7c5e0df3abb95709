"""What the mcp SDK and FastMCP integrations share: error policy, method labels, sessions.

Imported only by :mod:`otel_perf.mcp` and :mod:`otel_perf.fastmcp`, after they checked that the
``mcp`` SDK is installed (FastMCP depends on it), so importing ``mcp`` here is safe.

**Which JSON-RPC errors count as failures.** A request that ends in a JSON-RPC error whose code
says *the client* got something wrong is recorded without ``error.type``, as the newer MCP
semantic-convention drafts ask of servers: ``-32700`` parse error, ``-32600`` invalid request,
``-32601`` method not found, ``-32602`` invalid params (pydantic ``ValidationError`` is how the SDK
raises it), and ``-32002`` resource not found. The server did its job; counting these as server
failures would let any client inflate a tool's error rate. Every other code is a failure with the
code as ``error.type`` (``"-32603"``, ``"-32001"``, ...); any other exception is a failure with its
class name (``asyncio.CancelledError`` included: a cancelled request did not complete).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any, Final

from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from otel_perf import _semconv as n
from otel_perf._log import warn_once
from otel_perf._recorder import Recorder

#: JSON-RPC codes that are the client's fault; see the module docstring.
CLIENT_ERROR_CODES: Final = frozenset({-32700, -32600, -32601, -32602, -32002})
METHOD_NOT_FOUND: Final = -32601

#: ``error.type`` of a ``tools/call`` whose result has ``isError: true`` and whose exception the
#: SDK did not let us see (the semantic conventions' value).
TOOL_ERROR: Final = "tool_error"


def _spec_methods() -> tuple[frozenset[str], frozenset[str]]:
    # Public (listed in ``__all__``) in mcp-types 2.3; a future rename only loses the filter.
    try:
        from mcp_types import methods  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the installed mcp-types
        return frozenset(), frozenset()
    requests: frozenset[str] = getattr(methods, "SPEC_CLIENT_METHODS", frozenset())
    notifications: frozenset[str] = getattr(
        methods, "SPEC_CLIENT_NOTIFICATION_METHODS", frozenset()
    )
    return frozenset(requests), frozenset(notifications)


SPEC_CLIENT_METHODS, SPEC_CLIENT_NOTIFICATION_METHODS = _spec_methods()


def error_type(exc: BaseException) -> str | None:
    """``error.type`` of a request that raised ``exc``; ``None``: not a server failure."""
    if isinstance(exc, MCPError):
        code = exc.error.code
        return None if code in CLIENT_ERROR_CODES else str(code)
    if isinstance(exc, ValidationError):  # the SDK answers it with -32602 invalid params
        return None
    if isinstance(exc, asyncio.CancelledError):
        return "CancelledError"
    return type(exc).__name__


def tool_error_type(exc: BaseException) -> str | None:
    """Like :func:`error_type`, but a tool-error wrapper reports the exception it wraps.

    Both SDKs wrap a crashing tool in a ``ToolError`` whose ``__cause__`` is the original
    exception; that class is the useful ``error.type``. A ``ToolError`` the tool raised itself
    (no cause) stays ``ToolError``.
    """
    cause = exc.__cause__
    if cause is not None and type(exc).__name__ in ("ToolError", "UnexpectedToolError"):
        return type(cause).__name__
    return error_type(exc)


def request_method(method: object, is_notification: bool, exc: BaseException | None) -> object:
    """The ``mcp.method.name`` to record, folding methods nobody serves into ``_OTHER``.

    A client can send any method string; recording it verbatim would let it grow the metric's
    series without bound. Requests answered with "method not found" and notifications outside
    the specification are recorded as ``_OTHER``.
    """
    if is_notification:
        if method in SPEC_CLIENT_NOTIFICATION_METHODS or not SPEC_CLIENT_NOTIFICATION_METHODS:
            return method
        return n.OTHER
    if isinstance(exc, MCPError) and exc.error.code == METHOD_NOT_FOUND:
        return method if method in SPEC_CLIENT_METHODS else n.OTHER
    return method


def tool_name(params: object) -> object:
    """The tool name of a ``tools/call`` from raw params (a mapping) or a typed params model."""
    if isinstance(params, Mapping):
        return params.get("name")
    return getattr(params, "name", None)


def is_error_result(result: object) -> bool:
    """Whether a ``tools/call`` result reports a tool error (``isError: true``)."""
    if isinstance(result, Mapping):
        return result.get("isError") is True
    return getattr(result, "is_error", False) is True


class SessionCounter:
    """Counts handshake sessions: +1 after a successful ``initialize``, -1 when it closes.

    mcp 2.x has no public session lifecycle hook. The per-connection object
    (``mcp.server.connection.Connection``) has a documented ``exit_stack`` that the SDK unwinds
    when the connection ends (client EOF, HTTP DELETE, idle timeout, crash, shutdown), but it is
    reachable from a request only through the **private** ``session._connection`` — the same
    path FastMCP itself uses. If a future SDK moves it, sessions are not measured (one warning);
    requests and tools are still measured and the server is untouched.
    """

    def __init__(self) -> None:
        # Connections already counted: a repeated ``initialize`` on one connection is one session.
        self._counted: weakref.WeakSet[Any] = weakref.WeakSet()

    def opened(self, recorder: Recorder, session: object) -> None:
        """Count the session of ``session`` (a ``ServerSession``) until its connection ends."""
        try:
            connection = getattr(session, "_connection", None)
            register = getattr(getattr(connection, "exit_stack", None), "callback", None)
            if connection is None or not callable(register):
                warn_once(
                    "mcp-sessions",
                    "otel-perf: this mcp SDK version does not expose the connection of a session "
                    "(session._connection.exit_stack); active sessions are not measured. "
                    "Requests and tool calls still are.",
                )
                return
            if connection in self._counted:
                return
            self._counted.add(connection)
            recorder.session_started()
            try:
                register(recorder.session_finished)
            except Exception:
                recorder.session_finished()
                raise
        except Exception as exc:
            warn_once(
                "mcp-sessions-error",
                "otel-perf: could not track an MCP session (%s); active sessions may be "
                "undercounted",
                type(exc).__name__,
            )
