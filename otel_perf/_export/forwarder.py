"""Push export: a background forwarder that sends the shared reader's collections to an exporter.

There is no second SDK reader. Every interval the forwarder thread asks the pipeline for one
collection from the single cumulative reader (the same data the JSON view renders; it does not
close a JSON-view window slice) and hands it to an SDK exporter: OTLP over gRPC or
http/protobuf, or the console. Nothing here runs on the record path, so a slow, absent or
hanging receiver costs the application nothing but this thread's time.

Failures are logged once per outage (the SDK exporter logs its own details) and retried at the
next interval; cumulative data means the receiver catches up in full with the first export that
gets through, and delta data (see :mod:`otel_perf._export.delta`) is measured from the last
accepted export, so it catches up too. :meth:`Forwarder.shutdown` makes one final export and
returns within its timeout whatever the receiver does.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TextIO, cast

from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from otel_perf._export.delta import Baseline, baseline_of, to_delta
from otel_perf._export.settings import PROTOCOL_GRPC, ExportSettings
from otel_perf._log import logger
from otel_perf._stdio import stdout_is_protocol_pipe

Collect = Callable[[], "MetricsData | None"]

#: How long ``shutdown`` keeps back for stopping the exporter after the final export.
_STOP_RESERVE_S: Final = 0.2


@dataclass(frozen=True)
class ExportStatus:
    """What a forwarder has done so far (a snapshot; see :meth:`Forwarder.status`)."""

    name: str
    target: str
    exports: int
    failures: int
    consecutive_failures: int
    in_flight: bool
    last_success_unix: float | None
    last_error: str | None
    last_duration_s: float | None


class Forwarder:
    """Export ``collect()`` through ``exporter`` every ``interval_s`` on a daemon thread.

    ``delta=True`` sends counters and histograms as changes since the last accepted export.
    """

    def __init__(
        self,
        name: str,
        target: str,
        exporter: MetricExporter,
        collect: Collect,
        *,
        interval_s: float,
        timeout_s: float,
        delta: bool = False,
    ) -> None:
        self.name = name
        self.target = target
        self._exporter = exporter
        self._collect = collect
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._delta = delta
        self._baseline: Baseline = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._exports = 0
        self._failures = 0
        self._consecutive = 0
        self._in_flight = False
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._last_duration: float | None = None
        # Daemon: a host that exits without shutdown() must not hang on a stuck export. The
        # atexit hook calls shutdown(), which makes the final export before that matters.
        self._thread = threading.Thread(
            target=self._run, name=f"otel-perf-{name}-export", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    # --- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.export_once()
        self.export_once()  # the final export, asked for by shutdown()

    def export_once(self) -> bool:
        """Collect and export one batch now; return whether the receiver accepted it.

        Runs on the forwarder's thread (or a test's); never raises.
        """
        try:
            data = self._collect()
        except Exception as exc:
            self._failed(f"collecting failed: {type(exc).__name__}")
            return False
        if data is None:
            return False
        try:
            batch = to_delta(data, self._baseline) if self._delta else data
        except Exception as exc:
            self._failed(f"computing deltas failed: {type(exc).__name__}")
            return False
        with self._lock:
            self._in_flight = True
        started = time.monotonic()
        try:
            result = self._exporter.export(batch, timeout_millis=self._timeout_s * 1000.0)
        except Exception as exc:  # an exporter must not raise, but one that does is a failure
            result = MetricExportResult.FAILURE
            error = f"{type(exc).__name__}"
        else:
            error = "the exporter reported a failure"
        finally:
            with self._lock:
                self._in_flight = False
                self._last_duration = time.monotonic() - started
        if result is not MetricExportResult.SUCCESS:
            self._failed(error)
            return False
        if self._delta:
            self._baseline = baseline_of(data)
        with self._lock:
            recovered = self._consecutive > 0
            self._exports += 1
            self._consecutive = 0
            self._last_success = time.time()
            self._last_error = None
        if recovered:
            logger.info("otel-perf: %s export to %s works again", self.name, self.target)
        return True

    def _failed(self, error: str) -> None:
        with self._lock:
            first = self._consecutive == 0
            self._exports += 1
            self._failures += 1
            self._consecutive += 1
            self._last_error = error
        if first:  # once per outage: a dead receiver must not flood the host's logs
            logger.warning(
                "otel-perf: %s export to %s failed (%s); the application is unaffected and "
                "export is retried every %.3g s",
                self.name,
                self.target,
                error,
                self._interval_s,
            )

    # --- control ---------------------------------------------------------------------------------

    def status(self) -> ExportStatus:
        with self._lock:
            return ExportStatus(
                name=self.name,
                target=self.target,
                exports=self._exports,
                failures=self._failures,
                consecutive_failures=self._consecutive,
                in_flight=self._in_flight,
                last_success_unix=self._last_success,
                last_error=self._last_error,
                last_duration_s=self._last_duration,
            )

    def request_stop(self) -> None:
        """Ask the thread to make its final export and end (``shutdown`` waits for it)."""
        self._stop.set()

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Make the final export and stop, within ``timeout_s``; return whether it completed.

        When the receiver hangs, the exporter is shut down, which aborts its retries (and, for
        gRPC, the call in flight); the daemon thread is then left to finish on its own.
        """
        deadline = time.monotonic() + max(timeout_s, 0.0)
        self._stop.set()
        finished = True
        if self._thread.is_alive():
            self._thread.join(max(deadline - time.monotonic() - _STOP_RESERVE_S, 0.0))
            finished = not self._thread.is_alive()
        if not finished:
            logger.warning(
                "otel-perf: the final %s export to %s did not finish within %.3g s; "
                "giving up on it",
                self.name,
                self.target,
                timeout_s,
            )
        try:
            remaining_ms = max(deadline - time.monotonic(), 0.0) * 1000.0
            self._exporter.shutdown(timeout_millis=remaining_ms)
        except Exception as exc:
            logger.debug("otel-perf: error while stopping the %s exporter: %s", self.name, exc)
        return finished


