"""The application's own OpenTelemetry: which MeterProvider otel-perf records through.

Every ``opentelemetry-instrumentation-*`` package records through the global
``MeterProvider`` or a ``meter_provider=`` argument, and ``opentelemetry-instrument``, logfire
and hand-written setups install one. When the application has one, otel-perf adds its pull
reader to it with the SDK's public ``add_metric_reader()`` rather than building a second
pipeline: the application's exporters then carry otel-perf's metrics, and otel-perf's JSON view,
dashboard and Prometheus path read the same measurements through its own reader.

What cannot work is said plainly, once:

- a provider that is not the SDK's (another implementation of the API) takes no reader, so
  otel-perf builds its own and its metrics do not reach that provider's exporters;
- a View of the application's that matches otel-perf's instruments wins over what otel-perf's
  reader asks for: another aggregation on the duration histograms leaves only the mean (no
  percentiles), a drop aggregation or an attribute filter loses the numbers themselves;
- push export (OTLP, console) is the application's provider's job then; otel-perf starts none
  of its own, so nothing is exported twice.

Costs: the application's provider aggregates every measurement once per reader, so each of its
instruments gets one more aggregation (otel-perf's reader), and otel-perf's own instruments are
aggregated by the application's readers as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import (
    DefaultAggregation,
    DropAggregation,
    ExponentialBucketHistogramAggregation,
)

from otel_perf import _semconv as n
from otel_perf._log import logger, warn_once
from otel_perf._settings import METRICS_USE_GLOBAL_METER_PROVIDER, Settings

#: Histograms whose percentiles need exponential buckets.
_DURATIONS: Final = frozenset({n.MCP_SERVER_OPERATION_DURATION, n.GEN_AI_CLIENT_OPERATION_DURATION})

#: Attribute keys otel-perf tells its series apart by, per instrument.
_NEEDED_KEYS: Final = {
    n.MCP_SERVER_OPERATION_DURATION: frozenset(
        {n.MCP_METHOD_NAME, n.GEN_AI_TOOL_NAME, n.ERROR_TYPE}
    ),
    n.GEN_AI_CLIENT_OPERATION_DURATION: frozenset(
        {n.GEN_AI_PROVIDER_NAME, n.GEN_AI_REQUEST_MODEL, n.ERROR_TYPE}
    ),
    n.GEN_AI_CLIENT_TOKEN_USAGE: frozenset(
        {n.GEN_AI_PROVIDER_NAME, n.GEN_AI_REQUEST_MODEL, n.GEN_AI_TOKEN_TYPE}
    ),
    n.CACHE_REQUESTS: frozenset({n.CACHE_NAME, n.CACHE_RESULT}),
    n.CACHE_EVICTIONS: frozenset({n.CACHE_NAME}),
    n.CACHE_SIZE_REJECTIONS: frozenset({n.CACHE_NAME}),
}

#: The API's stand-ins for "no provider set yet" (not an application's choice).
_UNSET_PROVIDER_TYPES: Final = frozenset({"_ProxyMeterProvider", "NoOpMeterProvider"})


def check_explicit(provider: object) -> MeterProvider:
    """``configure(meter_provider=...)``'s argument, or ``TypeError`` saying why not."""
    if isinstance(provider, MeterProvider):
        return provider
    raise TypeError(
        "configure(meter_provider=...) needs an opentelemetry.sdk.metrics.MeterProvider: otel-perf "
        "adds its reader to it with add_metric_reader(), which only the SDK's provider has; got "
        f"{type(provider).__module__}.{type(provider).__qualname__}"
    )


def global_provider(settings: Settings) -> MeterProvider | None:
    """The application's global SDK provider, when it set one and the settings allow it."""
    if not settings.use_global_meter_provider:
        return None
    provider = otel_metrics.get_meter_provider()
    if isinstance(provider, MeterProvider):
        return provider
    if type(provider).__name__ not in _UNSET_PROVIDER_TYPES:
        warn_once(
            "global-provider-not-sdk",
            "otel-perf: the global MeterProvider is a %s, not the OpenTelemetry SDK's; no reader "
            "can be added to it, so otel-perf records through its own provider and its metrics "
            "do not reach that provider's exporters",
            type(provider).__qualname__,
        )
    return None


def announce(provider: MeterProvider, explicit: bool, settings: Settings) -> None:
    """The one info line saying otel-perf records through the application's provider."""
    if explicit:
        logger.info("otel-perf: recording through the MeterProvider given to configure()")
    else:
        logger.info(
            "otel-perf: recording through the application's global MeterProvider (set %s=false "
            "for a provider of otel-perf's own)",
            METRICS_USE_GLOBAL_METER_PROVIDER,
        )
    export = settings.export
    if export.otlp or export.console:
        logger.info(
            "otel-perf: not starting its own OTLP/console export: the application's "
            "MeterProvider exports otel-perf's metrics with its own readers"
        )


def check_views(provider: MeterProvider, instruments: Iterable[Any]) -> None:
    """Warn once for each of otel-perf's instruments a View of the application's spoils.

    The SDK has no public way to list a provider's Views; this reads its private
    configuration, and says nothing if that is not where the installed SDK keeps it.
    """
    try:
        views = list(provider._sdk_config.views)  # no public accessor
    except Exception:
        logger.debug("otel-perf: cannot read the application's Views", exc_info=True)
        return
    for instrument in instruments:
        for view in views:
            try:
                if not view._match(instrument):
                    continue
                problem = _problem(view, instrument.name)
            except Exception:
                logger.debug("otel-perf: cannot match a View", exc_info=True)
                continue
            if problem is not None:
                warn_once(
                    f"app-view:{instrument.name}",
                    "otel-perf: a View of the application's MeterProvider "
                    "(instrument_name=%r) %s otel-perf's %s: %s",
                    getattr(view, "_instrument_name", "?"),
                    problem[0],
                    instrument.name,
                    problem[1],
                )
                break


def _problem(view: Any, name: str) -> tuple[str, str] | None:
    aggregation = view._aggregation
    if isinstance(aggregation, DropAggregation):
        return "drops", "its numbers are missing from otel-perf's view"
    if name in _DURATIONS and not isinstance(
        aggregation, (DefaultAggregation, ExponentialBucketHistogramAggregation)
    ):
        return (
            f"forces {type(aggregation).__name__} on",
            "its p50/p95/p99 cannot be computed (the JSON view shows the mean in their place)",
        )
    keys = view._attribute_keys
    needed = _NEEDED_KEYS.get(name, frozenset())
    if keys is not None and not needed <= set(keys):
        missing = ", ".join(sorted(needed - set(keys)))
        return "drops attributes (" + missing + ") of", "series otel-perf tells apart are merged"
    return None


__all__ = ["announce", "check_explicit", "check_views", "global_provider"]
