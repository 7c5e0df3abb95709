"""Hostile clients against the endpoint, over real sockets on 127.0.0.1.

Every attack is bounded in count and time. Each hostile request must get a 4xx with a short
JSON body naming no exception, or be cut off by a deadline; ``/health`` must keep answering
while it goes on; threads and file descriptors must come back to where they started.

The siege test prints a ``[reliability]`` line with its figures (docs/reliability.md quotes
them); rerun with ``.venv/bin/python -m pytest tests/integration/test_hostile_http.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

import otel_perf
from otel_perf._http import dashboard as _dashboard
from otel_perf._http.routes import routes_for
from otel_perf._http.server import MAX_HEAD_BYTES, MetricsServer

HEAD_TIMEOUT_S = 1.5
WORKERS = 4
#: The loop thread plus the worker pool: the most threads the endpoint may ever run.
MAX_SERVER_THREADS = 1 + WORKERS
#: Every message an error body may carry: fixed strings, never exception text.
KNOWN_ERRORS = frozenset(
    {
        "bad header",
        "bad method",
        "bad request line",
        "bad request target",
        "bad request",
        "method not allowed",
        "not found",
        "request head too large",
        "request target too long",
        "request timeout",
        "unauthorized",
        "unsupported HTTP version",
    }
)
LEAK_MARKERS = (b"Traceback", b'File "', b".py", b"Error:", b"Exception", b"otel_perf")


# --- plumbing -------------------------------------------------------------------------------


@dataclass
class Reply:
    """What a client got back: the parsed status (None if the server closed without an
    answer), the body, and how long it took."""

    status: int | None
    body: bytes
    raw: bytes
    elapsed_s: float


def parse_reply(raw: bytes, elapsed_s: float) -> Reply:
    if not raw:
        return Reply(None, b"", raw, elapsed_s)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), raw[:200]
    return Reply(int(status_line.split(b" ")[1]), body, raw, elapsed_s)


def assert_clean_error(reply: Reply, *statuses: int) -> None:
    """A 4xx from the allowed set, with the short JSON body and nothing leaked."""
    assert reply.status in statuses, (reply.status, reply.raw[:300])
    for marker in LEAK_MARKERS:
        assert marker not in reply.raw, (marker, reply.raw[:300])
    payload = json.loads(reply.body)
    assert payload == {"error": payload["error"], "status": reply.status}
    assert payload["error"] in KNOWN_ERRORS


async def read_all(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything until the server closes (or ``timeout_s``); resets count as a close."""
    chunks: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
        while (remaining := deadline - loop.time()) > 0:
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


async def send_raw(
    port: int, payload: bytes, timeout_s: float = HEAD_TIMEOUT_S + 8, send_after_s: float = 0.0
) -> Reply:
    """Send ``payload`` (written concurrently, so a huge one cannot block the read), after
    ``send_after_s`` of silence once connected, and read until the server closes."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def write() -> None:
        if send_after_s:
            await asyncio.sleep(send_after_s)
        with contextlib.suppress(ConnectionError):
            writer.write(payload)
            await writer.drain()

    sending = asyncio.create_task(write())
    try:
        raw = await read_all(reader, timeout_s)
    finally:
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return parse_reply(raw, time.perf_counter() - start)


async def slowloris(port: int, interval_s: float) -> Reply:
    """Trickle a request head one byte at a time; read whatever the server answers."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 200

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(interval_s)

    sending = asyncio.create_task(trickle())
    try:
        raw = await read_all(reader, HEAD_TIMEOUT_S + 10)
    finally:
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return parse_reply(raw, time.perf_counter() - start)


def get(target: str, method: str = "GET", extra: str = "") -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n".encode(
            "latin-1"
        )
    )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("otel-perf-http")]


def other_threads() -> int:
    return threading.active_count() - len(server_threads())


