"""``Metrics``: the handle ``configure()`` returns, and its lifecycle.

It owns the settings, the pipeline, the history ring and — when the endpoint is on — the HTTP
server, which it starts through :mod:`otel_perf._http.routes` (imported only then).

**The SDK after the first request.** ``otel-perf run`` configures before the program runs, and
an MCP client that spawns a stdio server waits for its first handshake meanwhile: importing
OpenTelemetry's metrics SDK and building the pipeline is about half of what otel-perf adds
there. So under ``otel-perf run`` (with nothing but the JSON endpoint asked for, and no
application ``MeterProvider``) the recorder starts alone: record calls queue, as they always
do (:mod:`otel_perf._handoff`), and the SDK starts on a thread of its own
:data:`SDK_START_DELAY_S` after the first measurement — once the answer it belongs to is on its
way — or at once when something reads the metrics (the endpoint, ``get_all_metrics()``, a
hand-over to the server's other processes) or the queue is full. The queued measurements go to
the SDK's instruments when they exist; nothing is lost or counted twice.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from otel_perf._errors import CollectionError, NestedCollectionError
from otel_perf._history import DEFAULT_CAPACITY, DEFAULT_INTERVAL_S, History
from otel_perf._log import logger, warn_once
from otel_perf._recorder import Recorder
from otel_perf._settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricsData

    from otel_perf._http.routes import Endpoint
    from otel_perf._multiprocess import Member
    from otel_perf._pipeline import Pipeline, Snapshot

#: How long after the first measurement a deferred SDK starts: the request that measurement
#: belongs to answers meanwhile (writing one answer takes well under a millisecond).
SDK_START_DELAY_S: Final = 0.05


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
        app_provider: MeterProvider | None = None,
        defer_sdk: bool = False,
    ) -> None:
        """``defer_sdk``: start the SDK after the first measurement, not now (see above)."""
        self.settings = settings
        #: The application's MeterProvider otel-perf records through, or ``None`` (its own).
        self.app_provider = app_provider
        self._lock = threading.RLock()
        self._pipeline: Pipeline | None = None
        #: The recorder while the SDK has not started (``defer_sdk``): it queues, unattached.
        self._pending: Recorder | None = None
        #: What the endpoint's views merge (kept for a pipeline that starts later).
        self._view_source: Member | None = None
        self._stopped = threading.Event()
        if settings.enabled and defer_sdk:
            self._pending = Recorder(settings)
            self._pending.queue.need_sdk = self._sdk_needed
        elif settings.enabled:
            from otel_perf._pipeline import Pipeline  # noqa: PLC0415 - see the module's note

            self._pipeline = Pipeline(settings, app_provider)
        self._endpoint: Endpoint | None = None
        #: Recent per-interval samples for trends (``/metrics/history``), filled while serving
        #: (none before the SDK starts: there is nothing to sample).
        self.history = History(
            lambda: self._pipeline, capacity=history_size, interval_s=history_interval_s
        )
        self._closed = False
        #: Wall-clock start, for /health when metrics are off (the pipeline has its own).
        self.started_wall = time.time()
        #: This process's part in its server's group (``None``: alone; otel_perf._multiprocess).
        self._member: Member | None = None
        #: While another process of the server serves: its port, to take over should it end.
        self._standby_port: int | None = None
        if settings.enabled and settings.json_enabled:
            from otel_perf._multiprocess import join_group  # noqa: PLC0415 - only when served

            # The settings in force from here on carry the group this process joined.
            self._member, self.settings = join_group(self._collect_own, settings)
            self._serve()
            if self._member is not None:
                self._member.on_tick = self._take_over_if_free
                self._member.start()

    # --- what the rest of the package uses -----------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._pipeline is not None or self._pending is not None

    @property
    def recorder(self) -> Recorder | None:
        """The hot-path recorder, or ``None`` when disabled (record calls then do nothing)."""
        pipeline = self._pipeline
        return pipeline.recorder if pipeline is not None else self._pending

    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline (``None`` when disabled); a deferred SDK starts now if it has not."""
        pipeline = self._pipeline
        if pipeline is None and self._pending is not None:
            return self._start_sdk()
        return pipeline

    @property
    def sdk_started(self) -> bool:
        """Whether the SDK pipeline exists (``False`` while deferred, and when disabled)."""
        return self._pipeline is not None

    @property
    def service_name(self) -> str:
        """The ``service.name`` of the metrics: the resource's once the SDK has started, else
        what the settings name (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), which is
        what the resource will say unless an SDK resource detector names the service."""
        pipeline = self._pipeline
        if pipeline is not None and pipeline.resource is not None:
            return str(pipeline.resource.attributes.get("service.name", ""))
        settings = self.settings
        return (
            settings.service_name
            or dict(settings.resource_attributes).get("service.name")
            or "unknown_service"
        )

    @property
    def meter_provider(self) -> MeterProvider | None:
        """The SDK MeterProvider otel-perf records into (``None`` when disabled): its own, or
        the application's (:attr:`app_provider`). A deferred SDK starts now if it has not.

        Instruments created from otel-perf's own provider under otel-perf's metric names show up
        in the JSON view; on the application's provider only otel-perf's own scopes do.
        """
        pipeline = self.pipeline
        return pipeline.meter_provider if pipeline is not None else None

    # --- the deferred SDK (see the module's note) -----------------------------------------------

    def _sdk_needed(self, urgent: bool) -> None:
        """The pending recorder's queue got its first measurement (``urgent``: it is full)."""
        if urgent:
            self._start_sdk()
            return
        try:
            threading.Thread(
                target=self._start_sdk_soon, name="otel-perf-sdk-start", daemon=True
            ).start()
        except RuntimeError:  # no new threads (interpreter shutdown): whoever reads starts it
            return

    def _start_sdk_soon(self) -> None:
        if not self._stopped.wait(SDK_START_DELAY_S):
            self._start_sdk()

    def _start_sdk(self) -> Pipeline | None:
        """Start the deferred SDK now (once) and attach the pending recorder to it."""
        # Imported before the lock is taken: an import must not wait for the lock.
        from otel_perf._pipeline import Pipeline  # noqa: PLC0415 - see the module's note

        with self._lock:
            pending = self._pending
            if pending is None or self._closed:
                return self._pipeline
            try:
                pipeline = Pipeline(self.settings, self.app_provider, recorder=pending)
            except Exception as exc:
                logger.warning(
                    "otel-perf: starting the OpenTelemetry SDK failed (%s); metrics are off",
                    type(exc).__name__,
                )
                self._pending = None
                pending.close()  # what waits, and later record calls, are dropped and counted
                return None
            pipeline.view_source = self._view_source
            self._pipeline = pipeline
            self._pending = None
        logger.debug("otel-perf: the OpenTelemetry SDK started")
        return pipeline

    @property
    def url(self) -> str | None:
        """Base URL of the running endpoint, e.g. ``http://127.0.0.1:9109``; ``None`` if off."""
        return self._endpoint.url if self._endpoint is not None else None

    @property
    def port(self) -> int | None:
        return self._endpoint.port if self._endpoint is not None else None

    # --- snapshots -------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[Snapshot, bool]:
        from otel_perf._pipeline import Snapshot  # noqa: PLC0415 - loaded by the SDK's start

        pipeline = self.pipeline
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

    # --- many processes, one endpoint (otel_perf._multiprocess) -----------------------------------

    def _collect_own(self) -> MetricsData | None:
        """This process's own numbers: what it hands over to its server's endpoint (none while
        a deferred SDK waits for its first measurement: nothing was recorded)."""
        pending = self._pending
        if pending is not None and not pending.queue.told:
            return None
        pipeline = self.pipeline
        return pipeline.collect() if pipeline is not None else None

    def _serve(self) -> None:
        """Serve the endpoint, unless another process of this server already does."""
        from otel_perf._http.routes import start_endpoint  # noqa: PLC0415 - only when served

        member = self._member
        if member is None:
            self._endpoint = start_endpoint(self)
            return
        with member.locked():
            holder = member.live_holder()
            if holder is not None:
                self._standby_port = holder.port
                logger.info(
                    "otel-perf: process %d serves this server's metrics on port %d; this "
                    "process (%d) hands its numbers over to it",
                    holder.pid,
                    holder.port,
                    os.getpid(),
                )
                return
            self._merge_views(True)  # before the first request can arrive
            self._endpoint = start_endpoint(self)
            self._hold()

    def _merge_views(self, merge: bool) -> None:
        """Whether the endpoint's views merge the server's other processes' numbers."""
        self._view_source = self._member if merge else None
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.view_source = self._view_source

    def _hold(self) -> None:
        """Record this process as the one serving its server's endpoint (merging already)."""
        member, endpoint = self._member, self._endpoint
        if member is None or endpoint is None or endpoint.port is None:
            self._merge_views(False)
            return
        member.claim(self.settings.json_host, endpoint.port, self.settings.auth_token)

    def _take_over_if_free(self) -> None:
        """On the sharing thread: take the port over when the process serving it has ended."""
        member, port = self._member, self._standby_port
        if member is None or port is None or self._endpoint is not None or self._closed:
            return
        if member.live_holder() is not None:
            return
        from otel_perf._http.routes import start_endpoint  # noqa: PLC0415 - only when served

        with member.locked():
            holder = member.live_holder()
            if holder is not None:
                self._standby_port = holder.port
                return
            if not member.may_take_over(self.settings.auth_token):
                return
            with self._lock:
                if self._closed or self._endpoint is not None:
                    return
                self._merge_views(True)  # before the first request can arrive
                endpoint = start_endpoint(self, port=port, quiet=True)
                if endpoint is None:
                    self._merge_views(False)
                    return
                self._endpoint = endpoint
                self._standby_port = None
                self._hold()
        logger.info(
            "otel-perf: the process serving this server's metrics ended; this one (%d) serves "
            "them now on %s",
            os.getpid(),
            endpoint.url,
        )

    def per_process(self) -> list[dict[str, Any]]:
        """Each process's own share of the endpoint's numbers (``/metrics?per_process=1``)."""
        from otel_perf._multiprocess.rows import process_row  # noqa: PLC0415 - on request

        rows = [process_row(os.getpid(), self._collect_own(), live=True, serving=True)]
        member = self._member
        if member is not None:
            rows += member.rows()
        return rows

    def flush(self) -> None:
        """Export and hand over everything recorded so far, stopping nothing (on a signal)."""
        member = self._member
        if member is not None:
            member.publish()
        pipeline = self._pipeline
        if pipeline is not None:
            for forwarder in pipeline.forwarders:
                forwarder.export_once()

    # --- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start over with a new MeterProvider: zero counts, new start time, same endpoint."""
        with self._lock:
            old = self.pipeline
            if old is None:
                return
            # On the application's provider the new reader would see what the old recorder
            # still has queued: the SDK gets it first, so it counts before the clean slate.
            old.recorder.flush()
            # The resource is the configuration's, read once: only configure() sees a change.
            from otel_perf._pipeline import Pipeline  # noqa: PLC0415 - loaded with ``old``

            self._pipeline = Pipeline(self.settings, self.app_provider, resource=old.resource)
            member = self._member
            if member is not None and member.holding:
                self._pipeline.view_source = member
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
        recorder = self.recorder
        if recorder is not None:
            # A tracked call that spans the fork ends in the child with this recorder in hand.
            recorder.abandon_after_fork()
        member, self._member = self._member, None
        if member is not None:
            member.abandon_after_fork()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the endpoint and shut the pipeline down (a final export, where one is set up)."""
        pending = self._pending
        if pending is not None and pending.queue.told and self._member is not None:
            # What was recorded goes to the server's endpoint with the last hand-over.
            self._start_sdk()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopped.set()
            endpoint, self._endpoint = self._endpoint, None
            member = self._member
        deadline = time.monotonic() + max(timeout_s, 0.0)
        if endpoint is not None:
            endpoint.stop(timeout_s)
        self.history.stop(timeout_s)
        if member is not None:
            # The last hand-over; the port is given up to another process of the server, which
            # takes it over within a sharing interval.
            member.stop(max(deadline - time.monotonic(), 0.0))
        with self._lock:  # the last hand-over may have started a deferred SDK
            pipeline, pending, self._pending = self._pipeline, self._pending, None
        if pending is not None:
            # The SDK never started: nothing read these numbers and nothing exports them, so
            # what waits is let go (not counted as dropped), and later calls are counted.
            pending.queue.discard()
            pending.close()
        if pipeline is not None:
            # The final export gets what is left of the budget: shutdown() stays within it.
            pipeline.shutdown(max(deadline - time.monotonic(), 0.0))
