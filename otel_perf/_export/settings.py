"""Export settings: the standard ``OTEL_*`` variables that choose and configure push export.

The SDK reads some of these by itself, but only on code paths otel-perf does not use: the
exporter selection (``OTEL_METRICS_EXPORTER``) and the protocol
(``OTEL_EXPORTER_OTLP_(METRICS_)PROTOCOL``) are read only by auto-instrumentation, the export
interval and timeout only by ``PeriodicExportingMetricReader``. So :func:`load_export_settings`
reads all of them here, in one pure function, with the specification's defaults. As everywhere
in otel-perf, a bad value gives one warning naming the variable and the default used.

Durations are milliseconds, as the specification says. (The Python OTLP exporters read
``OTEL_EXPORTER_OTLP_TIMEOUT`` as seconds; otel-perf passes them the timeout explicitly, so the
specification's unit holds.) An empty variable counts as unset, as the specification says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

OTEL_METRICS_EXPORTER: Final = "OTEL_METRICS_EXPORTER"
"""Comma-separated list of ``otlp``, ``console``, ``prometheus``, ``none``. Default: unset, which
means ``otlp`` when an OTLP endpoint variable is set and no push export otherwise. ``none``
switches push export off (it wins over the other values). ``prometheus`` needs no work: the
scrape path ``/metrics/prometheus`` is always served by the endpoint."""

OTEL_EXPORTER_OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
"""``grpc`` or ``http/protobuf`` (the default, as the specification says). ``http/json`` is not
implemented by the Python exporters and falls back to ``http/protobuf``."""

OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
"""Like ``OTEL_EXPORTER_OTLP_PROTOCOL``, for metrics only; wins over it."""

OTEL_EXPORTER_OTLP_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""Base URL (``http`` or ``https``). Default ``http://localhost:4317`` for gRPC and
``http://localhost:4318`` for HTTP, where ``/v1/metrics`` is appended."""

OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
"""Full URL for metrics; wins over ``OTEL_EXPORTER_OTLP_ENDPOINT`` and is used as given."""

OTEL_EXPORTER_OTLP_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TIMEOUT"
"""Integer milliseconds > 0. Default ``10000``. How long one export may take, retries
included."""

OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"
"""Like ``OTEL_EXPORTER_OTLP_TIMEOUT``, for metrics only; wins over it."""

OTEL_METRIC_EXPORT_INTERVAL: Final = "OTEL_METRIC_EXPORT_INTERVAL"
"""Integer milliseconds > 0. Default ``60000``. Time between two exports."""

OTEL_METRIC_EXPORT_TIMEOUT: Final = "OTEL_METRIC_EXPORT_TIMEOUT"
"""Integer milliseconds > 0. Default ``30000``. Upper bound of one export; the effective
timeout is the smaller of this and the OTLP timeout."""

OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: Final = (
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
)
"""``cumulative`` (default), ``delta`` or ``lowmemory``. With ``delta`` (and ``lowmemory``, which
is the same for otel-perf's instruments) counters and histograms are sent as the change since
the last successful export; up-down counters and gauges stay cumulative."""

PROTOCOL_GRPC: Final = "grpc"
PROTOCOL_HTTP: Final = "http/protobuf"
TEMPORALITIES: Final = ("cumulative", "delta", "lowmemory")

_EXPORTERS: Final = ("otlp", "console", "prometheus", "none")
_DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
_DEFAULT_HTTP_BASE: Final = "http://localhost:4318"
_METRICS_PATH: Final = "v1/metrics"
_MAX_MS: Final = 2**31 - 1


@dataclass(frozen=True)
class ExportSettings:
    """Which push exporters run, and how. Build it with :func:`load_export_settings`.

    >>> settings, _ = load_export_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    >>> settings.otlp, settings.endpoint
    (True, 'http://c:4318/v1/metrics')
    """

    otlp: bool = False
    console: bool = False
    prometheus: bool = False
    protocol: str = PROTOCOL_HTTP
    endpoint: str = f"{_DEFAULT_HTTP_BASE}/{_METRICS_PATH}"
    interval_ms: int = 60_000
    timeout_ms: int = 10_000
    temporality: str = "cumulative"

    @property
    def delta(self) -> bool:
        """Whether counters and histograms are exported as deltas."""
        return self.temporality != "cumulative"