def settle(predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def pause_this_process(seconds: float) -> None:
    """Stop every thread of this process for ``seconds`` (SIGSTOP, then SIGCONT from a helper
    process), as a loaded host's scheduler can."""
    pid = os.getpid()
    # It goes on waking this process every second until stopped, so that a wake-up that came
    # before the stop (a very loaded host) cannot leave the process stopped for good.
    waker = subprocess.Popen(
        ["sh", "-c", f"sleep {seconds}; while kill -CONT {pid}; do sleep 1; done"]
    )
    try:
        os.kill(pid, signal.SIGSTOP)
    finally:
        waker.kill()
        waker.wait(timeout=30)


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    """otel-perf's real routes on a server with a short head deadline."""
    metrics = otel_perf.configure(json_enabled=False)
    otel_perf.record_tool_call("search", True, 12.0)
    srv = MetricsServer(
        "127.0.0.1",
        0,
        routes_for(metrics),
        page_paths=_dashboard.PAGE_PATHS,
        max_workers=WORKERS,
        head_timeout_s=HEAD_TIMEOUT_S,
        idle_timeout_s=HEAD_TIMEOUT_S,
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Room for a thousand sockets even where the default soft limit is 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- each kind of hostile request ----------------------------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"\r\n" * 100,
    b"GET\r\n\r\n",
    b"GET /metrics\r\n\r\n",
    b"GET  /metrics HTTP/1.1\r\n\r\n",
    b"GET /metrics HTTP/1.1 extra\r\n\r\n",
    b"GET /metrics HTTP/2.0\r\n\r\n",
    b"GET /metrics HTTP/9.9\r\n\r\n",
    b"GET /metrics FTP/1.0\r\n\r\n",
    b"get /metrics HTTP/1.1\r\n\r\n",
    b"G3T /metrics HTTP/1.1\r\n\r\n",
    b"GETGETGETGETGETGETGET /metrics HTTP/1.1\r\n\r\n",
    b"GET metrics HTTP/1.1\r\n\r\n",
    b"GET http://evil.example/metrics HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello's first bytes
    b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
    b"GET /metr\x00ics HTTP/1.1\r\n\r\n",
    b"GET /metrics\x7f HTTP/1.1\r\n\r\n",
    b"GET /m\xe9trics HTTP/1.1\r\n\r\n",
]

BAD_HEADERS = [
    b"GET /metrics HTTP/1.1\r\nno-colon-here\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\n: empty-name\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost : spaced\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\n folded: continuation\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nX-A: one\rtwo\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nX-A: nul\x00byte\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nX-A: bell\x07\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nX(A): bad-name\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nX-\xe9: non-ascii-name\r\n\r\n",
]


@pytest.mark.parametrize("payload", MALFORMED, ids=range(len(MALFORMED)))
async def test_malformed_request_lines_get_400(server: MetricsServer, payload: bytes) -> None:
    assert_clean_error(await send_raw(server.port, payload), 400)


@pytest.mark.parametrize("payload", BAD_HEADERS, ids=range(len(BAD_HEADERS)))
async def test_malformed_headers_get_400(server: MetricsServer, payload: bytes) -> None:
    assert_clean_error(await send_raw(server.port, payload), 400)


async def test_a_few_empty_lines_before_the_request_are_ignored(server: MetricsServer) -> None:
    reply = await send_raw(server.port, b"\r\n\r\n" + get("/health"))
    assert reply.status == 200
    assert json.loads(reply.body)["status"] == "ok"


OVERSIZED = {
    "one 70 KiB header": get("/metrics", extra="X-Big: " + "b" * 70 * 1024 + "\r\n"),
    "3000 small headers": get(
        "/metrics", extra="".join(f"X-H{i}: {i:030d}\r\n" for i in range(3000))
    ),
    "1 MiB without a line end": b"GET /metrics HTTP/1.1\r\nX-Big: " + b"c" * 1024 * 1024,
    "2 MiB request target": b"GET /" + b"d" * 2 * 1024 * 1024 + b" HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("name", list(OVERSIZED))
async def test_heads_over_the_limit_get_431_and_the_answer_arrives(
    server: MetricsServer, name: str
) -> None:
    payload = OVERSIZED[name]
    assert len(payload) > MAX_HEAD_BYTES
    # The answer must reach the client although it is still sending: the server drains the
    # rest for a moment instead of resetting the connection under it.
    assert_clean_error(await send_raw(server.port, payload), 431)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("FOO", "/metrics"),
        ("PROPFIND", "/metrics"),
        ("DELETE", "/health"),
        ("POST", "/metrics"),
        ("PUT", "/metrics/prometheus"),
        ("PATCH", "/"),
        ("TRACE", "/metrics"),
        ("BREW", "/health"),
    ],
)
async def test_other_methods_get_405_and_trace_echoes_nothing(
    server: MetricsServer, method: str, path: str
) -> None:
    reply = await send_raw(server.port, get(path, method, extra="X-Secret: s3cr3t-value\r\n"))
    assert_clean_error(reply, 405)
    assert b"Allow: GET, HEAD, OPTIONS" in reply.raw
    assert b"s3cr3t" not in reply.raw


async def test_a_request_body_is_never_read_and_the_answer_still_arrives(
    server: MetricsServer,
) -> None:
    body = b"x" * 512 * 1024
    head = f"POST /metrics HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    reply = await send_raw(server.port, head + body)
    assert_clean_error(reply, 405)
    assert b"Connection: close" in reply.raw


