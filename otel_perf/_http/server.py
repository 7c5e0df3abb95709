"""The in-process HTTP endpoint: a small HTTP/1.1 server on an asyncio loop in one thread.

Why not ``http.server.ThreadingHTTPServer``: it spends one thread per connection, so slow or
idle clients (a poller that keeps a connection open, a client that sends a byte every few
seconds) pin threads without bound. Here one event-loop thread reads every request with a
deadline for the whole head, and only the routes' work (a collection, at most) runs on a small,
fixed pool of worker threads. Thread count is therefore fixed: one loop thread plus
``max_workers``.

Routes are plain callables ``(Request) -> Response`` run on the worker pool; they may block.
Routes listed in ``inline_paths`` (``/health`` by default) must not block: they run on the loop
itself, so liveness answers at once even while every worker is busy or stuck. A route that
raises yields a JSON 500 (or 503 for :class:`ServiceUnavailable`, or for a route that takes
longer than ``route_timeout_s``) whose body never contains exception text.

Everything a client can send is answered with a 4xx or cut off by a deadline: a malformed or
oversized head, an unknown method, a bad request target, a head that trickles in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import math
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, NamedTuple

from otel_perf._json import to_json_bytes
from otel_perf._log import logger

#: The largest request head read; a bigger one gets 431. Together with the connection cap this
#: bounds what partial heads can make the host buffer: MAX_CONNECTIONS x 2 x MAX_HEAD_BYTES.
MAX_HEAD_BYTES: Final = 32 * 1024
MAX_TARGET_LENGTH: Final = 8192
#: Connections served at once. A telemetry side-channel has a few pollers; every connection
#: costs the host one file descriptor, so the cap is what bounds the endpoint's share of them.
#: Beyond it, new connections wait in the kernel's queue (not in this process) while a
#: connection that has been idle for IDLE_EVICT_S is closed to make room.
MAX_CONNECTIONS: Final = 64
#: The listening socket's queue: connections the kernel holds until one is accepted.
BACKLOG: Final = 64
#: At the cap, while connections wait to be accepted, every connection that has waited this
#: long for a request is closed to make room: a real client sends its request at once, so
#: idle connections held by an attacker cannot keep pollers waiting.
IDLE_EVICT_S: Final = 0.25
#: How often the endpoint looks for idle connections while at the cap. Idleness is counted
#: only over time the endpoint watched: from the first look after reaching the cap, and again
#: from a look that came more than two intervals late (this process was paused or descheduled,
#: and its clients, on the same host, may have been too).
EVICT_LOOK_S: Final = IDLE_EVICT_S / 5
#: Seconds the kernel holds a connection that has sent nothing before handing it over
#: (TCP_DEFER_ACCEPT, Linux; rounded up to its SYN-ACK resends: 1 s + 2 s).
DEFER_ACCEPT_S: Final = 3
#: After answering a request (other than ``/health``), the endpoint rests this many times as
#: long as the answer took, at most MAX_PACE_S: answering takes at most a tenth of the time.
PACE_FACTOR: Final = 9.0
MAX_PACE_S: Final = 2.0
#: Attack logs: one line per kind and interval, with how many times it happened.
ALERT_INTERVAL_S: Final = 60.0
#: After an error answer, how long (and how many bytes) the rest of the client's input is read
#: and thrown away before closing: closing a socket with unread input makes the kernel send a
#: reset, which can destroy the answer before the client has read it.
LINGER_S: Final = 1.0
LINGER_MAX_BYTES: Final = 1024 * 1024
ALLOWED_METHODS: Final = "GET, HEAD, OPTIONS"
_REASONS: Final = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
# What a connection does after a request.
_KEEP_OPEN: Final = 0
_CLOSE: Final = 1
_LINGER: Final = 2  # close, but drain the client's unread input first (see LINGER_S)
_MAX_BLANK_BYTES: Final = 8
_ABORT: Final = 3  # drop at once, unsent output included (the client is gone or not reading)
_CONTROL_IN_VALUE: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
#: Headers that frame the request or say who it is for and from: one of each, or a 400.
_SINGLE_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "host", "authorization", "origin"}
)
_LOCAL_ORIGIN: Final = re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?")
#: Host names every endpoint answers to (a port may follow).
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class Request(NamedTuple):
    method: str
    path: str
    query: str
    headers: Mapping[str, str]


class Response(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class ServiceUnavailable(Exception):
    """Raised by a route when its data source is failing; becomes a JSON 503."""


Route = Callable[[Request], Response]


def json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    body = to_json_bytes(payload)
    return Response(status, body, "application/json", headers)


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message, "status": status})


def _basic_password(credentials: str) -> str:
    """The password of HTTP Basic ``credentials`` (base64 of ``user:password``), or ``""``."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def normalize_path(path: str) -> str:
    """``/metrics/`` and ``/metrics`` are the same route; the root stays ``/``."""
    return path.rstrip("/") or "/"


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the endpoint on this machine (no name resolution).

    ``localhost`` and every loopback address (``127.0.0.0/8``, ``::1``, an IPv4-mapped
    ``::ffff:127.x.y.z``) count; wildcards (``0.0.0.0``, ``::``), other addresses and other
    host names do not, since a name can resolve to anything.

    >>> [is_loopback_host(h) for h in ("127.0.0.5", "::1", "localhost", "0.0.0.0", "::")]
    [True, True, True, False, False]
    """
    value = host.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if value.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def exposure_warning(host: str, auth_token: str | None) -> str | None:
    """The warning to log when the endpoint would serve beyond this machine without a token.

    >>> exposure_warning("127.0.0.1", None) is None, exposure_warning("0.0.0.0", "t") is None
    (True, True)
    """
    if auth_token or is_loopback_host(host):
        return None
    return (
        f"otel-perf: WARNING: the metrics endpoint listens on {host}, beyond this machine, "
        "without METRICS_AUTH_TOKEN: anyone who can reach it can read your metrics. Set "
        "METRICS_AUTH_TOKEN, or METRICS_JSON_HOST=127.0.0.1 to keep it local."
    )


def _host_name(value: str) -> str | None:
    """The name in a ``Host`` header value (port removed, lower case), or ``None`` if malformed.

    >>> [_host_name(v) for v in ("LocalHost:9109", "[::1]:80", "127.0.0.1", "a:b:c")]
    ['localhost', '[::1]', '127.0.0.1', None]
    """
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value.partition("]")
        if not sep or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        return name + "]"
    name, _, port = value.partition(":")
    if ":" in port or (port and not port.isdigit()) or not name:
        return None
    return name


def allowed_host_names(bind_host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The ``Host`` names answered: local names, the bind address, and ``extra``.

    >>> sorted(allowed_host_names("::1", ("metrics.internal",)))
    ['127.0.0.1', '[::1]', 'localhost', 'metrics.internal']
    """
    names = set(LOCAL_HOSTS)
    for raw in (bind_host, *extra):
        value = raw.strip().lower().strip("[]")
        if not value:
            continue
        names.add(f"[{value}]" if ":" in value else value)
    return frozenset(names)


