"""The in-process endpoint, over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import otel_perf
from otel_perf import _configure, _pipeline
from otel_perf._http.server import MetricsServer, Request, Response, json_response
from tests.support.helpers import get_json, http_request


def _url() -> str:
    url = otel_perf.configure().url
    assert url is not None
    return url


def test_configure_serves_in_process_and_shows_what_was_recorded() -> None:
    otel_perf.record_tool_call("chat", True, 12.0)
    url = _url()
    assert url.startswith("http://127.0.0.1:")
    document = get_json(url)
    assert document["tool_metrics"]["chat"]["total_calls"] == 1
    threads = {t.name for t in threading.enumerate()}
    assert "otel-perf-http" in threads  # a thread of this process, not another process


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics?x=1&y", "/metrics/?a=b"])
def test_get_metrics_paths_and_query_strings(path: str) -> None:
    otel_perf.record_cache_hit("c")
    status, headers, body = http_request(_url(), path=path)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body)["cache_metrics"]["c"]["hits"] == 1


def test_head_has_headers_and_no_body() -> None:
    status, headers, body = http_request(_url(), "HEAD", path="/metrics")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) > 0
    assert body == b""


def test_health() -> None:
    status, headers, body = http_request(_url(), path="/health")
    assert status == 200
    assert headers["content-type"] == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["enabled"] is True


def test_unknown_path_is_a_json_404_and_other_methods_a_405() -> None:
    url = _url()
    status, headers, body = http_request(url, path="/nope")
    assert status == 404
    assert json.loads(body)["status"] == 404
    assert headers["content-type"] == "application/json"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, body = http_request(url, method, path="/metrics")
        assert status == 405
        assert headers["allow"] == "GET, HEAD, OPTIONS"
        assert json.loads(body)["status"] == 405


def test_cors_default_allows_local_pages_and_answers_preflight() -> None:
    url = _url()
    local = "http://localhost:3000"
    _, headers, _ = http_request(url, path="/metrics", headers={"Origin": local})
    assert headers["access-control-allow-origin"] == local
    _, headers, _ = http_request(url, path="/metrics", headers={"Origin": "https://x.example"})
    assert "access-control-allow-origin" not in headers
    status, headers, body = http_request(
        url,
        "OPTIONS",
        path="/metrics",
        headers={"Origin": local, "Access-Control-Request-Method": "GET"},
    )
    assert status == 204
    assert body == b""
    assert headers["access-control-allow-origin"] == local
    assert "GET" in headers["access-control-allow-methods"]


def test_cors_allow_list_is_honoured_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_CORS_ORIGINS", "https://ok.example,https://also.example")
    url = _url()
    _, headers, _ = http_request(url, path="/metrics", headers={"Origin": "https://ok.example"})
    assert headers["access-control-allow-origin"] == "https://ok.example"
    assert headers["vary"] == "Origin"
    _, headers, _ = http_request(url, path="/metrics", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers
    _, headers, _ = http_request(url, path="/metrics")
    assert "access-control-allow-origin" not in headers


def test_bearer_token_protects_everything_but_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_AUTH_TOKEN", "t0ken")
    url = _url()
    assert http_request(url, path="/metrics")[0] == 401
    assert http_request(url, path="/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
    status, headers, _ = http_request(url, path="/metrics", headers={"Authorization": "Basic x"})
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    good = {"Authorization": "Bearer t0ken"}
    assert http_request(url, path="/metrics", headers=good)[0] == 200
    assert http_request(url, path="/health")[0] == 200


def test_failures_never_leak_exception_text() -> None:
    secret = "SECRET-internal-detail-42"

    def broken(_request: Request) -> Response:
        raise RuntimeError(secret)

    server = MetricsServer("127.0.0.1", 0, {"/metrics": broken})
    server.start()
    try:
        status, _, body = http_request(server.url, path="/metrics")
    finally:
        server.stop()
    assert status == 500
    assert secret.encode() not in body
    assert b"Traceback" not in body
    assert json.loads(body) == {"error": "internal error", "status": 500}


def test_a_failing_collection_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    url = _url()
    real = _pipeline.PullReader.collect_data

    def explode(self: object, timeout_millis: float = 10_000) -> None:
        raise RuntimeError("collect exploded with private detail")

    monkeypatch.setattr(_pipeline.PullReader, "collect_data", explode)
    status, _, body = http_request(url, path="/metrics")
    assert status == 503
    assert b"private detail" not in body
    otel_perf.record_tool_call("still-recording", True, 1.0)  # recording is unaffected
    monkeypatch.setattr(_pipeline.PullReader, "collect_data", real)  # the fault clears
    assert get_json(url)["tool_metrics"]["still-recording"]["total_calls"] == 1


def test_bad_request_lines_get_a_400() -> None:
    url = _url()
    port = int(url.rsplit(":", 1)[1])
    for raw in (b"GARBAGE\r\n\r\n", b"GET /metrics HTTP/9.9\r\n\r\n", b"get / HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw)
            reply = sock.recv(4096)
        assert reply.split(b" ", 2)[1] in (b"400", b"505"), reply


def test_concurrent_requests_share_one_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    url = _url()
    collections = 0
    gate = threading.Event()
    real = _pipeline.PullReader.collect_data

    def slow_collect(self: _pipeline.PullReader, timeout_millis: float = 10_000) -> object:
        nonlocal collections
        collections += 1
        gate.wait(2.0)  # hold the first collection so the other requests pile up behind it
        return real(self, timeout_millis)

    monkeypatch.setattr(_pipeline.PullReader, "collect_data", slow_collect)
    otel_perf.record_tool_call("t", True, 1.0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(http_request, url, "GET", None, "/metrics") for _ in range(4)]
        threading.Timer(0.5, gate.set).start()
        results = [f.result(timeout=30) for f in futures]
    assert all(status == 200 for status, _, _ in results)
    assert len({body for _, _, body in results}) == 1  # the very same document
    assert collections < 4


def test_port_in_use_warns_once_and_recording_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        with caplog.at_level(logging.WARNING, logger="otel_perf"):
            metrics = otel_perf.configure(json_port=port)
        assert metrics.url is None
        warnings = [r for r in caplog.records if "cannot serve metrics" in r.getMessage()]
        assert len(warnings) == 1
        otel_perf.record_tool_call("t", True, 3.0)
        assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1
    finally:
        blocker.close()


def test_json_endpoint_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_JSON_ENDPOINT_ENABLED", "false")
    metrics = otel_perf.configure()
    assert metrics.url is None
    otel_perf.record_tool_call("t", True, 3.0)
    assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1


def test_reset_keeps_the_endpoint_and_leaks_no_threads() -> None:
    url = _url()
    otel_perf.record_tool_call("t", True, 3.0)
    before = threading.active_count()
    for _ in range(20):
        otel_perf.get_collector().reset_metrics()
    assert threading.active_count() <= before
    assert _configure.get_runtime().url == url
    assert get_json(url)["tool_metrics"] == {}


def test_shutdown_stops_the_server_and_its_threads() -> None:
    url = _url()
    port = int(url.rsplit(":", 1)[1])
    otel_perf.shutdown()
    names = {t.name for t in threading.enumerate()}
    assert not any(name.startswith("otel-perf-http") for name in names)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass


def test_server_standalone_route_and_keep_alive() -> None:
    import http.client

    server = MetricsServer("127.0.0.1", 0, {"/x": lambda r: json_response(200, {"q": r.query})})
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        for i in range(3):  # three requests on one connection
            conn.request("GET", f"/x?n={i}")
            response = conn.getresponse()
            assert json.loads(response.read()) == {"q": f"n={i}"}
        conn.close()
    finally:
        server.stop()