def _get(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of ``names`` that is set to a non-empty value, with its value."""
    for name in names:
        raw = environ.get(name)
        if raw is not None and raw.strip():
            return name, raw.strip()
    return None


def shorten(raw: str, limit: int = 80) -> str:
    """``raw`` cut to ``limit`` characters, for quoting a bad value in a warning."""
    return raw if len(raw) <= limit else raw[:limit] + "..."


def _valid_url(raw: str) -> bool:
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _bad(name: str, raw: str, why: str, default: object) -> str:
    return f"{name}={shorten(raw)!r} is invalid ({why}); using the default {default!r}"


def _protocol(environ: Mapping[str, str], warnings: list[str]) -> str:
    found = _get(environ, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL)
    if found is None:
        return PROTOCOL_HTTP
    name, raw = found
    value = raw.lower()
    if value in (PROTOCOL_GRPC, PROTOCOL_HTTP):
        return value
    why = (
        "the Python OTLP exporters do not implement it"
        if value == "http/json"
        else ("expected grpc or http/protobuf")
    )
    warnings.append(_bad(name, raw, why, PROTOCOL_HTTP))
    return PROTOCOL_HTTP


def _endpoint(environ: Mapping[str, str], protocol: str, warnings: list[str]) -> tuple[str, bool]:
    """The metrics endpoint URL for ``protocol``, and whether an endpoint variable is set."""
    http_default = f"{_DEFAULT_HTTP_BASE}/{_METRICS_PATH}"
    default = _DEFAULT_GRPC_ENDPOINT if protocol == PROTOCOL_GRPC else http_default
    found = _get(environ, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT)
    if found is None:
        return default, False
    name, raw = found
    if not _valid_url(raw):
        warnings.append(_bad(name, raw, "expected an http:// or https:// URL with a host", default))
        return default, True
    if name == OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or protocol == PROTOCOL_GRPC:
        return raw, True
    # The generic variable is a base URL: the specification appends the signal's path.
    return f"{raw.rstrip('/')}/{_METRICS_PATH}", True


def _exporters(
    environ: Mapping[str, str], endpoint_set: bool, warnings: list[str]
) -> tuple[bool, bool, bool]:
    """(otlp, console, prometheus) as ``OTEL_METRICS_EXPORTER`` says."""
    found = _get(environ, OTEL_METRICS_EXPORTER)
    if found is None:
        return endpoint_set, False, False
    name, raw = found
    chosen = [part.strip().lower() for part in raw.split(",") if part.strip()]
    known = [part for part in chosen if part in _EXPORTERS]
    unknown = [part for part in chosen if part not in _EXPORTERS]
    if not known:  # one warning per variable: this one covers the unknown names too
        default = "otlp" if endpoint_set else "none"
        warnings.append(_bad(name, raw, "no supported exporter named", default))
        return endpoint_set, False, False
    if unknown:
        warnings.append(
            f"{name}: ignoring {', '.join(map(repr, unknown))} (supported: {', '.join(_EXPORTERS)})"
        )
    if "none" in known:
        if len(set(known)) > 1:
            warnings.append(f"{name}={shorten(raw)!r}: 'none' wins; no push export")
        return False, False, False
    return "otlp" in known, "console" in known, "prometheus" in known


def _milliseconds(
    environ: Mapping[str, str], names: tuple[str, ...], default: int, warnings: list[str]
) -> int:
    found = _get(environ, *names)
    if found is None:
        return default
    name, raw = found
    try:
        value = int(raw, 10)
    except ValueError:
        value = 0
    if 0 < value <= _MAX_MS:
        return value
    warnings.append(_bad(name, raw, f"expected integer milliseconds in 1..{_MAX_MS}", default))
    return default


def _temporality(environ: Mapping[str, str], warnings: list[str]) -> str:
    found = _get(environ, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE)
    if found is None:
        return "cumulative"
    name, raw = found
    if raw.lower() in TEMPORALITIES:
        return raw.lower()
    warnings.append(_bad(name, raw, "expected cumulative, delta or lowmemory", "cumulative"))
    return "cumulative"


def load_export_settings(environ: Mapping[str, str]) -> tuple[ExportSettings, list[str]]:
    """Build :class:`ExportSettings` from ``environ``; return them and the warnings to log.

    Pure: it reads only its argument.

    >>> load_export_settings({"OTEL_METRIC_EXPORT_INTERVAL": "soon"})[1][0][:43]
    "OTEL_METRIC_EXPORT_INTERVAL='soon' is inval"
    """
    warnings: list[str] = []
    protocol = _protocol(environ, warnings)
    endpoint, endpoint_set = _endpoint(environ, protocol, warnings)
    otlp, console, prometheus = _exporters(environ, endpoint_set, warnings)
    defaults = ExportSettings()
    interval_ms = _milliseconds(
        environ, (OTEL_METRIC_EXPORT_INTERVAL,), defaults.interval_ms, warnings
    )
    otlp_timeout_ms = _milliseconds(
        environ,
        (OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT),
        defaults.timeout_ms,
        warnings,
    )
    export_timeout_ms = _milliseconds(environ, (OTEL_METRIC_EXPORT_TIMEOUT,), 30_000, warnings)
    settings = ExportSettings(
        otlp=otlp,
        console=console,
        prometheus=prometheus,
        protocol=protocol,
        endpoint=endpoint,
        interval_ms=interval_ms,
        timeout_ms=min(otlp_timeout_ms, export_timeout_ms),
        temporality=_temporality(environ, warnings),
    )
    return settings, warnings


__all__ = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_METRICS_EXPORTER",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "PROTOCOL_GRPC",
    "PROTOCOL_HTTP",
    "ExportSettings",
    "load_export_settings",
]
