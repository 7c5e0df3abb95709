"""Configuring, resetting and shutting down otel-perf: the functions that change its state.

The state itself lives in :mod:`otel_perf._state`, which imports nothing of otel-perf; this
module installs there the stand-in recorder that configures on first use (:class:`Unconfigured`)
when it is imported, which every record path does before its first call. :func:`active_recorder`
is the one way any record path outside the public functions finds the recorder (trackers,
integrations, cache wrappers), configuring from the environment on first use.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from otel_perf import _exit, _signals, _state
from otel_perf._log import logger, warn_once
from otel_perf._recorder import Recorder
from otel_perf._settings import load_settings

if TYPE_CHECKING:
    from otel_perf._metrics import Metrics


def configure(*, meter_provider: object = None, **overrides: Any) -> Metrics:
    """Configure otel-perf from the environment (read now) and ``overrides``; idempotent.

    ``meter_provider``: an OpenTelemetry SDK ``MeterProvider`` of the application's to record
    through (otel-perf adds its reader with ``add_metric_reader()``). Without it, otel-perf
    uses the application's global SDK provider if one is set (unless
    ``METRICS_USE_GLOBAL_METER_PROVIDER=false``), else builds its own.

    Calling it again with the same resulting settings and provider returns the running
    instance; anything different replaces it (the old endpoint stops, counts start from zero).
    """
    return _configure(meter_provider, overrides, defer_sdk=False)


def configure_for_launcher() -> Metrics:
    """``otel-perf run``'s configuration, before the program runs: as :func:`configure` from
    the environment, except that the SDK starts after the first measurement when it can (see
    :mod:`otel_perf._metrics`): a stdio server then answers its first handshake without
    waiting for it."""
    return _configure(None, {}, defer_sdk=True)


#: Set by the application to name its SDK MeterProvider (the API loads it on first use).
_PROVIDER_ENV = "OTEL_PYTHON_METER_PROVIDER"


def _could_have_global_provider() -> bool:
    """Whether the application may have set a global MeterProvider: not while nothing has
    loaded OpenTelemetry's metrics API nor names a provider to load (then no check need load
    the API and the SDK just to find none)."""
    return "opentelemetry.metrics" in sys.modules or bool(os.environ.get(_PROVIDER_ENV))


def _configure(meter_provider: object, overrides: dict[str, Any], *, defer_sdk: bool) -> Metrics:
    # The SDK and everything behind the endpoint load on first use, not at ``import otel_perf``
    # (start-up counts for stdio servers, which MCP clients spawn on demand). Imported before
    # the lock is taken: an import must not wait for the lock, nor the lock for an import.
    from otel_perf._metrics import Metrics  # noqa: PLC0415

    look_for_global = _could_have_global_provider()
    explicit = None
    if meter_provider is not None or look_for_global:
        from otel_perf._app_provider import check_explicit  # noqa: PLC0415 - loads the SDK

        explicit = None if meter_provider is None else check_explicit(meter_provider)

    with _state.lock:
        # Read under the lock: starting an instance may write to the environment (a derived
        # OTEL_PERF_GROUP, for the children), and a concurrent first configure() that read it
        # before that write would take the write for a change and restart.
        settings, warnings = load_settings(os.environ, overrides)
        app_provider = explicit
        if app_provider is None and settings.enabled and look_for_global:
            from otel_perf._app_provider import global_provider  # noqa: PLC0415 - loaded above

            app_provider = global_provider(settings)
        running = _state.runtime
        if (
            isinstance(running, Metrics)
            and running.settings == settings
            and running.app_provider is app_provider
        ):
            return running
        for warning in warnings:
            logger.warning("otel-perf: %s", warning)
        if running is not None:
            logger.info("otel-perf: settings changed; restarting with the new ones")
            running.shutdown()
        if app_provider is not None:
            from otel_perf._app_provider import announce  # noqa: PLC0415 - loaded above

            announce(app_provider, explicit is not None, settings)
        export = settings.export
        # Only where nothing but the JSON view is asked for: an exporter, or the application's
        # own readers, would want the SDK's numbers from the start.
        started = Metrics(
            settings,
            app_provider=app_provider,
            defer_sdk=defer_sdk
            and app_provider is None
            and not (export.otlp or export.console or export.prometheus),
        )
        _state.runtime = started
        _state.current = started.recorder
        _state.configure_overrides = dict(overrides)
        _state.inherited_overrides = None
        _exit.register()
        _signals.install()
        return started


def get_runtime() -> Metrics:
    """The running instance, configuring from the environment first if needed.

    In a forked child, "configuring" means as its parent was configured: the keyword settings
    the parent's ``configure()`` got (a token above all) carry over.
    """
    from otel_perf._metrics import Metrics  # noqa: PLC0415 - loaded by the first configure()

    running = _state.runtime
    if isinstance(running, Metrics):  # the only kind configure() stores
        return running
    inherited = _state.inherited_overrides
    return configure(**inherited) if inherited is not None else configure()


def active_recorder() -> Recorder | None:
    """The recorder now, configuring from the environment first if nothing is configured yet.

    ``None`` when metrics are off. This is the implicit configuration of a first record call,
    so it never raises: if configuring fails (say, no thread can be started during interpreter
    shutdown), the call is dropped with one warning.
    """
    target = _state.current
    if target is None or isinstance(target, Recorder):
        return target
    if _state.exiting:
        warn_once(
            "record-after-final-export",
            "otel-perf: a call was recorded after the final export (at exit, or on SIGTERM/"
            "SIGHUP); it is not exported. Record before otel-perf's atexit hook runs (an atexit "
            "hook registered after the first record call runs before it)",
        )
        return None
    try:
        get_runtime()
    except Exception as exc:
        warn_once(
            "implicit-configure",
            "otel-perf: configuring on first use failed (%s); metrics are off",
            type(exc).__name__,
        )
        return None
    configured = _state.current
    return configured if isinstance(configured, Recorder) else None


def reset_metrics() -> None:
    """A clean slate: a new MeterProvider with zero counts; the endpoint keeps running."""
    with _state.lock:
        running = get_runtime()
        running.reset()
        _state.current = running.recorder


def shutdown(timeout_s: float = 5.0) -> None:
    """Final export and stop. Later record calls configure a fresh instance on first use."""
    with _state.lock:
        running, _state.runtime = _state.runtime, None
        _state.current = _state.UNCONFIGURED
    if running is not None:
        running.shutdown(timeout_s)


def reset(timeout_s: float = 5.0) -> None:
    """Shut down and forget everything, as in a new process; public as otel_perf.testing.reset.

    The instance stops, the keyword settings given are forgotten, the signal handlers otel-perf
    replaced are put back, and the warnings given and the observed ``lru_cache`` functions are
    forgotten (after the shutdown, which may warn).
    """
    _state.exiting = False
    with _state.lock:
        active, _state.runtime = _state.runtime, None
        _state.current = _state.UNCONFIGURED
        _state.configure_overrides, _state.inherited_overrides = {}, None
    if active is not None:
        active.shutdown(timeout_s)
    _signals.uninstall()
    _state.forget_remembered()


class Unconfigured:
    """Stands in for the recorder until the first configuration; configures on first use.

    It offers exactly what the public record functions call on ``_state.current``
    (:class:`otel_perf._state.RecordTarget`); each method configures (through
    :func:`active_recorder`) and forwards.
    """

    __slots__ = ()

    def record_tool_call(
        self, tool_name: str, success: bool, latency_ms: float, error_type: str | None = None
    ) -> None:
        target = active_recorder()
        if target is not None:
            target.record_tool_call(tool_name, success, latency_ms, error_type)

    def record_cache_hit(self, cache_name: str) -> None:
        target = active_recorder()
        if target is not None:
            target.record_cache_hit(cache_name)

    def record_cache_miss(self, cache_name: str) -> None:
        target = active_recorder()
        if target is not None:
            target.record_cache_miss(cache_name)

    def record_cache_eviction(self, cache_name: str) -> None:
        target = active_recorder()
        if target is not None:
            target.record_cache_eviction(cache_name)

    def record_cache_size_rejection(self, cache_name: str) -> None:
        target = active_recorder()
        if target is not None:
            target.record_cache_size_rejection(cache_name)

    def set_active_sessions(self, count: int) -> None:
        target = active_recorder()
        if target is not None:
            target.set_active_sessions(count)

    def set_concurrent_requests(self, count: int) -> None:
        target = active_recorder()
        if target is not None:
            target.set_concurrent_requests(count)

    def record_provider_call(
        self,
        provider: str,
        success: bool,
        latency_ms: float,
        error_type: str | None,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        operation: str | None,
    ) -> None:
        target = active_recorder()
        if target is not None:
            target.record_provider_call(
                provider,
                success,
                latency_ms,
                error_type,
                model,
                input_tokens,
                output_tokens,
                operation,
            )


# Installed when this module is imported: every record path imports it before its first call
# (the public functions through otel_perf._api, the rest through active_recorder), and nothing
# can have configured yet.
_state.UNCONFIGURED = Unconfigured()
if _state.runtime is None:
    _state.current = _state.UNCONFIGURED

__all__ = [
    "Unconfigured",
    "active_recorder",
    "configure",
    "configure_for_launcher",
    "get_runtime",
    "reset",
    "reset_metrics",
    "shutdown",
]
