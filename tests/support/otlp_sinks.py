"""Real OTLP receivers for the export tests: oteltest's sinks, bound to 127.0.0.1 only.

oteltest (PyPI, not written by this project) ships a gRPC and an HTTP OTLP receiver whose
servicers/handlers parse real ``ExportMetricsServiceRequest`` protobufs. Both bind every
interface (``0.0.0.0``/``""``); the subclasses here change only the bind address (loopback, a
free port) and keep oteltest's request handling: its gRPC ``_MetricsServiceServicer`` and its
``HttpSink.handle_metrics`` protobuf parsing.

Also here: a "black hole" that accepts TCP connections and never answers, and helpers that turn
received requests into the latest cumulative totals per series.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from oteltest.sink import GrpcSink, HttpSink
from oteltest.sink.handler import RequestHandler
from oteltest.sink.private import (
    _LogsServiceServicer,
    _MetricsServiceServicer,
    _TraceServiceServicer,
)

_log = logging.getLogger("tests.otlp_sinks")


class Recorder(RequestHandler):
    """An oteltest request handler that keeps every metrics request it is given."""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.headers: list[Any] = []
        self._lock = threading.Lock()

    def handle_metrics(self, request: ExportMetricsServiceRequest, headers: Any) -> None:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)

    def handle_logs(self, request: Any, headers: Any) -> None:
        """Not used: otel-perf exports metrics only."""

    def handle_trace(self, request: Any, headers: Any) -> None:
        """Not used: otel-perf exports metrics only."""

    def snapshot(self) -> list[ExportMetricsServiceRequest]:
        with self._lock:
            return list(self.requests)


class LoopbackGrpcSink(GrpcSink):
    """oteltest's GrpcSink on 127.0.0.1 (``port=0``: a free one), with oteltest's servicers."""

    def __init__(self, handler: RequestHandler, port: int = 0) -> None:
        # GrpcSink.__init__ binds 0.0.0.0 and a bound port cannot be removed again, so the
        # same server is assembled here with the same servicers and a loopback address.
        self.svr = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceServiceServicer(handler.handle_trace), self.svr
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsServiceServicer(handler.handle_metrics), self.svr
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            _LogsServiceServicer(handler.handle_logs), self.svr
        )
        self.logger = _log
        self.port = self.svr.add_insecure_port(f"127.0.0.1:{port}")
        if not self.port:
            raise OSError(f"cannot bind 127.0.0.1:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LoopbackHttpSink(HttpSink):
    """oteltest's HttpSink on 127.0.0.1, bound at construction so the port is known at once."""

    def __init__(self, handler: RequestHandler, port: int = 0) -> None:
        super().__init__(handler, _log, port=port, daemon=True)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            # The same dispatch as oteltest's own handler: path -> oteltest's protobuf parsing.
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                route = sink.handlers.get(self.path)
                if route is not None:
                    route(body, dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read requests, not access logs."""

        self.httpd = HTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]

    def run_server(self) -> None:
        assert self.httpd is not None
        self.httpd.serve_forever(poll_interval=0.1)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/metrics"


class BlackHole:
    """Accepts TCP connections on 127.0.0.1, reads whatever comes, and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.bytes_received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BlackHole:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                self._drain()
                continue
            conn.setblocking(False)
            self.connections.append(conn)

    def _drain(self) -> None:
        for conn in self.connections:
            try:
                data = conn.recv(65536)
            except (BlockingIOError, OSError):
                continue
            self.bytes_received += len(data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.connections:
            conn.close()
        self._listener.close()


def free_port() -> int:
    """A port that was free a moment ago (for a receiver that appears later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- reading what arrived ------------------------------------------------------------------------


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes_of(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


@dataclass
class Received:
    """The newest point of every series across all received requests (cumulative view)."""

    resource: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # metric name -> data kind
    temporality: dict[str, int] = field(default_factory=dict)  # metric name -> enum value
    points: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = field(default_factory=dict)

    def series(self, name: str) -> Iterator[tuple[dict[str, Any], Any]]:
        for (metric, attrs), point in self.points.items():
            if metric == name:
                yield dict(attrs), point


def iter_points(requests: list[ExportMetricsServiceRequest]) -> Iterator[tuple[Any, ...]]:
    """(resource attrs, metric, kind, point) for every point in arrival order."""
    for request in requests:
        for rm in request.resource_metrics:
            resource = attributes_of(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    for point in data.data_points:
                        yield resource, metric, kind, point


def latest(requests: list[ExportMetricsServiceRequest]) -> Received:
    """The newest point per series (by ``time_unix_nano``): cumulative totals at the receiver."""
    out = Received()
    for resource, metric, kind, point in iter_points(requests):
        out.resource = resource
        out.kinds[metric.name] = kind
        data = getattr(metric, kind)
        if hasattr(data, "aggregation_temporality"):
            out.temporality[metric.name] = data.aggregation_temporality
        key = (metric.name, frozenset(attributes_of(point.attributes).items()))
        old = out.points.get(key)
        if old is None or point.time_unix_nano >= old.time_unix_nano:
            out.points[key] = point
    return out


def wait_for(
    predicate: Callable[[], bool], timeout_s: float = 15.0, interval_s: float = 0.05
) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
