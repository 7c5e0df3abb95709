"""Where the transport taps go on an mcp 2.x server, so messages rejected before any middleware
are counted (the rules: :mod:`otel_perf._integrations.rejected`).

- **``Server.run()``** (public: stdio, SSE and custom stream transports call it once per
  connection) is wrapped on the low-level server instance: :func:`stream_tap.wrap_run`.
- **Streamable HTTP** of ``Server`` and ``MCPServer``: ``Server.streamable_http_app()``
  (public; ``MCPServer``'s own method and its ``run("streamable-http")`` go through it) is
  wrapped on the instance so that the session manager it creates (the public
  ``session_manager``) gets :class:`~otel_perf._integrations.http_tap.HttpTap` around its
  ``asgi_app``, the ASGI callable every request of the ``/mcp`` route goes through. A manager
  created before :func:`instrument_lowlevel` is tapped at once.
- **FastMCP 4** builds its own session manager at each start of the app ``http_app()``
  returns, so :func:`instrument_fastmcp` wraps ``http_app`` (public) and adds the tap to the
  returned Starlette app with Starlette's ``add_middleware`` (the tap only counts POSTs answered
  with a JSON-RPC error, so the app's other routes are not counted). FastMCP's otel-perf
  middleware is a FastMCP one; the claims come from :class:`ClaimFirst`, put first in the
  low-level server's ``middleware`` (every message FastMCP's middleware sees passes there).

Two attributes are private, each guarded (one warning, requests still measured by the
middleware): ``MCPServer._lowlevel_server`` (for ``run()``; its HTTP goes through the public
method) and FastMCP's ``_mcp_server``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mcp.server import Server
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from otel_perf._integrations import stream_tap
from otel_perf._integrations.http_tap import HttpTap
from otel_perf._integrations.rejected import claim
from otel_perf._log import warn_once

__all__ = ["ClaimFirst", "instrument_fastmcp", "instrument_lowlevel", "lowlevel_server"]

_MISSING = (
    "otel-perf: %s has no %s here (this SDK version moved it); messages its transports reject "
    "before any middleware are not counted. Everything else still is."
)


def _guarded(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:
        warn_once(
            f"mcp-transport-tap:{what}",
            "otel-perf: could not watch the %s transport (%s); messages it rejects before any "
            "middleware are not counted",
            what,
            type(exc).__name__,
        )


def _tap_session_manager(server: Server[Any]) -> None:
    """Put :class:`HttpTap` around the ASGI callable of the server's session manager, if any."""
    try:
        manager = server.session_manager
    except RuntimeError:  # no streamable-HTTP app built yet
        return
    app = getattr(manager, "asgi_app", None)
    if callable(app) and not isinstance(app, HttpTap):
        # Read at every request by the SDK's ASGI route (and ``handle_request``); typed as the
        # SDK's body-limit middleware, which HttpTap wraps.
        setattr(manager, "asgi_app", HttpTap(app))  # noqa: B010


def _wrap_app_factory(server: Server[Any]) -> None:
    original: Callable[..., Any] | None = getattr(server, "streamable_http_app", None)
    if not callable(original) or getattr(original, "__otel_perf_tap__", False):
        return

    @functools.wraps(original)
    def streamable_http_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        _guarded("streamable HTTP", lambda: _tap_session_manager(server))
        return app

    streamable_http_app.__otel_perf_tap__ = True  # type: ignore[attr-defined]
    setattr(server, "streamable_http_app", streamable_http_app)  # noqa: B010 - on the instance


def instrument_lowlevel(server: Server[Any]) -> None:
    """Tap ``run()`` and streamable HTTP of a low-level ``Server`` (idempotent)."""
    _guarded("stream", lambda: stream_tap.wrap_run(server))
    _guarded("streamable HTTP", lambda: _wrap_app_factory(server))
    _guarded("streamable HTTP", lambda: _tap_session_manager(server))


def lowlevel_server(server: object, attribute: str, owner: str) -> Server[Any] | None:
    """The low-level ``Server`` an ``MCPServer`` or a FastMCP keeps in the private
    ``attribute``; ``None`` (one warning) if this SDK version keeps none there."""
    inner = getattr(server, attribute, None)
    if isinstance(inner, Server):
        return inner
    warn_once(f"mcp-lowlevel:{owner}", _MISSING, owner, attribute)
    return None


class ClaimFirst:
    """A ``ServerMiddleware`` that only tells a transport tap the message reached the middleware
    (for FastMCP, whose otel-perf middleware runs deeper in FastMCP's own chain)."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        claim(ctx.request_id)
        return await call_next(ctx)


def _claim_first(server: Server[Any]) -> None:
    chain = server.middleware
    ours = [entry for entry in chain if isinstance(entry, ClaimFirst)]
    if ours and chain[0] is ours[0]:
        return
    for entry in ours:
        chain.remove(entry)
    chain.insert(0, ours[0] if ours else ClaimFirst())


def _wrap_fastmcp_http_app(server: Any) -> None:
    original: Callable[..., Any] | None = getattr(server, "http_app", None)
    if not callable(original) or getattr(original, "__otel_perf_tap__", False):
        return

    @functools.wraps(original)
    def http_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        _guarded("streamable HTTP", lambda: app.add_middleware(HttpTap))
        return app

    http_app.__otel_perf_tap__ = True  # type: ignore[attr-defined]
    setattr(server, "http_app", http_app)  # noqa: B010 - on the instance


def instrument_fastmcp(server: Any) -> None:
    """Tap the transports of a FastMCP 4 server (on mcp 2.x; idempotent)."""
    lowlevel = lowlevel_server(server, "_mcp_server", "this FastMCP")
    if lowlevel is None or not isinstance(getattr(lowlevel, "middleware", None), list):
        return
    _guarded("stream", lambda: _claim_first(lowlevel))
    _guarded("stream", lambda: stream_tap.wrap_run(lowlevel))
    _guarded("streamable HTTP", lambda: _wrap_fastmcp_http_app(server))