def host_allowed(value: str | None, allowed: frozenset[str], wildcard_bind: bool) -> bool:
    """Whether a request with ``Host: value`` is for this endpoint.

    A page on another site that has made its name resolve to 127.0.0.1 (DNS rebinding) sends
    its own name in ``Host``; it is refused. An address literal cannot be rebound, so when the
    endpoint listens on every address (``0.0.0.0``, ``::``), any address literal is accepted
    too. A request without ``Host`` (HTTP/1.0) comes from no browser and is accepted.

    >>> allowed = allowed_host_names("127.0.0.1")
    >>> [host_allowed(h, allowed, False) for h in ("127.0.0.1:9", "evil.example", "10.0.0.1")]
    [True, False, False]
    >>> host_allowed("10.0.0.1:9109", allowed, True)
    True
    """
    if value is None:
        return True
    name = _host_name(value)
    if name is None:
        return False
    if name in allowed:
        return True
    if not wildcard_bind:
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def local_origin(origin: str) -> bool:
    """Whether ``origin`` is a page served from this machine's loopback names, any port.

    >>> [local_origin(o) for o in ("http://localhost:3000", "https://[::1]", "http://x.example")]
    [True, True, False]
    """
    return _LOCAL_ORIGIN.fullmatch(origin) is not None


