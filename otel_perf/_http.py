"""The in-process HTTP endpoint: a small HTTP/1.1 server on an asyncio loop in one thread.

Why not ``http.server.ThreadingHTTPServer``: it spends one thread per connection, so slow or
idle clients (a poller that keeps a connection open, a client that sends a byte every few
seconds) pin threads without bound. Here one event-loop thread reads every request with a
deadline for the whole head, and only the routes' work (a collection, at most) runs on a small,
fixed pool of worker threads. Thread count is therefore fixed: one loop thread plus
``max_workers``.

Routes are plain callables ``(Request) -> Response`` run on the worker pool; they may block.
A route that raises yields a JSON 500 (or 503 for :class:`ServiceUnavailable`) whose body never
contains exception text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from otel_perf._log import logger

MAX_HEAD_BYTES: Final = 64 * 1024
ALLOWED_METHODS: Final = "GET, HEAD, OPTIONS"
_REASONS: Final = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"}
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())


class ServiceUnavailable(Exception):
    """Raised by a route when its data source is failing; becomes a JSON 503."""


Route = Callable[[Request], Response]


def json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Response(status, body, "application/json", headers)


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message, "status": status})


def normalize_path(path: str) -> str:
    """``/metrics/`` and ``/metrics`` are the same route; the root stays ``/``."""
    return path.rstrip("/") or "/"


class MetricsServer:
    """Serve ``routes`` on ``host:port`` until :meth:`stop`.

    >>> server = MetricsServer("127.0.0.1", 0, {"/health": lambda r: json_response(200, {})})
    >>> server.start(); server.port > 0
    True
    >>> server.stop()
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Route],
        *,
        cors_origins: tuple[str, ...] = ("*",),
        auth_token: str | None = None,
        public_paths: frozenset[str] = frozenset({"/health"}),
        max_workers: int = 4,
        head_timeout_s: float = 10.0,
        idle_timeout_s: float = 15.0,
        max_connections: int = 1024,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.routes = {normalize_path(path): route for path, route in routes.items()}
        self._cors_origins = cors_origins
        self._auth_token = auth_token.encode() if auth_token else None
        self._public_paths = public_paths
        self._max_workers = max_workers
        self._head_timeout_s = head_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._max_connections = max_connections
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind now (so a taken port raises ``OSError`` here) and serve on a daemon thread."""
        infos = socket.getaddrinfo(
            self.host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address[:2], family=family, backlog=512)
        try:
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._sock = sock
            self._pool = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="otel-perf-http-worker"
            )
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            # Daemon: a host that exits without calling shutdown() must not hang on our thread.
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="otel-perf-http", daemon=True
            )
            self._thread.start()
            if not ready.wait(timeout=10.0):
                raise OSError("the otel-perf HTTP thread did not start")
        except BaseException:
            sock.close()
            raise

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.set_event_loop(loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(
                self._on_connection, sock=self._sock, limit=MAX_HEAD_BYTES
            )

        try:
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and every connection, then end the thread and the pool."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._close(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout=timeout_s)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._sock is not None:
            self._sock.close()
        self._loop = self._thread = self._pool = self._sock = None

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2.0)

    # --- connections -----------------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - start_server always runs callbacks in a task
            writer.close()
            return
        self._connections.add(task)
        try:
            if len(self._connections) > self._max_connections:
                await self._send(writer, _error(503, "too many connections"), "GET", None, False)
                return
            keep_alive = True
            first = True
            while keep_alive:
                timeout = self._head_timeout_s if first else self._idle_timeout_s
                keep_alive = await self._one_request(reader, writer, timeout)
                first = False
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:  # never let a connection's failure reach the loop's error handler
            logger.debug("otel-perf: connection failed", exc_info=True)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> bool:
        """Serve one request; return whether the connection stays open for another."""
        try:
            # Waiting for the first byte is idleness, not an error: close quietly.
            first = await asyncio.wait_for(reader.readexactly(1), timeout)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError):
            return False
        try:
            # Once a request has begun, its whole head must arrive within one deadline, so a
            # client that trickles bytes (slowloris) is cut off instead of holding on forever.
            head = first + await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), self._head_timeout_s
            )
        except asyncio.TimeoutError:
            await self._send(writer, _error(408, "request timeout"), "GET", None, False)
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, _error(431, "request head too large"), "GET", None, False)
            return False
        except asyncio.IncompleteReadError:
            return False

        parsed = _parse_head(head)
        if isinstance(parsed, Response):
            await self._send(writer, parsed, "GET", None, False)
            return False
        method, target, version, headers = parsed
        path, _, query = target.partition("?")
        path = normalize_path(path)
        request = Request(method, path, query, headers)
        origin = headers.get("origin")

        connection = headers.get("connection", "").lower()
        keep_alive = (version == "HTTP/1.1" and "close" not in connection) or (
            version == "HTTP/1.0" and "keep-alive" in connection
        )
        has_body = "transfer-encoding" in headers or headers.get("content-length", "0") not in (
            "0",
            "",
        )
        if has_body:
            keep_alive = False  # we never read request bodies; closing avoids desync

        response = await self._dispatch(request)
        await self._send(writer, response, method, origin, keep_alive)
        return keep_alive

    async def _dispatch(self, request: Request) -> Response:
        route = self.routes.get(request.path)
        if request.method == "OPTIONS":
            return Response(204, b"", "", (("Allow", ALLOWED_METHODS),))
        if route is None:
            return _error(404, "not found")
        if request.method not in ("GET", "HEAD"):
            status = 405 if request.method in _KNOWN_METHODS else 501
            response = _error(status, "method not allowed")
            return Response(
                status, response.body, response.content_type, (("Allow", ALLOWED_METHODS),)
            )
        if self._auth_token is not None and request.path not in self._public_paths:
            supplied = request.headers.get("authorization", "")
            scheme, _, token = supplied.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(errors="replace"), self._auth_token
            ):
                response = _error(401, "unauthorized")
                return Response(
                    401,
                    response.body,
                    response.content_type,
                    (("WWW-Authenticate", 'Bearer realm="otel-perf"'),),
                )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, route, request)
        except ServiceUnavailable:
            return _error(503, "metrics temporarily unavailable")
        except Exception:
            logger.exception("otel-perf: the handler for %s failed", request.path)
            return _error(500, "internal error")

    def _cors_headers(self, origin: str | None, preflight: bool) -> list[tuple[str, str]]:
        if "*" in self._cors_origins:
            allow = "*"
        elif origin is not None and origin in self._cors_origins:
            allow = origin
        else:
            return []
        headers = [("Access-Control-Allow-Origin", allow)]
        if allow != "*":
            headers.append(("Vary", "Origin"))
        if preflight:
            headers += [
                ("Access-Control-Allow-Methods", ALLOWED_METHODS),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
                ("Access-Control-Max-Age", "600"),
            ]
        return headers

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        method: str,
        origin: str | None,
        keep_alive: bool,
    ) -> None:
        reason = _REASONS.get(response.status, "Unknown")
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
        lines.append("Cache-Control: no-store")
        lines.append("X-Content-Type-Options: nosniff")
        for name, value in (*response.headers, *self._cors_headers(origin, method == "OPTIONS")):
            lines.append(f"{name}: {value}")
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head if method == "HEAD" else head + response.body)
        await asyncio.wait_for(writer.drain(), timeout=self._head_timeout_s)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]] | Response:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return _error(400, "bad request")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return _error(400, "bad request line")
    method, target, version = parts
    if not method.isalpha() or not method.isupper() or len(method) > 16:
        return _error(400, "bad method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            return _error(505, "HTTP version not supported")
        return _error(400, "bad request line")
    if not target.startswith("/") and target != "*":
        return _error(400, "bad request target")
    if len(target) > 8192:
        return _error(414, "request target too long")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            return _error(400, "bad header")
        headers[name.lower()] = value.strip()
    return method, target, version, headers
