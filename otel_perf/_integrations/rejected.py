"""Messages an MCP transport rejects before any middleware runs: how they are counted.

mcp 2.x reads every message in its transport and refuses some before the middleware chain
(where otel-perf's middleware is first) ever sees them: text that is not JSON, JSON that is not
one JSON-RPC message, a request of the other protocol era, a missing session. The client is
still owed an answer for each, and each is one request. The transport taps
(:mod:`otel_perf._integrations.stream_tap` for ``Server.run()`` transports such as stdio,
:mod:`otel_perf._integrations.http_tap` for streamable HTTP) see every message or answer; this
module is what they share, and imports no MCP SDK:

- **claims.** A tap sets :data:`CLAIMS` around what it watches; otel-perf's middleware calls
  :func:`claim` with the request id of every message it sees (and records it itself). What a
  tap sees answered without a claim was rejected before the middleware, and the tap records it.
  So nothing is counted twice, and nothing the middleware counts is counted by a tap.
- **codes.** A rejected message is recorded under ``mcp.method.name`` ``_OTHER`` (nobody served
  it) with its JSON-RPC code as ``rpc.response.status_code``: the code the SDK answered with,
  or, for a line the stdio transport drops without an answer, the code JSON-RPC gives it
  (:func:`code_of_unreadable`: ``-32700`` for text that is not JSON, ``-32600`` for JSON that is
  not one message). Client codes are client mistakes (never a failure); an answer the server
  gave for its own fault (``-32603``) is a failure with that code as its ``error.type``.
"""

from __future__ import annotations

import contextvars
import json
from typing import Final, Protocol

from otel_perf import _semconv as n
from otel_perf._configure import active_recorder
from otel_perf._integrations import mcp_policy as policy

__all__ = [
    "CLAIMS",
    "MAX_ANSWER_BYTES",
    "Claims",
    "claim",
    "code_of_answer",
    "code_of_unreadable",
    "record_rejected",
]

PARSE_ERROR: Final = policy.PARSE_ERROR
INVALID_REQUEST: Final = policy.INVALID_REQUEST

#: An error answer longer than this is not read (a transport's own rejections are a few hundred
#: bytes; a validation message quoting a large body is cut by the SDK itself).
MAX_ANSWER_BYTES: Final = 64 * 1024


class Claims(Protocol):
    """What a tap gives the middleware: ``claim(request_id)`` for each message it sees."""

    def claim(self, request_id: object) -> None: ...


#: The tap watching the current connection (``Server.run()``) or HTTP request, if any. The SDK
#: runs each message's handler in a copy of the context it was received in, so the middleware
#: finds the tap of the connection or request that carried the message.
CLAIMS: contextvars.ContextVar[Claims | None] = contextvars.ContextVar(
    "otel_perf_transport_claims", default=None
)


def claim(request_id: object) -> None:
    """Tell the watching tap, if any, that the middleware saw (and counts) this message."""
    claims = CLAIMS.get()
    if claims is not None:
        claims.claim(request_id)


def code_of_unreadable(exc: BaseException) -> int | None:
    """The JSON-RPC code of a line a transport could not read as a message, from the exception
    it passed on; ``None`` for a blank line (no message) or an exception that is not a reading
    error (a transport fault, not a client's message).

    The SDK reads with pydantic: ``json_invalid`` means the text is not JSON (``-32700``); any
    other validation error means JSON that is not one JSON-RPC message (``-32600``).
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors) or not policy.is_pydantic_validation_error(exc):
        return None
    try:
        first = errors()[0]
        if first.get("type") != "json_invalid":
            return INVALID_REQUEST
        text = first.get("input")
        if isinstance(text, (str, bytes)) and not text.strip():
            return None
    except Exception:  # an odd error list: still a message the client sent and nobody read
        return INVALID_REQUEST
    return PARSE_ERROR


def code_of_answer(body: bytes) -> int | None:
    """The JSON-RPC error code of an HTTP answer's body, or ``None`` if it is not one JSON-RPC
    error object (plain text, an OAuth error, a result)."""
    if not body or len(body) > MAX_ANSWER_BYTES:
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    error = message.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if type(code) is int else None


def record_rejected(code: int, seconds: float, transport: str | None) -> None:
    """Record one message rejected before any middleware, answered (or due) ``code``."""
    recorder = active_recorder()
    if recorder is None:
        return
    policy.record_request(recorder, n.OTHER, seconds, policy.classify_code(code), transport)