class Alerts:
    """Rate-limited warnings: one line per kind and interval, however often it happens.

    An attack that opens thousands of connections must not write thousands of lines to the
    host's log; the line that is written says how many times it happened since the last one.
    """

    def __init__(
        self, interval_s: float = ALERT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def note(self, kind: str, message: str) -> None:
        """Count one event of ``kind`` (a fixed string); log ``message`` at most per interval."""
        self._counts[kind] = self._counts.get(kind, 0) + 1
        now = self._clock()
        if now < self._next.get(kind, -1.0):
            return
        self._next[kind] = now + self._interval_s
        count, self._counts[kind] = self._counts[kind], 0
        logger.warning(
            "otel-perf: metrics endpoint: %s (%d time(s) since the last such line; logged at "
            "most once per %g s)",
            message,
            count,
            self._interval_s,
        )


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
        cors_origins: tuple[str, ...] = (),
        allowed_hosts: tuple[str, ...] = (),
        auth_token: str | None = None,
        public_paths: frozenset[str] = frozenset({"/health"}),
        page_paths: frozenset[str] = frozenset(),
        inline_paths: frozenset[str] = frozenset({"/health"}),
        max_workers: int = 4,
        head_timeout_s: float = 5.0,
        idle_timeout_s: float = 5.0,
        route_timeout_s: float = 10.0,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.routes = {normalize_path(path): route for path, route in routes.items()}
        #: ``()``: pages on this machine's loopback names only; ``("*",)``: any page.
        self._cors_origins = cors_origins
        self._allowed_hosts = allowed_host_names(host, allowed_hosts)
        self._wildcard_bind = host.strip("[] ") in ("0.0.0.0", "::", "")
        self._auth_token = auth_token.encode() if auth_token else None
        self._public_paths = public_paths
        self._page_paths = page_paths
        self._inline_paths = inline_paths
        self._max_workers = max_workers
        self._head_timeout_s = head_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._route_timeout_s = route_timeout_s
        self._max_connections = max(1, max_connections)
        self._stopping = False
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        #: Connections waiting for a request, and since when (loop time): the ones to evict.
        self._idle_since: dict[
            asyncio.Task[None], tuple[float, asyncio.StreamReader, asyncio.StreamWriter]
        ] = {}
        #: Loop times of the last look for idle connections at the cap, and from when on
        #: idleness counts (see EVICT_LOOK_S).
        self._last_look = -math.inf
        self._idle_counts_from = -math.inf
        self._slot_freed: asyncio.Event | None = None
        self.alerts = Alerts()
        self._closed_since_trim = 0
        self._pace: asyncio.Lock | None = None
        self._rest_until = 0.0
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind now (so a taken port raises ``OSError`` here) and serve on a daemon thread."""
        # An ASCII host goes as bytes: getaddrinfo() encodes a str host with the "idna" codec,
        # and loading that codec (with stringprep) is a measurable share of a stdio server's
        # start-up under ``otel-perf run``. For ASCII names both give the same bytes.
        host: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        infos = socket.getaddrinfo(
            host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address[:2], family=family, backlog=BACKLOG)
        try:
            _defer_accept(sock)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._sock = sock
            self._pool = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="otel-perf-http-worker"
            )
            self._loop = asyncio.new_event_loop()
            # asyncio's default handler logs a traceback per failed connection; an attack
            # would fill the host's log. Ours logs one line per kind and interval.
            self._loop.set_exception_handler(self._on_loop_error)
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

    def _on_loop_error(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        kind = type(exc).__name__ if exc is not None else "no exception"
        self.alerts.note("loop-error", f"an error in the endpoint's event loop ({kind})")

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.set_event_loop(loop)

        async def serve() -> None:
            self._slot_freed = asyncio.Event()
            self._pace = asyncio.Lock()
            self._accepting = asyncio.ensure_future(self._accept_loop())

        try:
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()
        finally:
            # Connections accepted while stopping may still be pending: end them (which closes
            # their sockets) before the loop goes, as asyncio.run() does.
            with contextlib.suppress(Exception):
                loop.run_until_complete(_cancel_until_done(asyncio.all_tasks(loop), 2.0))
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

    def release_after_fork(self) -> None:
        """In a forked child: close this process's copy of the listening socket.

        Without this a child would keep the port listening after the parent stops, and
        connections would queue where nobody accepts them. Nothing else is touched: the
        loop's selector is shared with the parent's, and its threads exist only there.
        """
        sock, self._sock = self._sock, None
        self._loop = self._thread = self._pool = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    async def _close(self) -> None:
        self._stopping = True
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._accepting, timeout=2.0)
        await _cancel_until_done(self._connections, timeout_s=2.0)

    # --- connections -----------------------------------------------------------------------------

    async def _accept_loop(self) -> None:
        """Accept connections while fewer than the cap are open; the rest wait in the kernel.

        Waiting in the kernel's queue costs this process no file descriptor and no memory, so
        however many clients connect, the endpoint holds at most ``max_connections`` sockets.
        At the cap, while connections wait, the ones idle for IDLE_EVICT_S are closed to make
        room, so idle clients cannot lock pollers out.
        """
        loop = asyncio.get_running_loop()
        sock = self._sock
        freed = self._slot_freed
        if sock is None or freed is None:
            return
        while not self._stopping:
            if len(self._connections) >= self._max_connections:
                freed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(freed.wait(), EVICT_LOOK_S)
                self._look_at_the_cap(loop.time(), sock)
                continue
            try:
                conn, _ = await loop.sock_accept(sock)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                # Out of descriptors (the host's or ours), or a connection reset before it
                # was accepted: wait a moment rather than spin, and say so once per interval.
                self.alerts.note(
                    f"accept:{exc.errno}",
                    f"cannot accept a connection ({exc.strerror or type(exc).__name__})",
                )
                await asyncio.sleep(0.25)
                continue
            task = loop.create_task(self._serve_socket(conn))
            self._connections.add(task)

    def _look_at_the_cap(self, now: float, sock: socket.socket) -> None:
        if now - self._last_look > 2 * EVICT_LOOK_S:
            # A CI run once lost 64 of a 200-connection burst: the whole process paused after
            # its clients connected and before they sent, and the connections looked idle.
            self._idle_counts_from = now
        self._last_look = now
        if len(self._connections) >= self._max_connections and _pending(sock):
            self._evict_idle(now)

    def _evict_idle(self, now: float) -> None:
        counts_from = self._idle_counts_from
        idle = [
            task
            for task, (since, reader, writer) in self._idle_since.items()
            # Not one whose request has arrived and waits for the loop to read it (under load
            # the loop can lag behind by more than IDLE_EVICT_S).
            if now - max(since, counts_from) >= IDLE_EVICT_S and not _has_input(reader, writer)
        ]
        for task in idle:
            self._idle_since.pop(task, None)
            task.cancel()
        if idle:
            self.alerts.note("evicted", "closed idle connections to make room (connection cap)")

    async def _serve_socket(self, conn: socket.socket) -> None:
        task = asyncio.current_task()
        try:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=MAX_HEAD_BYTES, loop=loop)
            protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock=conn)
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        except BaseException:
            conn.close()
            if task is not None:
                self._release(task)
            raise
        await self._on_connection(reader, writer)

    def _release(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self._idle_since.pop(task, None)
        if self._slot_freed is not None:
            self._slot_freed.set()
        self._closed_since_trim += 1
        if not self._connections and self._closed_since_trim >= self._max_connections:
            # A burst is over. The C allocator keeps what the burst's read buffers took
            # (measured: 1,000 partial heads left the host ~6 MiB larger); give it back.
            self._closed_since_trim = 0
            _give_back_memory()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always run in a task
            writer.close()
            return
        self._connections.add(task)
        after = _CLOSE
        try:
            if self._stopping:
                return
            after = _KEEP_OPEN
            first = True
            while after == _KEEP_OPEN:
                timeout = self._head_timeout_s if first else self._idle_timeout_s
                after = await self._one_request(reader, writer, timeout, task)
                first = False
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            after = _ABORT
        except Exception:  # never let a connection's failure reach the loop's error handler
            # Mostly a send deadline: a client that does not read what it asked for.
            after = _ABORT
            logger.debug("otel-perf: connection failed", exc_info=True)
        finally:
            self._idle_since.pop(task, None)
            # Still listed while closing, so that stop() waits for (and cancels) the close too.
            await _finish(reader, writer, _CLOSE if self._stopping and after == _LINGER else after)
            self._release(task)

    async def _one_request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float,
        task: asyncio.Task[None],
    ) -> int:
        """Serve one request; return what the connection does next (_KEEP_OPEN, ...)."""
        loop = asyncio.get_running_loop()
        self._idle_since[task] = (loop.time(), reader, writer)
        try:
            # Waiting for the first byte is idleness, not an error: close quietly.
            first = await asyncio.wait_for(reader.readexactly(1), timeout)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError):
            return _CLOSE
        # Once a request has begun, its whole head must arrive within one deadline, so a client
        # that trickles bytes (slowloris) is cut off instead of holding on for ever. It stays
        # evictable at the cap until the head is complete.
        deadline = loop.time() + self._head_timeout_s
        try:
            # Empty lines before a request line are to be ignored (RFC 9112, 2.2); a few.
            blank = 0
            while first in (b"\r", b"\n"):
                blank += 1
                if blank > _MAX_BLANK_BYTES:
                    await self._send(writer, _error(400, "bad request"), "GET", None, False)
                    return _LINGER
                first = await asyncio.wait_for(reader.readexactly(1), deadline - loop.time())
            head = first + await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), deadline - loop.time()
            )
        except asyncio.TimeoutError:
            self.alerts.note("slow-head", "cut off clients too slow to send a request head")
            await self._send(writer, _error(408, "request timeout"), "GET", None, False)
            return _LINGER
        except asyncio.LimitOverrunError:
            await self._send(writer, _error(431, "request head too large"), "GET", None, False)
            return _LINGER
        except asyncio.IncompleteReadError:
            return _CLOSE
        self._idle_since.pop(task, None)

        parsed = _parse_head(head)
        if isinstance(parsed, Response):
            await self._send(writer, parsed, "GET", None, False)
            return _LINGER
        method, target, version, headers = parsed
        if not host_allowed(headers.get("host"), self._allowed_hosts, self._wildcard_bind):
            # Before any work: a page that made its own name resolve to this machine (DNS
            # rebinding) sends that name here; add real names to METRICS_ALLOWED_HOSTS.
            self.alerts.note("host", "refused requests for a host name not allowed (421)")
            await self._send(writer, _error(421, "host not allowed"), "GET", None, False)
            return _LINGER
        path, _, query = target.partition("?")
        path = normalize_path(path)
        request = Request(method, path, query, headers)
        origin = headers.get("origin")

        connection = headers.get("connection", "").lower()
        keep_alive = (version == "HTTP/1.1" and "close" not in connection) or (
            version == "HTTP/1.0" and "keep-alive" in connection
        )
        has_body = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
        if path in self._inline_paths:
            response = await self._dispatch(request)
            await self._send(writer, response, method, origin, keep_alive and not has_body)
        else:
            await self._paced(writer, request, origin, keep_alive and not has_body)
        if has_body:
            return _LINGER  # we never read request bodies; closing avoids desync
        return _KEEP_OPEN if keep_alive else _CLOSE

    async def _paced(
        self,
        writer: asyncio.StreamWriter,
        request: Request,
        origin: str | None,
        keep_alive: bool,
    ) -> None:
        """Answer one request within the endpoint's duty cycle.

        Requests are answered one at a time, and after each the endpoint rests for
        ``PACE_FACTOR`` times what it took (at most ``MAX_PACE_S``), so however many clients
        poll, answering them takes at most about a tenth of the host's time. What producing
        a result costs is bounded the same way by :mod:`.reuse`; this bounds what handing it
        out costs (a 6 MiB Prometheus text to a dozen closed-loop pollers, say). Waiting for a
        slow client to read its answer happens after, outside the turn.
        """
        loop = asyncio.get_running_loop()
        pace = self._pace
        if pace is None:  # pragma: no cover - created with the loop
            pace = self._pace = asyncio.Lock()
        async with pace:
            wait = self._rest_until - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            started = loop.time()
            response = await self._dispatch(request)
            self._write(writer, response, request.method, origin, keep_alive)
            took = loop.time() - started
            self._rest_until = loop.time() + min(PACE_FACTOR * took, MAX_PACE_S)
        await asyncio.wait_for(writer.drain(), timeout=self._head_timeout_s)

    def _authorized(self, request: Request) -> bool:
        if self._auth_token is None or request.path in self._public_paths:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            # A browser opening the dashboard sends the token as the password of HTTP Basic
            # authentication (any user name): the only way a page navigation can carry it.
            supplied = _basic_password(credentials.strip())
        else:
            supplied = credentials.strip()
        # compare_digest takes as long for a wrong token as for a right one of the same length,
        # so response timing does not reveal how much of a guess was right.
        matches = hmac.compare_digest(supplied.encode(errors="replace"), self._auth_token)
        return scheme in ("bearer", "basic") and matches

    async def _dispatch(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            # Browsers send preflights without credentials, so they cannot require the token.
            return Response(204, b"", "", (("Allow", ALLOWED_METHODS),))
        if not self._authorized(request):
            # Before the 404, so that without the token nobody learns which paths exist.
            response = _error(401, "unauthorized")
            # Pages get a Basic challenge, so the browser asks for the token (as a password);
            # data paths a Bearer one, so the dashboard's own requests show its token form
            # instead of a browser dialog.
            challenge = (
                'Basic realm="otel-perf", charset="UTF-8"'
                if request.path in self._page_paths
                else 'Bearer realm="otel-perf"'
            )
            return Response(
                401, response.body, response.content_type, (("WWW-Authenticate", challenge),)
            )
        route = self.routes.get(request.path)
        if route is None:
            return _error(404, "not found")
        if request.method not in ("GET", "HEAD"):
            # 405 for every other method, known or not: the client's request is what is wrong.
            response = _error(405, "method not allowed")
            return Response(
                405, response.body, response.content_type, (("Allow", ALLOWED_METHODS),)
            )
        try:
            if request.path in self._inline_paths:
                return route(request)
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(self._pool, route, request)
            return await asyncio.wait_for(work, self._route_timeout_s)
        except (ServiceUnavailable, asyncio.TimeoutError):
            return _error(503, "metrics temporarily unavailable")
        except Exception:
            logger.exception("otel-perf: the handler for %s failed", request.path)
            return _error(500, "internal error")

    def _cors_headers(self, origin: str | None, preflight: bool) -> list[tuple[str, str]]:
        if "*" in self._cors_origins:
            allow = "*"
        elif origin is not None and (
            origin in self._cors_origins if self._cors_origins else local_origin(origin)
        ):
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
        self._write(writer, response, method, origin, keep_alive)
        await asyncio.wait_for(writer.drain(), timeout=self._head_timeout_s)

    def _write(
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
        writer.write(head)
        if method != "HEAD" and response.body:
            writer.write(response.body)  # not ``head + body``: a copy of megabytes per answer


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    # ctypes loads with the first trim, not with the endpoint (about 4 ms of a stdio server's
    # start-up under ``otel-perf run``).
    import ctypes  # noqa: PLC0415

    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    return trim


#: glibc's ``malloc_trim``, looked up at the first trim (``False``: not looked up yet).
_malloc_trim_function: Callable[[int], int] | bool | None = False


def _give_back_memory() -> None:
    """Return the C heap's free memory to the system (glibc ``malloc_trim``; else nothing)."""
    global _malloc_trim_function
    if _malloc_trim_function is False:
        _malloc_trim_function = _malloc_trim()
    trim = _malloc_trim_function
    if callable(trim):
        with contextlib.suppress(Exception):
            trim(0)


def _has_input(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Whether a connection has input waiting: read into ``reader`` already, or on its socket."""
    if getattr(reader, "_buffer", None) or reader.at_eof():
        return True
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True  # cannot tell: keep it


def _defer_accept(sock: socket.socket) -> None:
    """Have the kernel hand over a connection only once its request has begun (Linux).

    Without it, a client that connected but has not sent yet (its process descheduled, or its
    first segment dropped while the listening queue was full and resent later) looks idle at
    the cap and is evicted unanswered. With it, such a client waits in the kernel, costing
    this process nothing, and a connection that stays silent is handed over after about
    DEFER_ACCEPT_S anyway (the kernel resends its SYN-ACK meanwhile), to the usual deadlines.
    """
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is None:  # not Linux: idle connections are accepted and evicted as before
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, DEFER_ACCEPT_S)


def _pending(sock: socket.socket) -> bool:
    """Whether a connection waits in the listening socket's queue (without accepting it)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no poll() (Windows): assume one waits
        return True


async def _cancel_until_done(tasks: set[asyncio.Task[None]], timeout_s: float) -> None:
    """Cancel ``tasks`` (a live set: new members are cancelled too) until all are done.

    Cancelling again matters: on Python 3.11, ``wait_for`` swallows a cancellation that
    arrives just as the awaited read completes, and the task would go on serving.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (pending := [task for task in tasks if not task.done()]) and (
        remaining := deadline - loop.time()
    ) > 0:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=min(0.1, remaining))


async def _finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, how: int) -> None:
    """Close a connection so that its socket is released whatever the client does."""
    if how == _LINGER:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await _linger(reader, writer)
    if how == _ABORT:
        writer.transport.abort()
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
    except (Exception, asyncio.CancelledError):
        # close() waits for unsent output to go out; a client that stopped reading would keep
        # the socket open for ever, so after a moment the connection is dropped.
        writer.transport.abort()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then read and discard the client's input for a moment (see LINGER_S)."""
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_S
        discarded = 0
        while discarded < LINGER_MAX_BYTES:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            chunk = await asyncio.wait_for(reader.read(64 * 1024), remaining)
            if not chunk:
                break
            discarded += len(chunk)


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
        # 400 rather than 505: a version we do not speak is the client's error to fix.
        return _error(400, "unsupported HTTP version")
    if len(target) > MAX_TARGET_LENGTH:
        return _error(414, "request target too long")
    if not target.startswith("/") and target != "*":
        return _error(400, "bad request target")
    # Only visible ASCII is valid in a request target (anything else must be percent-encoded).
    if not target.isascii() or not target.isprintable() or " " in target:
        return _error(400, "bad request target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or not _TOKEN_CHARS.issuperset(name):
            return _error(400, "bad header")
        value = value.strip(" \t")
        # A stray CR, NUL or other control character in a value is how header injection and
        # request smuggling start; refuse the request rather than guess.
        if _CONTROL_IN_VALUE.search(value):
            return _error(400, "bad header")
        key = name.lower()
        if key in headers and key in _SINGLE_HEADERS:
            # Two framing headers that may disagree (request smuggling), or two hosts or
            # credentials to choose from: refuse rather than pick one.
            return _error(400, f"duplicate {key} header")
        headers[key] = value
    length = headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit() and len(length) < 20):
        return _error(400, "bad content-length")
    if length is not None and "transfer-encoding" in headers:
        return _error(400, "both content-length and transfer-encoding")
    return method, target, version, headers
