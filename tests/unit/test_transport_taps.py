"""The pieces that count messages a transport rejects before any middleware (no server here).

- which JSON-RPC code a line the SDK could not read gets, and which answer bodies are JSON-RPC
  errors (on the SDK's own message reader, mcp_types' ``jsonrpc_message_adapter``);
- :class:`HttpTap` as an ASGI middleware: it records an unclaimed JSON-RPC error answer once,
  before the client can read it, and never a claimed POST, another method, a success or a body
  that is not JSON-RPC; hostile ASGI messages pass through untouched with one warning.

The taps on real servers, stdio and streamable HTTP: ``integration/test_transport_rejections.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import mcp_types
import pytest

import otel_perf
from otel_perf import _semconv as n
from otel_perf._integrations.http_tap import HttpTap
from otel_perf._integrations.rejected import (
    MAX_ANSWER_BYTES,
    claim,
    code_of_answer,
    code_of_unreadable,
)


def reading_error(line: str) -> BaseException:
    try:
        mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception as exc:
        return exc
    raise AssertionError(f"{line!r} was read as a message")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("{not json", -32700),
        ('{"jsonrpc": "2.0", "id": 1', -32700),
        ('{"jsonrpc": "2.0", "id": 5}', -32600),
        ('[{"jsonrpc": "2.0", "id": 6, "method": "ping"}]', -32600),
        ('{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": "x"}', -32600),
        ('{"jsonrpc": "1.0", "id": 8, "method": "ping"}', -32600),
        ("null", -32600),
        ("", None),
        ("  \r\n", None),
    ],
)
def test_a_line_the_sdk_cannot_read_gets_its_json_rpc_code(line: str, code: int | None) -> None:
    assert code_of_unreadable(reading_error(line)) == code


def test_an_exception_that_is_not_a_reading_error_is_no_message() -> None:
    assert code_of_unreadable(OSError("pipe broke")) is None
    assert code_of_unreadable(ValueError("x")) is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}', -32700),
        (b'{"jsonrpc":"2.0","error":{"code":-32020,"message":"m"},"id":3}', -32020),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}', None),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":true,"message":"m"}}', None),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":"-32600"}}', None),
        (b'{"error":"invalid_token"}', None),
        (b"Request body too large", None),
        (b"[" * 100_000, None),
        (b"", None),
        (
            json.dumps(
                {"jsonrpc": "2.0", "error": {"code": -1, "m": "x" * MAX_ANSWER_BYTES}}
            ).encode(),
            None,
        ),
    ],
)
def test_only_a_json_rpc_error_body_has_a_code(body: bytes, code: int | None) -> None:
    assert code_of_answer(body) == code


def rejected_counts(metrics: otel_perf.Metrics) -> dict[str, int]:
    """``_OTHER`` requests per status code; asserts none is a failure."""
    assert metrics.pipeline is not None
    data = metrics.pipeline.collect()
    out: dict[str, int] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != n.MCP_SERVER_OPERATION_DURATION:
                    continue
                for point in metric.data.data_points:
                    attributes = dict(point.attributes)
                    assert n.ERROR_TYPE not in attributes or attributes[n.ERROR_TYPE] == "-32603"
                    code = str(attributes.get(n.RPC_RESPONSE_STATUS_CODE))
                    out[code] = out.get(code, 0) + point.count
    return out


def answering(
    status: int, body: bytes, *, claims: bool = False, content_type: bytes = b"application/json"
) -> Any:
    """An ASGI app answering every request with ``status`` and ``body`` in two parts."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if claims:
            claim(1)  # what otel-perf's middleware does for a message it sees
        headers = [(b"content-type", content_type)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:]})

    return app


async def drive(app: Any, method: str = "POST") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": "/mcp", "headers": []}, receive, send)
    return sent


ERROR = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Missing session ID"}}'


async def test_an_unclaimed_error_answer_is_one_request_and_passes_through_unchanged() -> None:
    metrics = otel_perf.configure(json_enabled=False)
    inner = answering(400, ERROR)
    assert await drive(HttpTap(inner)) == await drive(inner)
    assert rejected_counts(metrics) == {"-32600": 1}


async def test_nested_taps_count_once() -> None:
    metrics = otel_perf.configure(json_enabled=False)
    await drive(HttpTap(HttpTap(answering(404, ERROR))))
    assert rejected_counts(metrics) == {"-32600": 1}


@pytest.mark.parametrize(
    ("app", "method"),
    [
        (answering(400, ERROR, claims=True), "POST"),  # the middleware saw it and counts it
        (answering(400, ERROR), "GET"),  # no message
        (answering(400, ERROR), "DELETE"),
        (answering(200, b'{"jsonrpc":"2.0","id":1,"result":{}}'), "POST"),
        (answering(202, b""), "POST"),
        (answering(413, b"Request body too large", content_type=b"text/plain"), "POST"),
        (answering(401, b'{"error":"invalid_token"}'), "POST"),
        (answering(400, ERROR, content_type=b"text/event-stream"), "POST"),
    ],
)
async def test_what_is_not_a_rejected_message_is_not_counted(app: Any, method: str) -> None:
    metrics = otel_perf.configure(json_enabled=False)
    await drive(HttpTap(app), method)
    assert rejected_counts(metrics) == {}


async def test_hostile_asgi_messages_pass_through(caplog: pytest.LogCaptureFixture) -> None:
    metrics = otel_perf.configure(json_enabled=False)

    async def odd(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": "four hundred", "headers": None})
        await send({"type": "http.response.body", "body": ERROR})
        await send({"type": "http.response.start", "status": 400, "headers": [(1, 2)]})
        await send({"type": "http.response.body", "body": None})

    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        sent = await drive(HttpTap(odd))
        await drive(HttpTap(odd))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"] * 2
    assert rejected_counts(metrics) == {}
    assert len([r for r in caplog.records if "MCP HTTP answer" in r.getMessage()]) == 1
