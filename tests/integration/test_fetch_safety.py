"""The terminal tools against a hostile endpoint: the token never follows a redirect to another
origin, and nothing the endpoint sends can drive the terminal (escape sequences, bidi)."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from otel_perf._cli.fetch import fetch_json

HOSTILE_DOCUMENT = {
    "enabled": True,
    "tool_metrics": {
        "\x1b[2J\x1b]0;pwned\x07tool\u202eevil": {"total_calls": 1, "failed_calls": 0},
        "\x9b31mred": {"total_calls": 1, "failed_calls": 0},
    },
    "cache_metrics": {},
    "system_metrics": {"active_sessions": 0, "concurrent_requests": 0},
}


class _Server:
    """A plain http.server on 127.0.0.1 answering every GET with ``answer(handler)``."""

    def __init__(self, answer: Any) -> None:
        self.seen: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append(self.headers.get("Authorization"))
                answer(self)

            def log_message(self, *_args: object) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def _json_answer(handler: http.server.BaseHTTPRequestHandler) -> None:
    body = json.dumps(HOSTILE_DOCUMENT).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def target() -> Iterator[_Server]:
    server = _Server(_json_answer)
    yield server
    server.stop()


def _redirect_to(location: str) -> Any:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_the_token_never_follows_a_redirect_to_another_origin(target: _Server, host: str) -> None:
    # 127.0.0.1 -> localhost is another origin (another host name), and so is another port.
    location = f"http://{host}:{target.port}/metrics"
    redirector = _Server(_redirect_to(location))
    try:
        fetch_json(f"http://127.0.0.1:{redirector.port}/metrics", token="sekrit")
    finally:
        redirector.stop()
    assert redirector.seen == ["Bearer sekrit"]
    assert target.seen == [None]


def test_the_token_follows_a_redirect_within_its_origin() -> None:
    calls: list[int] = []

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        calls.append(1)
        if handler.path == "/old/metrics":
            _redirect_to("/metrics")(handler)
        else:
            _json_answer(handler)

    server = _Server(answer)
    try:
        fetch_json(f"http://127.0.0.1:{server.port}/old/metrics", token="sekrit")
    finally:
        server.stop()
    assert server.seen == ["Bearer sekrit", "Bearer sekrit"]


def test_snapshot_prints_no_escape_sequence_from_a_look_alike(target: _Server) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_perf", "snapshot", f"http://127.0.0.1:{target.port}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "tool" in output
    assert "red" in output
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in output, repr(bad)
