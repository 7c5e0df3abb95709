"""The OTel pipeline: one SDK MeterProvider, one pull reader, the recorder, the window state.

Every consumer of the data (the JSON view, and the exporters built on this module) reads from
the single :class:`PullReader`, because each extra SDK reader would be a second full
aggregation on every ``record``. The reader is cumulative, so a collection never disturbs
another consumer's view of the totals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Counter,
    ExemplarFilter,
    Histogram,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData, ResourceMetrics
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from otel_perf import _semconv as n
from otel_perf import _state
from otel_perf._app_provider import check_views
from otel_perf._errors import NestedCollectionError
from otel_perf._guard import collecting
from otel_perf._guard import state as guard_state
from otel_perf._integrations import lru_cache_sources as _cache_sources
from otel_perf._json import to_json_bytes
from otel_perf._log import logger
from otel_perf._observables import Relay, relay_for
from otel_perf._recorder import Recorder, cardinality_limits
from otel_perf._settings import Settings
from otel_perf._singleflight import SingleFlight
from otel_perf._version import __version__
from otel_perf._window import WindowTracker

if TYPE_CHECKING:
    from otel_perf._document_cache import DocumentCache
    from otel_perf._export.forwarder import Forwarder

_EXEMPLAR_FILTERS: dict[str, type[ExemplarFilter]] = {
    "always_on": AlwaysOnExemplarFilter,
    "always_off": AlwaysOffExemplarFilter,
    "trace_based": TraceBasedExemplarFilter,
}


class PullReader(MetricReader):
    """A cumulative reader that hands each collection to whoever asked for it.

    Collections are serialised by a lock: the SDK delivers the data through a callback, and two
    overlapping collections must not swap each other's results.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._received: MetricsData | None = None
        #: Its queue is handed to the SDK before each collection, outside the SDK's lock (the
        #: recorder's observable callback does it again inside, for every other reader).
        self.recorder: Recorder | None = None

    def collect_data(self, timeout_millis: float = 10_000) -> MetricsData | None:
        """Run one collection (observable callbacks included) and return its data.

        Raises :class:`NestedCollectionError` at once, rather than wait for ever on itself,
        when this thread is already inside a collection or a record.
        """
        with collecting() as allowed:
            if not allowed:
                raise NestedCollectionError(
                    "a collection was requested from inside a collection or a record (an "
                    "observable callback or a signal handler calling get_all_metrics()?)"
                )
            with self._lock:
                self._received = None
                recorder = self.recorder
                if recorder is not None:
                    recorder.flush()
                self.collect(timeout_millis=timeout_millis)
                data, self._received = self._received, None
        return data

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._received = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to release: the reader holds no thread or connection."""


def _views(settings: Settings) -> list[View]:
    exponential = _exponential(settings)
    # Every instrument's cardinality limit is sized from otel-perf's own caps (see
    # cardinality_limits): names fold into "_OTHER" before the SDK's overflow series, which
    # carries no error.type, is ever used. The SDK also takes the instrument's lock for an
    # overflowing record, so overflow would make record calls wait for a running collection.
    limits = cardinality_limits(settings)
    exponential_instruments = {n.MCP_SERVER_OPERATION_DURATION, n.GEN_AI_CLIENT_OPERATION_DURATION}
    return [
        View(
            instrument_name=name,
            aggregation=exponential if name in exponential_instruments else None,
            aggregation_cardinality_limit=limit,
        )
        for name, limit in limits.items()
    ]


def _exponential(settings: Settings) -> ExponentialBucketHistogramAggregation:
    return ExponentialBucketHistogramAggregation(
        max_size=settings.histogram_buckets, max_scale=n.EXPONENTIAL_MAX_SCALE
    )


def _shared_reader(settings: Settings) -> PullReader:
    """otel-perf's reader for the application's provider: exponential buckets for histograms
    and room for every series, asked of the reader since the provider's Views are not ours.

    A reader's limits are per instrument class, so each class gets the largest of otel-perf's
    limits (see :func:`otel_perf._recorder.cardinality_limits`; the SDK allocates a series only
    when it is recorded, so room costs nothing by itself)."""
    room = max(cardinality_limits(settings).values())
    return PullReader(
        preferred_aggregation={Histogram: _exponential(settings)},
        cardinality_limits={Histogram: room, Counter: room},
    )


#: The instrumentation scopes otel-perf records under.
OWN_SCOPES: Final = frozenset({n.METER_NAME, _cache_sources.SCOPE_NAME})


def own_scopes(data: MetricsData | None) -> MetricsData | None:
    """``data`` with only otel-perf's instrumentation scopes in it."""
    if data is None:
        return None
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=resource_metrics.resource,
                scope_metrics=[
                    scope_metrics
                    for scope_metrics in resource_metrics.scope_metrics
                    if scope_metrics.scope.name in OWN_SCOPES
                ],
                schema_url=resource_metrics.schema_url,
            )
            for resource_metrics in data.resource_metrics
        ]
    )


