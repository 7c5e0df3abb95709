"""Messages an mcp 2.x transport rejects before any middleware runs are requests too.

Raw bytes go to real servers (``MCPServer``, the low-level ``Server`` and FastMCP 4): lines on a
stdio child's pipes, and POSTs to streamable HTTP (stateful and stateless, both protocol eras)
under uvicorn on 127.0.0.1. Each message the client sends is one request in
``total_requests``, with its JSON-RPC code as ``rpc.response.status_code``, under
``mcp.method.name`` ``_OTHER`` when no handler saw it, and never a failure or a tool's error type.
Messages the middleware sees (unknown methods, invalid params) are counted once, not twice.
"""

from __future__ import annotations

import http.client
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import otel_perf
from otel_perf import _semconv as n
from tests.support.servers import apps, harness

ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LEGACY = "2025-06-18"
MODERN = "2026-07-28"
WAIT_S = 15.0


def rpc(id_: int, method: str, params: object = None) -> bytes:
    """A request's bytes; ``params`` may be any JSON value (the tests send wrong ones too)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


def other_codes(points: dict[tuple[tuple[str, str], ...], int]) -> Counter[str]:
    """Requests recorded under ``_OTHER`` per ``rpc.response.status_code``; asserts none of them
    is a failure."""
    codes: Counter[str] = Counter()
    for attributes, count in points.items():
        labels = dict(attributes)
        if labels.get(n.MCP_METHOD_NAME) != n.OTHER or n.GEN_AI_TOOL_NAME in labels:
            continue
        assert n.ERROR_TYPE not in labels, labels
        codes[labels.get(n.RPC_RESPONSE_STATUS_CODE, "none")] += count
    return codes


def sdk_points(metrics: otel_perf.Metrics) -> dict[tuple[tuple[str, str], ...], int]:
    """Count per attribute set of ``mcp.server.operation.duration`` in this process."""
    assert metrics.pipeline is not None
    data = metrics.pipeline.collect()
    assert data is not None
    out: dict[tuple[tuple[str, str], ...], int] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != n.MCP_SERVER_OPERATION_DURATION:
                    continue
                for point in metric.data.data_points:
                    key = tuple(sorted((k, str(v)) for k, v in point.attributes.items()))
                    out[key] = out.get(key, 0) + int(point.count)
    return out


#: Prometheus label name -> attribute name, for the attributes these tests read.
PROMETHEUS_LABELS = {
    key.replace(".", "_"): key
    for key in (n.MCP_METHOD_NAME, n.RPC_RESPONSE_STATUS_CODE, n.ERROR_TYPE, n.GEN_AI_TOOL_NAME)
}


def prometheus_points(text: str) -> dict[tuple[tuple[str, str], ...], int]:
    """The same counts read from a ``/metrics/prometheus`` answer."""
    out: dict[tuple[tuple[str, str], ...], int] = {}
    prefix = "mcp_server_operation_duration_seconds_count{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels_text, value = line[len(prefix) :].rsplit("} ", 1)
        pairs = (part.split("=", 1) for part in labels_text.split('",'))
        key = tuple(
            sorted((PROMETHEUS_LABELS[k], v.strip('"')) for k, v in pairs if k in PROMETHEUS_LABELS)
        )
        out[key] = out.get(key, 0) + int(float(value))
    return out


def settled_total(at_least: int) -> int:
    """``total_requests`` once it reached ``at_least`` (a notification is handled after its
    answer), within the deadline."""
    deadline = time.monotonic() + WAIT_S
    while True:
        total: int = otel_perf.get_all_metrics()["system_metrics"]["total_requests"]
        if total >= at_least or time.monotonic() > deadline:
            return total
        time.sleep(0.02)


def check_no_tool_failures(document: dict[str, Any]) -> None:
    for name, entry in document["tool_metrics"].items():
        assert entry["failed_calls"] == 0, name
        assert entry["error_types"] == {}, name
        parts = entry["successful_calls"] + entry["failed_calls"] + entry["client_errors"]
        assert parts == entry["total_calls"], name


# --- streamable HTTP ------------------------------------------------------------------------


class RawHttp:
    """POSTs raw bodies to one server's ``/mcp``; one fresh connection each."""

    def __init__(self, base: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.session: str | None = None

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=WAIT_S)
        try:
            sent = {
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            }
            sent.update(headers or {})
            connection.request("POST", "/mcp", body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            self.session = response.getheader("mcp-session-id") or self.session
            return response.status, data
        finally:
            connection.close()


def answer_code(body: bytes) -> int | None:
    """The JSON-RPC error code of an answer (a JSON body, or the last SSE ``data:`` line)."""
    text = body.decode()
    if text.startswith(("event:", "data: ")) or "\ndata: " in text:
        text = [line for line in text.splitlines() if line.startswith("data: ")][-1][6:]
    message = json.loads(text)
    error = message.get("error")
    return None if error is None else int(error["code"])


def http_cases(
    stateless: bool, session: str | None
) -> list[tuple[str, bytes, dict[str, str], int, int | None, bool]]:
    """(what, body, headers, HTTP status, JSON-RPC code or None, recorded under _OTHER)."""
    legacy = {"MCP-Protocol-Version": LEGACY}
    if session is not None:
        legacy["Mcp-Session-Id"] = session
    modern = {"MCP-Protocol-Version": MODERN}
    cases = [
        ("not JSON", b"{not json", legacy, 400, -32700, True),
        ("no method", b'{"jsonrpc": "2.0", "id": 5}', legacy, 400, -32602, True),
        ("a batch", b'[{"jsonrpc": "2.0", "id": 6, "method": "ping"}]', legacy, 400, -32602, True),
        ("params not an object", rpc(7, "tools/list", "x"), legacy, 400, -32602, True),
        # the SDK hands these to the middleware: counted there, once
        ("unknown method", rpc(8, "nope/x"), legacy, 200, -32601, True),
        (
            "a known method, bad params",
            rpc(9, "tools/call", {"arguments": {}}),
            legacy,
            200,
            -32602,
            False,
        ),
        ("2026: not JSON", b"{not json", modern, 400, -32700, True),
        ("2026: not one request", b'{"jsonrpc": "2.0", "id": 10}', modern, 400, -32600, True),
        (
            "2026: no envelope",
            rpc(11, "tools/list"),
            {**modern, "Mcp-Method": "tools/list"},
            400,
            -32602,
            True,
        ),
        (
            "2026: header mismatch",
            rpc(12, "tools/list", {"_meta": ENVELOPE}),
            modern,
            400,
            -32020,
            True,
        ),
        (
            "2026: unsupported version",
            rpc(
                13,
                "tools/list",
                {"_meta": {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}},
            ),
            {"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"},
            400,
            -32022,
            True,
        ),
        # handled by the kernel inside the middleware chain, answered 404 / 200: counted once
        (
            "2026: unknown method",
            rpc(14, "nope/y", {"_meta": ENVELOPE}),
            {**modern, "Mcp-Method": "nope/y"},
            404,
            -32601,
            True,
        ),
        (
            "2026: a tool call",
            rpc(15, "tools/call", {"_meta": ENVELOPE, "name": "ok", "arguments": {"x": 1}}),
            {**modern, "Mcp-Method": "tools/call", "Mcp-Name": "ok"},
            200,
            None,
            False,
        ),
    ]
    if not stateless:
        cases += [
            (
                "no session",
                rpc(16, "tools/list"),
                {"MCP-Protocol-Version": LEGACY},
                400,
                -32600,
                True,
            ),
            (
                "unknown session",
                rpc(17, "tools/list"),
                {"MCP-Protocol-Version": LEGACY, "Mcp-Session-Id": "f" * 32},
                404,
                -32600,
                True,
            ),
        ]
    return cases


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
@pytest.mark.parametrize("kind", apps.KINDS)
def test_http_rejections_are_requests(kind: str, mode: str) -> None:
    metrics = otel_perf.configure(json_enabled=False)
    assert metrics.pipeline is not None
    server = apps.build(kind)
    harness.instrument(kind, server)
    stateless = mode == "stateless"
    with harness.uvicorn_server(apps.http_app(kind, server, stateless=stateless)) as base:
        client = RawHttp(base)
        status, _ = client.post(json.dumps(INITIALIZE).encode())
        assert status == 200
        headers = {"MCP-Protocol-Version": LEGACY}
        if client.session is not None:
            headers["Mcp-Session-Id"] = client.session
        assert client.post(json.dumps(INITIALIZED).encode(), headers)[0] == 202
        before_total = settled_total(2)  # initialize, and the notification (handled after 202)
        before = other_codes(sdk_points(metrics))
        cases = http_cases(stateless, client.session)
        expected: Counter[str] = Counter()
        for what, body, case_headers, want_status, want_code, under_other in cases:
            status, answer = client.post(body, case_headers)
            assert (status, answer_code(answer)) == (want_status, want_code), (what, answer[:200])
            if under_other:
                expected[str(want_code)] += 1
        document = otel_perf.get_all_metrics()
    assert document["system_metrics"]["total_requests"] - before_total == len(cases)
    assert other_codes(sdk_points(metrics)) - before == expected
    check_no_tool_failures(document)
    assert document["tool_metrics"][n.OTHER]["client_errors"] == 1  # the call without a name
    assert document["tool_metrics"]["ok"]["successful_calls"] == 1


# --- stdio -----------------------------------------------------------------------------------


class RawStdio:
    """A stdio server child fed raw lines; its answers are read by a thread, with a deadline."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.answers: queue.Queue[bytes] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line)

    def send(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.answers.get(timeout=WAIT_S))
        return message

    def answers_by_id(self, count: int) -> dict[object, dict[str, Any]]:
        got = [self.answer() for _ in range(count)]
        return {message.get("id"): message for message in got}


@contextmanager
def stdio_child(kind: str, tmp_path: Path) -> Iterator[tuple[RawStdio, str]]:
    url_file = tmp_path / f"{kind}-url.txt"
    env = harness.child_env({"OTEL_PERF_TEST_URL_FILE": str(url_file)})
    command = [sys.executable, str(harness.HERE / "stdio_server.py"), kind]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        deadline = WAIT_S
        while not url_file.exists() and deadline > 0:
            threading.Event().wait(0.05)
            deadline -= 0.05
        yield RawStdio(process), url_file.read_text()
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(WAIT_S)
            if process.stdout is not None:
                process.stdout.close()


def read_metrics(base: str) -> tuple[dict[str, Any], dict[tuple[tuple[str, str], ...], int]]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=WAIT_S) as response:  # noqa: S310
        document = json.loads(response.read())
    with urllib.request.urlopen(f"{base}/metrics/prometheus", timeout=WAIT_S) as response:  # noqa: S310
        points = prometheus_points(response.read().decode())
    return document, points


@pytest.mark.parametrize("era", ["legacy", "2026"])
@pytest.mark.parametrize("kind", apps.KINDS)
def test_stdio_rejections_are_requests(kind: str, era: str, tmp_path: Path) -> None:
    with stdio_child(kind, tmp_path) as (child, base):
        if era == "legacy":
            child.send(json.dumps(INITIALIZE).encode())
            assert "result" in child.answer()
            child.send(json.dumps(INITIALIZED).encode())
            meta: dict[str, Any] = {}
        else:
            child.send(rpc(1, "tools/list", {"_meta": ENVELOPE}))
            assert "result" in child.answer()
            meta = {"_meta": ENVELOPE}
        before_document, before_points = read_metrics(base)
        # Lines the transport cannot read: no answer at all (the SDK drops them).
        unreadable = [
            (b"{not json", "-32700"),
            (b'{"jsonrpc": "2.0", "id": 5}', "-32600"),
            (b'[{"jsonrpc": "2.0", "id": 6, "method": "ping"}]', "-32600"),
            (rpc(7, "tools/list", "x"), "-32600"),
        ]
        for line, _code in unreadable:
            child.send(line)
        child.send(b"")  # a blank line is no message: not counted
        # Answered before any middleware: the other era's requests (id, line, code).
        unsupported = {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
        if era == "legacy":
            refused = [(20, rpc(20, "tools/list", {"_meta": ENVELOPE}), -32600)]
        else:
            refused = [
                (20, json.dumps({**INITIALIZE, "id": 20}).encode(), -32022),
                (21, rpc(21, "tools/list"), -32602),
                (22, rpc(22, "tools/list", {"_meta": unsupported}), -32022),
            ]
        # Seen by the middleware: counted once, by it.
        seen = [
            (30, rpc(30, "nope/x", meta), -32601),
            (31, rpc(31, "tools/call", {**meta, "arguments": {}}), -32602),
            (32, rpc(32, "tools/call", {**meta, "name": "ok", "arguments": {"x": 1}}), None),
        ]
        for _id, line, _code in refused + seen:
            child.send(line)
        answers = child.answers_by_id(len(refused) + len(seen))
        for id_, _line, code in refused + seen:
            error = answers[id_].get("error")
            assert (error["code"] if error else None) == code, answers[id_]
        document, points = read_metrics(base)
        assert child.answers.empty()  # the unreadable lines got no answer
    sent = len(unreadable) + len(refused) + len(seen)
    total = (
        document["system_metrics"]["total_requests"]
        - before_document["system_metrics"]["total_requests"]
    )
    assert total == sent
    expected = Counter(code for _line, code in unreadable)
    expected.update(str(code) for _id, _line, code in refused)
    expected["-32601"] += 1  # the unknown method, recorded by the middleware under _OTHER
    assert other_codes(points) - other_codes(before_points) == expected
    check_no_tool_failures(document)
    assert document["tool_metrics"][n.OTHER]["client_errors"] == 1


def test_an_app_built_before_instrument_is_tapped_too() -> None:
    metrics = otel_perf.configure(json_enabled=False)
    server = apps.build("mcpserver")
    app = apps.http_app("mcpserver", server)
    harness.instrument("mcpserver", server)
    with harness.uvicorn_server(app) as base:
        status, answer = RawHttp(base).post(b"{not json", {"MCP-Protocol-Version": LEGACY})
    assert (status, answer_code(answer)) == (400, -32700)
    assert other_codes(sdk_points(metrics)) == {"-32700": 1}


def test_sse_posts_the_transport_cannot_read_are_requests() -> None:
    """The SSE transport also runs ``Server.run()``: what it cannot read (it answers a plain-text
    400 and passes the error on to the stream) is counted by the same tap as stdio's."""
    metrics = otel_perf.configure(json_enabled=False)
    server = apps.build("mcpserver")
    harness.instrument("mcpserver", server)
    with harness.uvicorn_server(server.sse_app()) as base:
        host, port = base.removeprefix("http://").split(":")
        stream = http.client.HTTPConnection(host, int(port), timeout=WAIT_S)
        try:
            stream.request("GET", "/sse", headers={"Accept": "text/event-stream"})
            events = stream.getresponse()
            line = b""
            while b"session_id=" not in line:
                line = events.fp.readline()
            endpoint = line.decode().split("data: ", 1)[1].strip()
            for body in (b"{not json", b'{"jsonrpc": "2.0", "id": 5}'):
                post = http.client.HTTPConnection(host, int(port), timeout=WAIT_S)
                post.request(
                    "POST", endpoint, body=body, headers={"Content-Type": "application/json"}
                )
                answer = post.getresponse()
                assert (answer.status, answer.read()) == (400, b"Could not parse message")
                post.close()
            deadline = time.monotonic() + WAIT_S
            while (
                sum(other_codes(sdk_points(metrics)).values()) < 2 and time.monotonic() < deadline
            ):
                time.sleep(0.02)
        finally:
            stream.close()
    assert other_codes(sdk_points(metrics)) == {"-32700": 1, "-32600": 1}
