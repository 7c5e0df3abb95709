"""The messages of an mcp 2.x ``Server.run()`` connection that no middleware sees.

``Server.run(read_stream, write_stream, ...)`` is public and serves one connection over two
streams; stdio (``mcp.server.stdio.stdio_server``), SSE and any custom stream transport call
it. :func:`wrap_run` wraps it on one server instance and hands the SDK two pass-through streams
that report to a :class:`StreamTap`:

- an ``Exception`` on the read stream is a line the transport could not read as a message
  (stdio: text that is not JSON, or JSON that is not one JSON-RPC message). The SDK drops it
  without an answer; the tap records it at once (see
  :func:`otel_perf._integrations.rejected.code_of_unreadable`);
- a request read, then answered with a JSON-RPC error its id was never claimed for, was refused
  before the middleware chain: on a handshake connection a request carrying the 2026-07-28
  envelope (``-32600``); on a 2026 connection ``initialize`` (``-32022``) and requests whose
  envelope fails the SDK's checks (``-32602``, ``-32022``).

Every other request reaches otel-perf's middleware, which claims it (and records it). The claim
reaches the tap through :data:`~otel_perf._integrations.rejected.CLAIMS`: set in the task that
runs ``run()``, and in the context the SDK runs each message's handler in (the read stream's
``last_context``, the sender's context the ``ReadStream`` protocol documents for consumers,
extended here with the tap). Nothing here raises into the SDK: a failing step is one warning.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from time import perf_counter
from types import TracebackType
from typing import Any, Final

import anyio
from mcp.types import JSONRPCError, JSONRPCRequest, JSONRPCResponse

from otel_perf._integrations import mcp_policy as policy
from otel_perf._integrations.rejected import CLAIMS, code_of_unreadable, record_rejected
from otel_perf._log import warn_once

__all__ = ["StreamTap", "wrap_run"]

#: Requests waiting for a claim or an answer on one connection; past this many (a client that
#: never reads its answers), new ones are not watched, so memory stays bounded.
MAX_PENDING: Final = 65_536

_UNSET: Any = object()


def _failed(exc: Exception) -> None:
    """An observation failed: one warning, never an exception in the SDK."""
    warn_once(
        "mcp-stream-tap",
        "otel-perf: could not watch an MCP message on its stream (%s); messages the SDK "
        "rejects before any middleware may go uncounted",
        type(exc).__name__,
    )


class StreamTap:
    """One connection's requests, from arrival until claimed by the middleware or answered."""

    def __init__(self) -> None:
        self._pending: dict[object, float] = {}
        self._transport: str | None = _UNSET

    def claim(self, request_id: object) -> None:
        if request_id is not None:
            self._pending.pop(request_id, None)

    def _transport_of(self, item: object) -> str | None:
        transport = self._transport
        if transport is _UNSET:  # one transport per connection: read it from its first message
            request = getattr(getattr(item, "metadata", None), "request_context", None)
            transport = self._transport = policy.network_transport(request is not None)
        return transport

    def inbound(self, item: object) -> None:
        if isinstance(item, Exception):
            code = code_of_unreadable(item)
            if code is not None:
                record_rejected(code, 0.0, self._transport_of(item))
            return
        message = getattr(item, "message", None)
        # ``type() is`` first: these run for every message, and pydantic's isinstance is an ABC
        # check (a Python-level call).
        if type(message) is not JSONRPCRequest and not isinstance(message, JSONRPCRequest):
            return
        if len(self._pending) < MAX_PENDING:
            self._transport_of(item)
            self._pending[message.id] = perf_counter()

    def outbound(self, item: object) -> None:
        message = getattr(item, "message", None)
        if type(message) is JSONRPCResponse:  # the common case
            self._pending.pop(message.id, None)
        elif isinstance(message, JSONRPCError):
            start = self._pending.pop(message.id, None) if message.id is not None else None
            if start is not None:  # answered, never claimed: refused before the middleware
                record_rejected(message.error.code, perf_counter() - start, self._transport)
        elif isinstance(message, JSONRPCResponse):
            self._pending.pop(message.id, None)

    def close(self) -> None:
        self._pending.clear()


