"""``Metrics``: the handle ``configure()`` returns, and its lifecycle.

It owns the settings, the pipeline, the history ring and — when the endpoint is on — the HTTP
server, which it starts through :mod:`otel_perf._http.routes` (imported only then).
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics import MeterProvider

from otel_perf._history import DEFAULT_CAPACITY, DEFAULT_INTERVAL_S, History
from otel_perf._log import logger, warn_once
from otel_perf._pipeline import CollectionError, NestedCollectionError, Pipeline, Snapshot
from otel_perf._recorder import Recorder
from otel_perf._settings import Settings

if TYPE_CHECKING:
    from otel_perf._http.routes import Endpoint


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
        self._endpoint: Endpoint | None = None
        #: Recent per-interval samples for trends (``/metrics/history``), filled while serving.
        self.history = History(
            lambda: self._pipeline, capacity=history_size, interval_s=history_interval_s
        )
        self._closed = False
        #: Wall-clock start, for /health when metrics are off (the pipeline has its own).
        self.started_wall = time.time()
        if settings.enabled and settings.json_enabled:
            from otel_perf._http.routes import start_endpoint  # noqa: PLC0415 - only when served

            self._endpoint = start_endpoint(self)

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
        return self._endpoint.url if self._endpoint is not None else None

    @property
    def port(self) -> int | None:
        return self._endpoint.port if self._endpoint is not None else None

    # --- snapshots -------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[Snapshot, bool]:
        pipeline = self._pipeline
        if pipeline is None:
            from otel_perf._document import disabled_document  # noqa: PLC0415 - rarely needed

            return Snapshot(disabled_document(time.time())), True
        try:
            return pipeline.snapshot()
        except NestedCollectionError as exc:
            warn_once("nested-collection", "otel-perf: %s; it fails at once instead", exc)
            raise CollectionError(str(exc)) from exc
        except Exception as exc:
            logger.warning("otel-perf: collecting metrics failed: %s", type(exc).__name__)
            raise CollectionError("collecting metrics failed; see the otel-perf log") from exc

    def snapshot(self) -> dict[str, Any]:
        """Collect now and return the document (closes a latency-window slice)."""
        snap, exclusive = self._snapshot()
        # A document another caller also holds is never handed out to be mutated: each such
        # caller gets its own copy, decoded from the one shared encoding.
        return snap.document if exclusive else json.loads(snap.body)

    def snapshot_body(self) -> bytes:
        """The document as JSON bytes; concurrent callers share one collection and encoding."""
        return self._snapshot()[0].body

    # --- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start over with a new MeterProvider: zero counts, new start time, same endpoint."""
        with self._lock:
            old = self._pipeline
            if old is None:
                return
            self._pipeline = Pipeline(self.settings)
            if self._endpoint is not None:
                self._endpoint.forget_results()
        old.shutdown()

    def abandon_after_fork(self) -> None:
        """In a forked child: let go of the parent's endpoint without touching its threads.

        The loop, worker, history and export threads did not survive the fork and their
        locks may be held for ever, so nothing here waits on them: only the child's copy of
        the listening socket is closed, so the port stays the parent's alone.
        """
        self._closed = True
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.release_after_fork()
        pipeline = self._pipeline
        if pipeline is not None:
            # A tracked call that spans the fork ends in the child with this recorder in hand.
            pipeline.recorder.abandon_after_fork()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the endpoint and shut the pipeline down (a final export, where one is set up)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            endpoint, self._endpoint = self._endpoint, None
            pipeline = self._pipeline
        deadline = time.monotonic() + max(timeout_s, 0.0)
        if endpoint is not None:
            endpoint.stop(timeout_s)
        self.history.stop(timeout_s)
        if pipeline is not None:
            # The final export gets what is left of the budget: shutdown() stays within it.
            pipeline.shutdown(max(deadline - time.monotonic(), 0.0))
