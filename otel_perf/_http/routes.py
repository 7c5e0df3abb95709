"""The endpoint's routes over one :class:`~otel_perf._metrics.Metrics`, and starting the server.

``/metrics`` (the JSON document), ``/metrics/prometheus``, ``/metrics/history``, ``/health`` and
the dashboard's pages. What HTTP polling may cost the host is bounded by :mod:`.reuse`; the
Python API (``get_all_metrics()``) is not.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from otel_perf._errors import CollectionError
from otel_perf._history import History
from otel_perf._http import dashboard, registry
from otel_perf._http.reuse import DutyCycle, Reuse
from otel_perf._http.server import (
    MetricsServer,
    Request,
    Response,
    Route,
    ServiceUnavailable,
    exposure_warning,
    json_response,
)
from otel_perf._log import logger
from otel_perf._settings import Settings
from otel_perf._version import __version__

if TYPE_CHECKING:  # the SDK loads when the metrics are first read, not with the endpoint
    from otel_perf._pipeline import Pipeline
    from otel_perf._recorder import Recorder

#: prometheus_client's ``CONTENT_TYPE_PLAIN_0_0_4``, spelled out so that serving the endpoint
#: does not import prometheus_client (tests/integration/test_import.py checks they agree).
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Served(Protocol):
    """What the endpoint needs of a configured otel-perf; :class:`otel_perf.Metrics` is one."""

    @property
    def settings(self) -> Settings: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def pipeline(self) -> Pipeline | None: ...

    @property
    def recorder(self) -> Recorder | None: ...

    @property
    def service_name(self) -> str: ...

    @property
    def history(self) -> History: ...

    @property
    def started_wall(self) -> float: ...

    def snapshot_body(self) -> bytes: ...

    def snapshot(self) -> dict[str, Any]: ...

    def per_process(self) -> list[dict[str, Any]]: ...


#: Distinct ``/metrics/history?since=`` answers kept for reuse at once.
_MAX_HISTORY_KEYS = 32


class Endpoint:
    """What one ``Metrics`` serves over HTTP: its routes, their reused results, the server."""

    def __init__(self, metrics: Served) -> None:
        self._metrics = metrics
        # One duty cycle for every path: polling all of them costs no more than polling one.
        self._duty = DutyCycle()
        self._metrics_body: Reuse[bytes] = Reuse(metrics.snapshot_body, duty=self._duty)
        self._prometheus_body: Reuse[bytes] = Reuse(self._render_prometheus, duty=self._duty)
        # /metrics/history by its ``since`` value (pollers in step ask for the same one).
        self._history_bodies: dict[str, Reuse[bytes]] = {}
        self._history_lock = threading.Lock()
        self.server: MetricsServer | None = None
        self._registered: Path | None = None  # this endpoint's entry in the local registry

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    @property
    def port(self) -> int | None:
        return self.server.port if self.server is not None else None

    def routes(self) -> dict[str, Route]:
        return {
            "/metrics": self._metrics_route,
            "/health": self._health_route,
            "/metrics/history": self._history_route,
            "/metrics/prometheus": self._prometheus_route,
            **dashboard.routes(),
        }

    def forget_results(self) -> None:
        """Drop reused results (after ``reset_metrics()``: they describe the old pipeline)."""
        self._metrics_body.clear()
        self._prometheus_body.clear()
        with self._history_lock:
            self._history_bodies.clear()

    def _render_prometheus(self) -> bytes:
        # prometheus_client loads with the first scrape, not with the endpoint: start-up counts
        # for stdio servers, which MCP clients spawn on demand.
        from otel_perf._http import prometheus  # noqa: PLC0415

        # A raw collection: a scrape closes no JSON-view window slice.
        pipeline = self._metrics.pipeline
        return prometheus.render(pipeline.view_collect() if pipeline is not None else None)

    def _prometheus_route(self, _request: Request) -> Response:
        try:
            body = self._prometheus_body.get()
        except Exception as exc:
            logger.warning(
                "otel-perf: rendering /metrics/prometheus failed: %s", type(exc).__name__
            )
            raise ServiceUnavailable from exc
        return Response(200, body, PROMETHEUS_CONTENT_TYPE)

    def _metrics_route(self, request: Request) -> Response:
        per_process = parse_qs(request.query).get("per_process", [""])[0] in ("1", "true")
        try:
            if per_process:
                # The document plus each process's own share (see "Many processes").
                document = self._metrics.snapshot()
                document["processes"] = self._metrics.per_process()
                return json_response(200, document)
            body = self._metrics_body.get()
        except CollectionError as exc:
            raise ServiceUnavailable from exc
        return Response(200, body)

    def _history_route(self, request: Request) -> Response:
        # ``?since=<timestamp>`` returns only newer samples, so the page can poll cheaply.
        since = parse_qs(request.query).get("since", [""])[0]
        try:
            after = float(since) if since else None
        except ValueError:
            after = None
        history = self._metrics.history
        key = repr(after)
        with self._history_lock:
            reuse = self._history_bodies.get(key)
            if reuse is None:
                if len(self._history_bodies) >= _MAX_HISTORY_KEYS:
                    self._history_bodies.clear()  # bounded; an old ``since`` is not asked again
                reuse = Reuse(lambda: history.body(after), duty=self._duty)
                self._history_bodies[key] = reuse
        return Response(200, reuse.get())

    def _health_route(self, _request: Request) -> Response:
        metrics = self._metrics
        # The recorder, not the pipeline: a health check does not start a deferred SDK.
        recorder = metrics.recorder
        start = recorder.start_time if recorder is not None else metrics.started_wall
        return json_response(
            200,
            {
                "status": "ok",
                "enabled": metrics.enabled,
                "version": __version__,
                "uptime_seconds": round(time.time() - start, 2),
                # Measurements this recorder dropped: record calls only queue, so none but
                # those a forked child makes into an inherited pipeline (otel_perf._handoff).
                "dropped_measurements": recorder.drops.count if recorder is not None else 0,
            },
        )

    def start(self, port: int | None = None, *, quiet: bool = False) -> bool:
        """Start serving (on ``port``, else the configured one); ``False`` when the port cannot
        be had: with one warning, unless ``quiet``."""
        settings = self._metrics.settings
        port = settings.json_port if port is None else port
        server = MetricsServer(
            settings.json_host,
            port,
            self.routes(),
            cors_origins=settings.cors_origins,
            allowed_hosts=settings.allowed_hosts,
            auth_token=settings.auth_token,
            page_paths=dashboard.PAGE_PATHS,
        )
        try:
            server.start()
        except (OSError, RuntimeError) as exc:  # RuntimeError: no new threads at shutdown
            if not quiet:
                logger.warning(
                    "otel-perf: cannot serve metrics on %s:%s (%s): another program holds the "
                    "port (the processes of one server share it by themselves: see 'Many "
                    "processes' in the README); recording and OTLP export continue, the JSON "
                    "endpoint is off for this server; set METRICS_JSON_PORT to a free port, or 0",
                    settings.json_host,
                    port,
                    getattr(exc, "strerror", None) or exc,
                )
            return False
        exposed = exposure_warning(settings.json_host, settings.auth_token)
        if exposed is not None:
            logger.warning("%s", exposed)
        if "*" in settings.cors_origins:
            logger.warning(
                "otel-perf: WARNING: METRICS_CORS_ORIGINS=* lets any web page you visit read "
                "the metrics endpoint; list the origins of your dashboards instead"
            )
        self.server = server
        logger.info("otel-perf: serving metrics on %s/metrics", server.url)
        self._registered = registry.register(
            local_url(server.url),
            self._metrics.service_name,
            token_required=settings.auth_token is not None,
            runtime_dir=settings.runtime_dir,
        )
        return True

    def stop(self, timeout_s: float) -> None:
        server, self.server = self.server, None
        registry.unregister(self._registered)
        self._registered = None
        if server is not None:
            server.stop(timeout_s)

    def release_after_fork(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.release_after_fork()


def local_url(url: str) -> str:
    """``url`` as a client on this machine reaches it (a wildcard bind becomes loopback)."""
    for wildcard in ("//0.0.0.0:", "//[::]:"):
        url = url.replace(wildcard, "//127.0.0.1:")
    return url


def routes_for(metrics: Served) -> dict[str, Route]:
    """The routes ``metrics`` serves (for mounting them on a server of one's own)."""
    return Endpoint(metrics).routes()


def start_endpoint(
    metrics: Served, port: int | None = None, *, quiet: bool = False
) -> Endpoint | None:
    """Serve ``metrics`` on its configured host and port (or ``port``); ``None`` if that
    failed (warned, unless ``quiet``)."""
    endpoint = Endpoint(metrics)
    if not endpoint.start(port, quiet=quiet):
        return None
    metrics.history.start()
    return endpoint


__all__ = ["Endpoint", "Served", "routes_for", "start_endpoint"]