TRAVERSAL = [
    "/../../etc/passwd",
    "/metrics/../../../../etc/passwd",
    "/static/../../../../etc/passwd",
    "/static/../_http.py",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/%252e%252e/etc/passwd",
    "/..%c0%af..%c0%afetc/passwd",
    "//etc/passwd",
    "///etc//passwd",
    "//metrics",
    "/.\\..\\..\\windows\\win.ini",
    "/\\..\\..\\etc\\passwd",
    "/static/%5c..%5c..%5cpyproject.toml",
    "/static/dashboard.js/../../../pyproject.toml",
    "/metrics;/../etc/passwd",
    "/etc/passwd%00.json",
    "/proc/self/environ",
    "/static/",
]


@pytest.mark.parametrize("target", TRAVERSAL)
async def test_path_traversal_finds_nothing(server: MetricsServer, target: str) -> None:
    reply = await send_raw(server.port, get(target))
    assert_clean_error(reply, 404)
    assert b"root:" not in reply.raw


async def test_absurd_query_strings(server: MetricsServer) -> None:
    # Queries are ignored by /metrics: odd ones within the limit still get the document...
    for query in ("a" * 8000, "&&&&==??", "%00%ff%zz", "x=" + "%41" * 2000, "a[]=1&a[]=2#frag"):
        reply = await send_raw(server.port, get("/metrics?" + query))
        assert reply.status == 200, (query[:40], reply.raw[:200])
        assert json.loads(reply.body)["tool_metrics"]["search"]["total_calls"] == 1
    # ...the history's ?since= falls back to everything when it is nonsense...
    for since in ("nan", "inf", "-1e999", "abc", "1" * 5000):
        reply = await send_raw(server.port, get("/metrics/history?since=" + since))
        assert reply.status == 200, (since[:40], reply.raw[:200])
        json.loads(reply.body)
    # ...and a target past 8 KiB is refused.
    assert_clean_error(await send_raw(server.port, get("/metrics?" + "q" * 9000)), 414)
    # 60 KiB: past the head limit too, so 431 is as right as 414.
    assert_clean_error(await send_raw(server.port, get("/metrics?" + "a=1&" * 15000)), 414, 431)


async def test_slowloris_is_cut_off_at_the_head_deadline(server: MetricsServer) -> None:
    replies = await asyncio.gather(*(slowloris(server.port, 0.4) for _ in range(10)))
    for reply in replies:
        assert_clean_error(reply, 408)
        # Cut at the deadline, not when the client ran out of bytes (80+ s at this pace).
        assert HEAD_TIMEOUT_S * 0.8 <= reply.elapsed_s < HEAD_TIMEOUT_S + 5, reply.elapsed_s


async def test_an_idle_connection_is_closed_without_an_answer(server: MetricsServer) -> None:
    reply = await send_raw(server.port, b"")
    assert reply.status is None
    assert reply.elapsed_s < HEAD_TIMEOUT_S + 5


def test_a_client_that_never_reads_is_cut_off(server: MetricsServer) -> None:
    """Pipelined requests whose (large) answers are never read: the send deadline drops it."""
    for i in range(400):
        otel_perf.record_tool_call(f"tool-{i:03d}-" + "n" * 200, True, float(i))
    fds_before = open_fds()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
    time.sleep(HEAD_TIMEOUT_S * 3)  # not reading: the server's sends stall, then time out
    sock.settimeout(30)
    received = 0
    # Read what was buffered, then meet the server's close, long before the 200 answers
    # (each over 100 KB) could all have been sent. A timeout here would fail the test.
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    sock.close()
    document_size = len(json.dumps(otel_perf.get_all_metrics()))
    assert received < 200 * document_size
    assert settle(lambda: open_fds() <= fds_before)


async def test_200_simultaneous_connections_are_all_answered_64_at_a_time(
    server: MetricsServer, many_fds: None
) -> None:
    # Past the cap (64) and the backlog (64) the kernel drops connection attempts and clients
    # retry after 1 s, 2 s, ...: a burst far larger than this waits longer than a poller would.
    async def one(i: int) -> Reply:
        return await send_raw(server.port, get("/metrics" if i % 2 else "/health"), 60)

    replies = await asyncio.gather(*(one(i) for i in range(200)))
    assert Counter(r.status for r in replies) == {200: 200}
    for reply in replies:
        json.loads(reply.body)