class _Wrapped:
    """What both tapped streams pass through to the real one: closing, ``async with``, and
    any other attribute (``close()``, ``clone()``, ``statistics()``)."""

    def __init__(self, inner: Any, tap: StreamTap) -> None:
        self._inner = inner
        self._tap = tap

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _Wrapped:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _TapReceive(_Wrapped):
    """The read stream ``run()`` is given: each item goes to the tap, then to the SDK.

    For an inner stream that keeps no sender context: ``last_context`` is ``None`` here, as the
    SDK's ``getattr(stream, "last_context", None)`` finds on such a stream (a class attribute,
    so that read does not fall through ``__getattr__`` and raise inside it on every message).
    """

    last_context: contextvars.Context | None = None

    async def receive(self) -> Any:
        item = await self._inner.receive()
        try:  # inline, not a helper taking a callable: this runs for every message
            self._tap.inbound(item)
        except Exception as exc:
            _failed(exc)
        return item

    def __aiter__(self) -> _TapReceive:
        return self

    async def __anext__(self) -> Any:
        # receive() written out again: the SDK iterates, and one coroutine less per message
        try:
            item = await self._inner.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        try:
            self._tap.inbound(item)
        except Exception as exc:
            _failed(exc)
        return item


class _TapContextReceive(_TapReceive):
    """The read stream for an inner stream that keeps each item's sender context (mcp 2.x's
    context streams: stdio, the in-memory transport)."""

    def __init__(self, inner: Any, tap: StreamTap) -> None:
        super().__init__(inner, tap)
        self._context: tuple[object, contextvars.Context | None] = (None, None)

    @property
    def last_context(self) -> contextvars.Context | None:  # type: ignore[override]
        """The sender's context of the last item (``None`` until there is one), with the tap in
        :data:`CLAIMS`: the SDK runs the item's handler in it."""
        sender = self._inner.last_context
        if sender is None:
            return None  # the handler runs in run()'s own context, where CLAIMS is the tap
        seen, ours = self._context
        if seen is not sender or ours is None:
            ours = sender.copy()
            ours.run(CLAIMS.set, self._tap)
            self._context = (sender, ours)
        return ours


def _tap_receive(inner: Any, tap: StreamTap) -> _TapReceive:
    """The tapped read stream for ``inner``: whether it keeps sender contexts is fixed by its
    class (mcp's context stream sets ``last_context`` in its constructor)."""
    if hasattr(inner, "last_context"):
        return _TapContextReceive(inner, tap)
    return _TapReceive(inner, tap)


class _TapSend(_Wrapped):
    """The write stream ``run()`` is given: each answer goes to the tap, then to the client."""

    async def send(self, item: Any) -> None:
        try:
            self._tap.outbound(item)
        except Exception as exc:
            _failed(exc)
        await self._inner.send(item)


def _tapped(args: tuple[Any, ...], kwargs: dict[str, Any], tap: StreamTap) -> tuple[Any, ...]:
    """``run()``'s arguments with its two streams wrapped (given by position or by name)."""
    positional = list(args)
    for index, (name, wrap) in enumerate(
        (("read_stream", _tap_receive), ("write_stream", _TapSend))
    ):
        if index < len(positional):
            positional[index] = wrap(positional[index], tap)
        elif name in kwargs:
            kwargs[name] = wrap(kwargs[name], tap)
    return tuple(positional)


def wrap_run(server: object) -> None:
    """Watch every connection ``server.run()`` serves (on this instance; idempotent)."""
    original = getattr(server, "run", None)
    if not inspect.iscoroutinefunction(original) or getattr(original, "__otel_perf_tap__", False):
        return

    @functools.wraps(original)
    async def run(*args: Any, **kwargs: Any) -> Any:
        tap = StreamTap()
        args = _tapped(args, kwargs, tap)
        token = CLAIMS.set(tap)
        try:
            return await original(*args, **kwargs)
        finally:
            CLAIMS.reset(token)
            tap.close()

    run.__otel_perf_tap__ = True  # type: ignore[attr-defined]
    setattr(server, "run", run)  # noqa: B010 - an instance attribute, on purpose