# --- building forwarders from settings -----------------------------------------------------------


def _otlp_exporter(settings: ExportSettings) -> MetricExporter:
    """The SDK's OTLP exporter for the configured protocol (imported only when used)."""
    timeout_s = settings.timeout_ms / 1000.0
    if settings.protocol == PROTOCOL_GRPC:
        # Imported here: grpc is slow to import and only needed when gRPC is chosen.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=settings.endpoint, timeout=timeout_s)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter(endpoint=settings.endpoint, timeout=timeout_s)


def console_stream() -> TextIO:
    """Where the console exporter writes now: stderr when stdout is a stdio server's protocol
    pipe (see :mod:`otel_perf._stdio`), else stdout (``sys.stdout``/``sys.stderr`` as they are
    now, not as they were when the SDK module was imported)."""
    return sys.stderr if stdout_is_protocol_pipe() else sys.stdout


class _ConsoleOut(io.TextIOBase):
    """The console exporter's ``out``: picks the stream at each write, so the rule holds even
    when what decides it (``otel-perf run``'s hooks) is set after the exporter was made."""

    def write(self, text: str) -> int:
        return console_stream().write(text)

    def flush(self) -> None:
        console_stream().flush()


def _console_exporter() -> MetricExporter:
    return ConsoleMetricExporter(out=cast(TextIO, _ConsoleOut()))


def start_forwarders(
    settings: ExportSettings, collect: Collect, *, endpoint_served: bool = True
) -> list[Forwarder]:
    """Start one forwarder per configured push exporter; a failing one is logged and skipped.

    ``endpoint_served`` says whether the HTTP endpoint (and so ``/metrics/prometheus``) runs;
    asking for the ``prometheus`` exporter without it gets a warning.
    """
    if settings.prometheus and not endpoint_served:
        logger.warning(
            "otel-perf: OTEL_METRICS_EXPORTER asks for prometheus, which is served on "
            "/metrics/prometheus of the metrics endpoint, but the endpoint is switched off"
        )
    planned: list[tuple[str, str, Callable[[], MetricExporter], bool]] = []
    if settings.otlp:
        target = f"{settings.endpoint} ({settings.protocol})"
        planned.append(("otlp", target, lambda: _otlp_exporter(settings), settings.delta))
    if settings.console:
        target = "stdout, or stderr on a stdio server"
        planned.append(("console", target, _console_exporter, False))
    forwarders = []
    for name, target, build, delta in planned:
        try:
            exporter = build()
        except Exception as exc:  # e.g. a bad OTEL_EXPORTER_OTLP_COMPRESSION read by the SDK
            logger.warning(
                "otel-perf: cannot create the %s exporter (%s: %s); recording continues without it",
                name,
                type(exc).__name__,
                exc,
            )
            continue
        forwarder = Forwarder(
            name,
            target,
            exporter,
            collect,
            interval_s=settings.interval_ms / 1000.0,
            timeout_s=settings.timeout_ms / 1000.0,
            delta=delta,
        )
        forwarder.start()
        logger.info("otel-perf: exporting metrics to %s every %s ms", target, settings.interval_ms)
        forwarders.append(forwarder)
    return forwarders


def shutdown_forwarders(forwarders: list[Forwarder], timeout_s: float) -> None:
    """Final export and stop for each forwarder, all within ``timeout_s`` together."""
    deadline = time.monotonic() + max(timeout_s, 0.0)
    # Ask every thread to stop first, so their final exports run side by side.
    for forwarder in forwarders:
        forwarder.request_stop()
    for forwarder in forwarders:
        forwarder.shutdown(max(deadline - time.monotonic(), 0.0))


__all__ = ["ExportStatus", "Forwarder", "shutdown_forwarders", "start_forwarders"]
