"""The POSTs an MCP streamable-HTTP transport answers itself, before any middleware runs.

An ASGI middleware around the transport (mcp 2.x, its own ``StreamableHTTPSessionManager`` or
FastMCP 4's): a POST carries one JSON-RPC message, and when the transport refuses it — a body
that is not JSON (``-32700``), not one JSON-RPC message (``-32602`` in the handshake era,
``-32600`` in the 2026 era), a missing or unknown session (``-32600``), the 2026 envelope or
routing headers wrong (``-32602``, ``-32020``, ``-32022``), too many sessions (``-32603``) — it
answers with an HTTP error status and a JSON-RPC error body, and the server's middleware never
sees the message. :class:`HttpTap` records such a POST as one request with that code, unless
otel-perf's middleware claimed a message of it (it then counted the POST itself: a 2026-era
request the kernel answers 404 "method not found" is counted once).

What it does not count: HTTP refusals without a JSON-RPC body (405, 406 in the 2026 era, 413
body too large, 421/403 of the SDK's DNS-rebinding check, an authentication 401), and GET and
DELETE requests, which carry no message. Everything passes through unchanged: only the status,
the content type and, for an error status, the first :data:`MAX_ANSWER_BYTES` of the body are
read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from otel_perf._integrations.rejected import (
    CLAIMS,
    MAX_ANSWER_BYTES,
    code_of_answer,
    record_rejected,
)
from otel_perf._log import warn_once

__all__ = ["HttpTap"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = b"application/json"


class _PostClaims:
    """One POST: whether otel-perf's middleware saw a message of it."""

    __slots__ = ("claimed",)

    def __init__(self) -> None:
        self.claimed = False

    def claim(self, request_id: object) -> None:
        self.claimed = True


class _Answer:
    """Passes one POST's ASGI answer through; an error answer with a JSON-RPC error body and no
    claim is recorded just before its last part is sent, so the count is there by the time the
    client has the answer."""

    __slots__ = ("_claims", "_keep", "_send", "_start", "body")

    def __init__(self, send: Send, claims: _PostClaims) -> None:
        self._send = send
        self._claims = claims
        self._start = perf_counter()
        self._keep = False
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        try:
            self._look(message)
        except Exception as exc:
            self._keep = False
            warn_once(
                "mcp-http-tap",
                "otel-perf: could not read an MCP HTTP answer (%s); requests the transport "
                "rejects may go uncounted",
                type(exc).__name__,
            )
        await self._send(message)

    def _look(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            status = int(message.get("status", 0))
            headers = message.get("headers") or ()
            self._keep = status >= 400 and any(
                name.lower() == b"content-type" and value.split(b";")[0].strip() == _JSON
                for name, value in headers
            )
        elif kind == "http.response.body" and self._keep:
            chunk = message.get("body", b"")
            if len(self.body) + len(chunk) > MAX_ANSWER_BYTES:
                self._keep = False
                self.body.clear()
                return
            self.body += chunk
            if not message.get("more_body", False):
                self._keep = False
                code = None if self._claims.claimed else code_of_answer(bytes(self.body))
                if code is not None:
                    record_rejected(code, perf_counter() - self._start, "tcp")


class HttpTap:
    """ASGI middleware counting the POSTs the wrapped transport refuses on its own.

    Nested taps (an app built twice around one transport) count once: only the outermost does.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or isinstance(CLAIMS.get(), _PostClaims)
        ):
            await self.app(scope, receive, send)
            return
        claims = _PostClaims()
        token = CLAIMS.set(claims)
        try:
            await self.app(scope, receive, _Answer(send, claims).send)
        finally:
            CLAIMS.reset(token)
