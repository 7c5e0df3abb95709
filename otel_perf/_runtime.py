"""``Metrics``: the handle ``configure()`` returns: settings, pipeline and HTTP endpoint."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from opentelemetry.sdk.metrics import MeterProvider

from otel_perf import _dashboard
from otel_perf._history import DEFAULT_CAPACITY, DEFAULT_INTERVAL_S, History
from otel_perf._http import (
    MetricsServer,
    Request,
    Response,
    ServiceUnavailable,
    exposure_warning,
    json_response,
)
from otel_perf._log import logger
from otel_perf._pipeline import Pipeline, Snapshot
from otel_perf._prometheus import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from otel_perf._prometheus import render as render_prometheus
from otel_perf._recorder import Recorder
from otel_perf._reuse import Reuse
from otel_perf._settings import Settings
from otel_perf._version import __version__
from otel_perf._view import disabled_document


class CollectionError(RuntimeError):
    """Reading the metrics failed (the SDK's collect raised). Recording is unaffected."""


class Metrics:
    """A configured otel-perf: what :func:`otel_perf.configure` returns.

    >>> import otel_perf
    >>> metrics = otel_perf.configure(json_port=0)
    >>> metrics.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self,
        settings: Settings,
        *,
        history_size: int = DEFAULT_CAPACITY,
        history_interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._pipeline: Pipeline | None = Pipeline(settings) if settings.enabled else None
        self._server: MetricsServer | None = None
        #: Recent per-interval samples for trends (``/metrics/history``), filled while serving.
        self.history = History(
            lambda: self._pipeline, capacity=history_size, interval_s=history_interval_s
        )
        # What HTTP polling may cost the host is bounded (see _reuse.py); the Python API is not.
        self._metrics_body: Reuse[bytes] = Reuse(self.snapshot_body)
        self._prometheus_body: Reuse[bytes] = Reuse(self._render_prometheus)
        self._closed = False
        self._started_wall = time.time()
        if settings.enabled and settings.json_enabled:
            self._start_server()

    # --- what the rest of the package uses -----------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._pipeline is not None

    @property
    def recorder(self) -> Recorder | None:
        """The hot-path recorder, or ``None`` when disabled (record calls then do nothing)."""
        pipeline = self._pipeline
        return pipeline.recorder if pipeline is not None else None

    @property
    def pipeline(self) -> Pipeline | None:
        return self._pipeline

    @property
    def meter_provider(self) -> MeterProvider | None:
        """The SDK MeterProvider otel-perf records into (``None`` when disabled).

        Instruments created from it under otel-perf's metric names show up in the JSON view.
        """
        pipeline = self._pipeline
        return pipeline.meter_provider if pipeline is not None else None

    @property
    def url(self) -> str | None:
        """Base URL of the running endpoint, e.g. ``http://127.0.0.1:9109``; ``None`` if off."""
        return self._server.url if self._server is not None else None

    @property
    def port(self) -> int | None:
        return self._server.port if self._server is not None else None

    # --- snapshots -------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[Snapshot, bool]:
        pipeline = self._pipeline
        if pipeline is None:
            return Snapshot(disabled_document(time.time())), True
        try:
            return pipeline.snapshot()
        except Exception as exc:
            logger.warning("otel-perf: collecting metrics failed: %s", type(exc).__name__)
            raise CollectionError("collecting metrics failed; see the otel-perf log") from exc

    def snapshot(self) -> dict[str, Any]:
        """Collect now and return the document (closes a latency-window slice)."""
        snap, leader = self._snapshot()
        # A caller that shared someone else's collection gets its own copy to mutate.
        return snap.document if leader else json.loads(snap.body)

    def snapshot_body(self) -> bytes:
        """The document as JSON bytes; concurrent callers share one collection and encoding."""
        return self._snapshot()[0].body

    # --- HTTP ------------------------------------------------------------------------------------

    def routes(self) -> dict[str, Any]:
        return {
            "/metrics": self._metrics_route,
            "/health": self._health_route,
            "/metrics/history": self._history_route,
            "/metrics/prometheus": self._prometheus_route,
            **_dashboard.routes(),
        }

    def _render_prometheus(self) -> bytes:
        # A raw collection: a scrape closes no JSON-view window slice.
        pipeline = self._pipeline
        return render_prometheus(pipeline.collect() if pipeline is not None else None)

    def _prometheus_route(self, _request: Request) -> Response:
        try:
            body = self._prometheus_body.get()
        except Exception as exc:
            logger.warning(
                "otel-perf: rendering /metrics/prometheus failed: %s", type(exc).__name__
            )
            raise ServiceUnavailable from exc
        return Response(200, body, PROMETHEUS_CONTENT_TYPE)

    def _metrics_route(self, _request: Request) -> Response:
        try:
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
        return Response(200, self.history.body(after))

    def _health_route(self, _request: Request) -> Response:
        pipeline = self._pipeline
        start = pipeline.start_time if pipeline is not None else self._started_wall
        return json_response(
            200,
            {
                "status": "ok",
                "enabled": self.enabled,
                "version": __version__,
                "uptime_seconds": round(time.time() - start, 2),
            },
        )

    def _start_server(self) -> None:
        settings = self.settings
        server = MetricsServer(
            settings.json_host,
            settings.json_port,
            self.routes(),
            cors_origins=settings.cors_origins,
            auth_token=settings.auth_token,
            page_paths=_dashboard.PAGE_PATHS,
        )
        try:
            server.start()
        except (OSError, RuntimeError) as exc:  # RuntimeError: no new threads at shutdown
            logger.warning(
                "otel-perf: cannot serve metrics on %s:%s (%s); recording continues, the JSON "
                "endpoint is off (set METRICS_JSON_PORT to a free port, or 0)",
                settings.json_host,
                settings.json_port,
                getattr(exc, "strerror", None) or exc,
            )
            return
        exposed = exposure_warning(settings.json_host, settings.auth_token)
        if exposed is not None:
            logger.warning("%s", exposed)
        self._server = server
        self.history.start()
        logger.info("otel-perf: serving metrics on %s/metrics", server.url)

    # --- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start over with a new MeterProvider: zero counts, new start time, same endpoint."""
        with self._lock:
            old = self._pipeline
            if old is None:
                return
            self._pipeline = Pipeline(self.settings)
            self._metrics_body.clear()
            self._prometheus_body.clear()
        old.shutdown()

    def abandon_after_fork(self) -> None:
        """In a forked child: let go of the parent's endpoint without touching its threads.

        The loop, worker, history and export threads did not survive the fork and their
        locks may be held for ever, so nothing here waits on them: only the child's copy of
        the listening socket is closed, so the port stays the parent's alone.
        """
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            server.release_after_fork()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the endpoint and shut the pipeline down (a final export, where one is set up)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            server, self._server = self._server, None
            pipeline = self._pipeline
        deadline = time.monotonic() + max(timeout_s, 0.0)
        if server is not None:
            server.stop(timeout_s)
        self.history.stop(timeout_s)
        if pipeline is not None:
            # The final export gets what is left of the budget: shutdown() stays within it.
            pipeline.shutdown(max(deadline - time.monotonic(), 0.0))
