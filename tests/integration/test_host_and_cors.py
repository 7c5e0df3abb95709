"""Secure by default: DNS rebinding (the Host header), CORS for local pages only, and request
framing that cannot be smuggled. Before the fix a page on ``https://evil.example`` could read
every path (``Access-Control-Allow-Origin: *``, any ``Host`` answered 200), and two
``Content-Length`` headers let a body be served as a second request."""

from __future__ import annotations

import logging
import socket

import pytest

import otel_perf
from tests.support.helpers import http_request

PATHS = ["/", "/metrics", "/metrics/history", "/metrics/prometheus", "/health", "/nope"]


def _raw(port: int, payload: bytes, timeout_s: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(payload)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
    return out


def _port() -> int:
    port = otel_perf.configure().port
    assert port is not None
    return port


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:9109", "localhost.evil.example", "127.0.0.1.nip.io"]
)
def test_a_foreign_host_name_gets_421_on_every_path(path: str, method: str, host: str) -> None:
    otel_perf.record_tool_call("secret-tool", True, 1.0)
    url = otel_perf.configure().url
    assert url is not None
    status, headers, body = http_request(
        url, method, {"Host": host, "Origin": f"http://{host}"}, path
    )
    assert status == 421
    assert b"secret-tool" not in body
    assert not [name for name in headers if name.startswith("access-control-")]


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:9109", "[::1]", "[::1]:80"]
)
def test_local_host_names_are_answered(host: str) -> None:
    url = otel_perf.configure().url
    assert url is not None
    status, _, _ = http_request(url, "GET", {"Host": host}, "/metrics")
    assert status == 200


def test_metrics_allowed_hosts_adds_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_ALLOWED_HOSTS", "metrics.internal, grafana.lan")
    url = otel_perf.configure().url
    assert url is not None
    for host in ("metrics.internal", "GRAFANA.lan:9109"):
        assert http_request(url, "GET", {"Host": host}, "/metrics")[0] == 200
    assert http_request(url, "GET", {"Host": "other.lan"}, "/metrics")[0] == 421


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:3000", "https://127.0.0.1", "http://[::1]:8080", "http://localhost"],
)
def test_default_cors_answers_local_pages(origin: str) -> None:
    url = otel_perf.configure().url
    assert url is not None
    _, headers, _ = http_request(url, "GET", {"Origin": origin}, "/metrics")
    assert headers["access-control-allow-origin"] == origin
    assert headers["vary"] == "Origin"
    status, headers, _ = http_request(
        url, "OPTIONS", {"Origin": origin, "Access-Control-Request-Method": "GET"}, "/metrics"
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example:80",
        "http://localhost:3000/",
        "null",
        "file://",
        "http://10.0.0.1",
    ],
)
def test_default_cors_refuses_other_pages(origin: str) -> None:
    url = otel_perf.configure().url
    assert url is not None
    for method in ("GET", "OPTIONS"):
        _, headers, _ = http_request(url, method, {"Origin": origin}, "/metrics")
        assert not [name for name in headers if name.startswith("access-control-")], origin


def test_cors_star_is_explicit_and_warned_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("METRICS_CORS_ORIGINS", "*")
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        url = otel_perf.configure().url
    assert url is not None
    _, headers, _ = http_request(url, "GET", {"Origin": "https://x.example"}, "/metrics")
    assert headers["access-control-allow-origin"] == "*"
    warnings = [r for r in caplog.records if "METRICS_CORS_ORIGINS=*" in r.getMessage()]
    assert len(warnings) == 1


SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"

DESYNC = {
    "two content-lengths": b"Content-Length: 5\r\nContent-Length: 0\r\n",
    "an empty content-length": b"Content-Length: \r\n",
    "a signed content-length": b"Content-Length: +0\r\n",
    "content-length and transfer-encoding": b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
    "two transfer-encodings": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    "two hosts": b"Host: localhost\r\nHost: evil.example\r\n",
    "two authorizations": b"Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
}


@pytest.mark.parametrize("headers", DESYNC.values(), ids=list(DESYNC))
def test_duplicate_or_conflicting_framing_gets_400_and_closes(headers: bytes) -> None:
    port = _port()
    reply = _raw(port, b"GET /health HTTP/1.1\r\n" + headers + b"\r\n" + SMUGGLED)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert b"Connection: close" in reply
    # The bytes after the head were never served as a request of their own.
    assert reply.count(b"HTTP/1.1 ") == 1