def exemplar_filter(name: str) -> ExemplarFilter:
    """The SDK's exemplar filter of that name (one of ``Settings.exemplar_filter``'s values)."""
    return _EXEMPLAR_FILTERS.get(name, TraceBasedExemplarFilter)()


def build_resource(settings: Settings) -> Resource:
    """The resource of ``settings`` (``OTEL_RESOURCE_ATTRIBUTES``, then ``OTEL_SERVICE_NAME``
    over its ``service.name``, as the OTel spec orders them), plus otel-perf's distro.

    ``Resource.create`` adds the SDK's defaults and detectors; its environment detector reads
    the same two variables again, and the values given here win over whatever it finds.
    """
    attributes: dict[str, str] = dict(settings.resource_attributes)
    if settings.service_name is not None:
        attributes[SERVICE_NAME] = settings.service_name
    attributes.update(
        {"telemetry.distro.name": "otel-perf", "telemetry.distro.version": __version__}
    )
    try:
        return Resource.create(attributes)
    except Exception as exc:  # a failing resource detector must not stop the host
        logger.warning("otel-perf: could not build the resource (%s)", type(exc).__name__)
        return Resource({SERVICE_NAME: settings.service_name or "unknown_service"})


class ViewSource(Protocol):
    """Merges this process's numbers with its server's other processes' (while it serves)."""

    def merged(self, collect: Callable[[], MetricsData | None]) -> MetricsData | None: ...

    def live_processes(self) -> int: ...


class Snapshot:
    """One collected document, with its JSON encoding made at most once and shared."""

    __slots__ = ("_body", "_lock", "document")

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._body: bytes | None = None
        self._lock = threading.Lock()

    @property
    def body(self) -> bytes:
        if self._body is None:
            with self._lock:
                if self._body is None:
                    self._body = to_json_bytes(self.document)
        return self._body