@pytest.mark.skipif(
    not hasattr(socket, "TCP_DEFER_ACCEPT"),
    reason="without TCP_DEFER_ACCEPT (not Linux) a client this late may be evicted, as documented",
)
async def test_clients_slow_to_send_their_request_are_answered_at_the_cap(
    server: MetricsServer, many_fds: None
) -> None:
    """A real client can fall silent between connecting and sending: its process descheduled
    on a loaded host, or its first segment dropped (the kernel drops the handshake's last ACK
    while the listening queue is full) and resent a few hundred ms later. At the cap such a
    client must not look idle (before TCP_DEFER_ACCEPT: 45-64 of the 64 closed unanswered)."""

    def late(send_after_s: float) -> asyncio.Future[Reply]:
        return asyncio.ensure_future(
            send_raw(server.port, get("/health"), 30, send_after_s=send_after_s)
        )

    slow = [late(0.6) for _ in range(64)]
    await asyncio.sleep(0.05)  # the slow ones have connected: the endpoint is at its cap
    prompt = [late(0.0) for _ in range(20)]
    replies = await asyncio.gather(*slow, *prompt)
    assert Counter(r.status for r in replies) == {200: 84}


async def test_a_burst_is_answered_though_the_host_pauses_between_connect_and_send(
    server: MetricsServer, many_fds: None
) -> None:
    """The CI failure itself ({200: 136, None: 64}): this process (clients and endpoint) is
    stopped for 0.4 s while 200 clients connect, as a loaded host deschedules it. The endpoint
    must not count the pause as its connections' idleness."""

    async def one(i: int) -> Reply:
        return await send_raw(server.port, get("/metrics" if i % 2 else "/health"), 60)

    burst = [asyncio.ensure_future(one(i)) for i in range(200)]
    await asyncio.sleep(0.02)  # connecting
    pause_this_process(0.4)
    replies = await asyncio.gather(*burst)
    assert Counter(r.status for r in replies) == {200: 200}


# --- everything at once, while /health is measured ------------------------------------------


@dataclass
class SiegeFigures:
    connections: int = 0
    hostile: int = 0
    answered_4xx: int = 0
    cut_by_deadline: int = 0
    ok: int = 0
    #: Requests sent but closed unanswered: at the connection cap the endpoint may close a
    #: connection whose request it has not read yet (see docs/reliability.md, siege row).
    unanswered: int = 0


def _attack(port: int, duration_s: float) -> tuple[SiegeFigures, list[Reply]]:
    """Run every attack at once for ``duration_s`` in this thread's own event loop."""
    figures = SiegeFigures()
    bad: list[Reply] = []
    hostile = [
        *MALFORMED,
        *BAD_HEADERS,
        *(get(t) for t in TRAVERSAL),
        *OVERSIZED.values(),
        get("/metrics", "BREW"),
        get("/metrics?" + "q" * 9000),
    ]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s

        async def repeat(
            make: Callable[[int], Awaitable[Reply]], check: Callable[[Reply], bool]
        ) -> None:
            i = 0
            while loop.time() < end:
                try:
                    reply = await make(i)
                except OSError:
                    reply = Reply(-1, b"", b"", 0.0)
                figures.connections += 1
                if not check(reply):
                    bad.append(reply)
                i += 1

        def hostile_ok(reply: Reply) -> bool:
            figures.hostile += 1
            if reply.status is None and not reply.raw:
                figures.unanswered += 1
                return True  # closed, never served: what matters is that nothing leaked
            if reply.status is not None and 400 <= reply.status < 500:
                figures.answered_4xx += 1
                return b"Traceback" not in reply.raw
            return False

        def cut_ok(reply: Reply) -> bool:
            # An idle or trickling client: a 408 or a silent close at the deadline.
            figures.cut_by_deadline += 1
            return reply.status in (None, 408)

        def fine(reply: Reply) -> bool:
            if reply.status is None and not reply.raw:
                figures.unanswered += 1
                return True  # closed at the cap, unanswered; the client may retry
            figures.ok += reply.status == 200
            return reply.status == 200

        tasks = [
            # 500 connections that open, say nothing and are closed at the deadline, reconnecting.
            *(repeat(lambda _i: send_raw(port, b""), cut_ok) for _ in range(500)),
            *(repeat(lambda _i: slowloris(port, 0.5), cut_ok) for _ in range(20)),
            *(
                repeat(lambda i, k=k: send_raw(port, hostile[(i + k) % len(hostile)]), hostile_ok)
                for k in range(20)
            ),
            *(repeat(lambda _i: send_raw(port, get("/metrics")), fine) for _ in range(10)),
        ]
        await asyncio.wait_for(asyncio.gather(*tasks), duration_s + 60)

    asyncio.run(main())
    return figures, bad


