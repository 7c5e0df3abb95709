"""Configuring, resetting and shutting down otel-perf: the functions that change its state.

The state itself lives in :mod:`otel_perf._state`. :func:`active_recorder` is the one way any
record path outside the public functions finds the recorder (trackers, integrations, cache
wrappers), configuring from the environment on first use.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING, Any

from otel_perf import _signals, _state
from otel_perf._log import logger, warn_once
from otel_perf._settings import load_settings

if TYPE_CHECKING:
    from otel_perf._metrics import Metrics
    from otel_perf._recorder import Recorder


def configure(*, meter_provider: object = None, **overrides: Any) -> Metrics:
    """Configure otel-perf from the environment (read now) and ``overrides``; idempotent.

    ``meter_provider``: an OpenTelemetry SDK ``MeterProvider`` of the application's to record
    through (otel-perf adds its reader with ``add_metric_reader()``). Without it, otel-perf
    uses the application's global SDK provider if one is set (unless
    ``METRICS_USE_GLOBAL_METER_PROVIDER=false``), else builds its own.

    Calling it again with the same resulting settings and provider returns the running
    instance; anything different replaces it (the old endpoint stops, counts start from zero).
    """
    settings, warnings = load_settings(os.environ, overrides)
    # The SDK and everything behind the endpoint load on first use, not at ``import otel_perf``
    # (start-up counts for stdio servers, which MCP clients spawn on demand). Imported before
    # the lock is taken: an import must not wait for the lock, nor the lock for an import.
    from otel_perf._app_provider import announce, check_explicit, global_provider  # noqa: PLC0415
    from otel_perf._metrics import Metrics  # noqa: PLC0415

    explicit = None if meter_provider is None else check_explicit(meter_provider)

    with _state.lock:
        app_provider = explicit
        if app_provider is None and settings.enabled:
            app_provider = global_provider(settings)
        running = _state.runtime
        if (
            running is not None
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
            announce(app_provider, explicit is not None, settings)
        started = Metrics(settings, app_provider=app_provider)
        _state.runtime = started
        _state.current = started.recorder
        _state.configure_overrides = dict(overrides)
        _state.inherited_overrides = None
        if not _state.atexit_registered:
            atexit.register(shutdown_at_exit)
            _state.atexit_registered = True
        _final_export_in_multiprocessing_child()
        _signals.install()
        return started


def _final_export_in_multiprocessing_child() -> None:
    """A ``multiprocessing`` child started by fork ends with ``os._exit``: no ``atexit``.

    It does run multiprocessing's own exit function, and with it the finalizers registered
    with an exit priority, so the final export (and the last hand-over to the server's
    endpoint) is registered there too, once per process.
    """
    module = sys.modules.get("multiprocessing")
    if module is None or module.parent_process() is None:
        return
    pid = os.getpid()
    if _state.multiprocessing_exit_pid == pid:
        return
    from multiprocessing import util  # noqa: PLC0415 - only in multiprocessing's children

    util.Finalize(None, shutdown_at_exit, exitpriority=0)
    _state.multiprocessing_exit_pid = pid


def get_runtime() -> Metrics:
    """The running instance, configuring from the environment first if needed.

    In a forked child, "configuring" means as its parent was configured: the keyword settings
    the parent's ``configure()`` got (a token above all) carry over.
    """
    running = _state.runtime
    if running is not None:
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
    if not isinstance(target, _state.Unconfigured):
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
    return None if isinstance(configured, _state.Unconfigured) else configured


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


def shutdown_at_exit() -> None:
    """The final export, at exit or on a signal; later record calls warn once and are dropped."""
    _state.exiting = True
    try:
        with _state.lock:
            running = _state.runtime
            _state.current = _state.UNCONFIGURED  # late calls reach active_recorder(): warned
        if running is not None:
            running.shutdown(timeout_s=5.0)
    except Exception:  # pragma: no cover - interpreter teardown; nothing left to protect
        logger.debug("otel-perf: error at exit", exc_info=True)


__all__ = ["active_recorder", "configure", "get_runtime", "reset_metrics", "shutdown"]