class Pipeline:
    """One MeterProvider with its reader, recorder and window state.

    ``snapshot()`` is single-flight: callers that arrive while a collection runs share its
    document instead of collecting again.
    """

    def __init__(
        self,
        settings: Settings,
        meter_provider: MeterProvider | None = None,
        *,
        resource: Resource | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        """``meter_provider``: the application's SDK provider to record through (see
        :mod:`otel_perf._app_provider`); ``None`` builds otel-perf's own, with ``resource``
        (by default the one ``settings`` describe). ``recorder``: one that has been queueing
        before the SDK was loaded, to attach (by default a new one).
        """
        self.settings = settings
        #: Whether otel-perf records through the application's provider rather than its own.
        self.shared = meter_provider is not None
        #: The resource of otel-perf's own provider (``None`` on the application's).
        self.resource: Resource | None = None
        if meter_provider is None:
            self.reader = PullReader()
            self.resource = resource if resource is not None else build_resource(settings)
            meter_provider = MeterProvider(
                metric_readers=[self.reader],
                resource=self.resource,
                views=_views(settings),
                shutdown_on_exit=False,  # otel-perf's own atexit hook shuts down in order
                exemplar_filter=exemplar_filter(settings.exemplar_filter),
            )
            relay = Relay()
        else:
            # The application's Views, resource and exemplar filter stay its own; what otel-perf
            # needs of its histograms (exponential buckets, room for every series) is asked of
            # its reader instead, which a View of the application's can still override.
            self.reader = _shared_reader(settings)
            meter_provider.add_metric_reader(self.reader)
            relay = relay_for(meter_provider)
        self.meter_provider = meter_provider
        self._relay = relay
        self.recorder = recorder if recorder is not None else Recorder(settings)
        self.recorder.attach(self.meter_provider.get_meter(n.METER_NAME, __version__), relay)
        self.reader.recorder = self.recorder
        if self.shared:
            check_views(meter_provider, self.recorder.instruments())
        # functools.lru_cache statistics, read at collect time (see
        # otel_perf._integrations.lru_cache_sources)
        _cache_sources.attach(self.meter_provider, relay, self)
        self.windows = WindowTracker(settings.window_size)
        # Per-series work reused between snapshots; made by the first one, with the document
        # code, so that start-up does not load what only snapshots need.
        self._document_cache: DocumentCache | None = None
        self._snapshot_flight: SingleFlight[Snapshot] = SingleFlight(self._snapshot_now)
        self._closed = False
        #: Set while this process serves its server's other processes' numbers too.
        self.view_source: ViewSource | None = None
        # Push export (OTLP, console) reads this same reader on its own threads: no extra
        # aggregation on the record path, and no JSON-view window slice is closed by it. On the
        # application's provider, exporting is the application's: its readers already carry
        # otel-perf's metrics, and a second exporter would send them twice.
        self.forwarders: list[Forwarder] = []
        export = settings.export
        if not self.shared and (export.otlp or export.console or export.prometheus):
            # Imported only when push export is asked for: start-up counts for stdio servers.
            from otel_perf._export.forwarder import start_forwarders  # noqa: PLC0415

            self.forwarders = start_forwarders(
                export, self.collect, endpoint_served=settings.json_enabled
            )

    @property
    def start_time(self) -> float:
        return self.recorder.start_time

    def collect(self) -> MetricsData | None:
        """One raw collection from the shared reader (does not close a window slice).

        On the application's provider only otel-perf's own scopes are kept: the application's
        instruments are its exporters' business, and one of them using a name of otel-perf's
        (``mcp.server.operation.duration``, say) must not be counted into otel-perf's numbers.
        """
        data = self.reader.collect_data()
        return own_scopes(data) if self.shared else data

    def view_collect(self) -> MetricsData | None:
        """What the endpoint shows: this process's collection, merged with its server's other
        processes' numbers while it serves for them (see :mod:`otel_perf._multiprocess`)."""
        source = self.view_source
        return source.merged(self.collect) if source is not None else self.collect()

    def live_processes(self) -> int:
        """How many live processes the endpoint's numbers include."""
        source = self.view_source
        return source.live_processes() if source is not None else 1

    def _snapshot_now(self) -> Snapshot:
        from otel_perf._document import build_document  # noqa: PLC0415 - see __init__
        from otel_perf._document_cache import DocumentCache  # noqa: PLC0415

        if self._document_cache is None:
            self._document_cache = DocumentCache()
        data = self.view_collect()
        document = build_document(
            data,
            self.windows,
            timestamp=time.time(),
            start_time=self.start_time,
            cache=self._document_cache,
        )
        document["system_metrics"]["processes"] = self.live_processes()
        return Snapshot(document)

    def snapshot(self) -> tuple[Snapshot, bool]:
        """The current document, and whether this caller alone holds it (may mutate it)."""
        if guard_state.busy:
            # Joining the running collection from inside it would wait on itself.
            raise NestedCollectionError(
                "get_all_metrics() was called from inside a collection or a record (an "
                "observable callback or a signal handler?)"
            )
        return self._snapshot_flight.run()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + max(timeout_s, 0.0)
        # What record calls queued reaches the SDK before the final export (otel_perf._handoff).
        self.recorder.close()
        if self.forwarders:
            from otel_perf._export.forwarder import shutdown_forwarders  # noqa: PLC0415

            shutdown_forwarders(self.forwarders, timeout_s)  # the final export happens here
        if self.shared:
            self._detach()
            return
        try:
            remaining_s = max(deadline - time.monotonic(), 0.0)
            self.meter_provider.shutdown(timeout_millis=remaining_s * 1000.0)
        except Exception as exc:
            logger.warning("otel-perf: error while shutting down the meter provider: %s", exc)

    def _detach(self) -> None:
        """Leave the application's provider running: only otel-perf's reader goes.

        At interpreter exit the observable instruments keep their callbacks, so the
        application's own final export (its provider shuts down after otel-perf's atexit hook)
        still reads sessions, requests in flight and uptime.
        """
        try:
            self.meter_provider.remove_metric_reader(self.reader)
        except Exception as exc:
            logger.warning("otel-perf: could not detach from the application's provider: %s", exc)
        if not _state.exiting:
            self._relay.release(self.recorder)
            self._relay.release(self)