def test_siege_health_stays_fast_and_nothing_leaks(
    server: MetricsServer, many_fds: None, capsys: pytest.CaptureFixture[str]
) -> None:
    duration_s = float(os.environ.get("SIEGE_SECONDS", "6"))
    # The worker pool starts its threads on demand (up to its bound), so threads are counted
    # apart from the endpoint's own, which are checked against the bound instead.
    threads_before = other_threads()
    fds_before = open_fds()

    result: list[tuple[SiegeFigures, list[Reply]]] = []
    attacker = threading.Thread(
        target=lambda: result.append(_attack(server.port, duration_s)), name="siege"
    )
    stop = threading.Event()
    peak_server_threads = 0

    def watch_threads() -> None:
        nonlocal peak_server_threads
        while not stop.is_set():
            peak_server_threads = max(peak_server_threads, len(server_threads()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_threads, name="siege-watch")
    watcher.start()
    attacker.start()
    time.sleep(0.5)  # let the attack build up

    latencies: list[float] = []
    failures: list[str] = []
    while attacker.is_alive() and len(latencies) < 400:
        start = time.perf_counter()
        try:
            # A new connection can wait seconds in the kernel's queue while the flood holds
            # the 64 slots (docs/reliability.md); 4.2 s was seen, hence 10 s here.
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(get("/health"))
                raw = b""
                while chunk := sock.recv(65536):
                    raw += chunk
            latency = time.perf_counter() - start
            if not raw.startswith(b"HTTP/1.1 200 ") or b'"status":"ok"' not in raw:
                failures.append(raw[:100].decode("latin-1"))
            latencies.append(latency)
        except OSError as exc:
            failures.append(type(exc).__name__)
        time.sleep(0.05)

    attacker.join(timeout=duration_s + 90)
    assert not attacker.is_alive()
    stop.set()
    watcher.join(timeout=5)
    figures, bad = result[0]

    assert not failures, failures[:5]
    assert len(latencies) >= 10
    median = statistics.median(latencies)
    assert median < 0.100, f"/health median {median * 1000:.1f} ms under attack"
    assert not bad, [(r.status, r.raw[:120]) for r in bad[:5]]
    assert figures.answered_4xx > 0
    assert figures.ok > 0
    # Every hostile request was refused (4xx) or closed unanswered: none was served.
    assert figures.answered_4xx + figures.unanswered >= figures.hostile
    assert peak_server_threads <= MAX_SERVER_THREADS
    # Afterwards: no thread and no descriptor left behind (sockets close within the deadlines).
    assert settle(lambda: other_threads() <= threads_before)
    assert len(server_threads()) <= MAX_SERVER_THREADS
    assert settle(lambda: open_fds() <= fds_before), (open_fds(), fds_before)
    # And the server still serves.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(get("/metrics"))
        assert sock.recv(12) == b"HTTP/1.1 200"

    ordered = sorted(latencies)
    with capsys.disabled():
        print(
            f"\n[reliability] http siege {duration_s:.0f}s: {figures.connections} connections, "
            "500+ open at once "
            f"({figures.hostile} hostile requests, {figures.answered_4xx} answered 4xx, the "
            f"rest closed unanswered ({figures.unanswered} requests in all closed unanswered at "
            f"the cap); {figures.cut_by_deadline} "
            f"idle/slowloris connections cut at the {HEAD_TIMEOUT_S}s deadline; {figures.ok} "
            f"normal /metrics answered 200); /health {len(latencies)} probes, median "
            f"{median * 1000:.1f} ms, p90 {ordered[int(len(ordered) * 0.9)] * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms; peak endpoint threads {peak_server_threads}; "
            f"threads and fds back to {threads_before}/{fds_before}"
        )


def test_stop_releases_every_thread_and_descriptor(many_fds: None) -> None:
    """From before start to after stop, with connections of every kind open at the stop."""
    metrics = otel_perf.configure(json_enabled=False)
    threads_before, fds_before = threading.active_count(), open_fds()
    srv = MetricsServer("127.0.0.1", 0, routes_for(metrics), head_timeout_s=HEAD_TIMEOUT_S)
    srv.start()
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(50)]
    for sock in idle[:10]:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Half: ")  # a head still arriving
    for sock in idle[10:20]:
        sock.sendall(get("/metrics").replace(b"Connection: close", b"X-Keep: 1"))  # keep-alive
        assert sock.recv(12) == b"HTTP/1.1 200"
    srv.stop()
    for sock in idle:
        sock.close()
    assert not server_threads()
    assert settle(lambda: threading.active_count() <= threads_before)
    assert settle(lambda: open_fds() <= fds_before), (open_fds(), fds_before)
