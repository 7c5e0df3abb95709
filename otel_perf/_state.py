"""All of otel-perf's global state, and the functions that change it.

``current`` is what every record call dispatches to, chosen once per configuration rather than
checked per call:

- :data:`BOOTSTRAP` before the first ``configure()``: its methods configure from the
  environment, then forward, so any call works before an explicit ``configure()``;
- a :class:`~otel_perf._recorder.Recorder` when enabled;
- ``None`` when disabled: the public functions test for it and return at once, doing no OTel
  work at all.

Tests reset everything with :func:`reset_for_tests` (an autouse fixture does it).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from otel_perf._log import logger, reset_warnings, warn_once
from otel_perf._recorder import Recorder
from otel_perf._runtime import Metrics
from otel_perf._settings import Settings, load_settings


def _do_nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


class _Bootstrap:
    """Stands in for the recorder until the first configuration; configures on first use."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        target = resolve_recorder()
        if target is None:
            return _do_nothing
        method: Callable[..., Any] = getattr(target, name)
        return method


BOOTSTRAP: Any = _Bootstrap()

current: Any = BOOTSTRAP
"""The record-call target: BOOTSTRAP, a Recorder, or None (disabled)."""

runtime: Metrics | None = None
_lock = threading.RLock()
_atexit_registered = False
_exiting = False  # set by the atexit hook: late record calls must not start a new server


def configure(**overrides: Any) -> Metrics:
    """Configure otel-perf from the environment (read now) and ``overrides``; idempotent.

    Calling it again with the same resulting settings returns the running instance; different
    settings replace it (the old endpoint stops, counts start from zero).
    """
    global runtime, current, _atexit_registered
    settings, warnings = load_settings(os.environ, overrides)
    with _lock:
        if runtime is not None and runtime.settings == settings:
            return runtime
        for warning in warnings:
            logger.warning("otel-perf: %s", warning)
        old = runtime
        if old is not None:
            logger.info("otel-perf: settings changed; restarting with the new ones")
            old.shutdown()
        runtime = Metrics(settings)
        current = runtime.recorder
        if not _atexit_registered:
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True
        return runtime


def get_runtime() -> Metrics:
    """The running instance, configuring from the environment first if needed."""
    active = runtime
    return active if active is not None else configure()


def resolve_recorder() -> Recorder | None:
    """The recorder to use now (configuring first if needed); ``None`` when disabled.

    This is the implicit configuration of a first record call, so it must never raise: if
    configuring fails (say, no thread can be started during interpreter shutdown), the call is
    dropped with one warning.
    """
    if _exiting:
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
    target: Recorder | None = current
    return target


def active_recorder() -> Recorder | None:
    """The recorder now: the current one, configuring first if nothing is configured yet.

    What every record path outside the public functions calls (trackers, integrations, cache
    wrappers); ``None`` when metrics are off.
    """
    target = current
    if target is BOOTSTRAP:
        return resolve_recorder()
    recorder: Recorder | None = target
    return recorder


def reset_metrics() -> None:
    """A clean slate: a new MeterProvider with zero counts; the endpoint keeps running."""
    global current
    with _lock:
        active = get_runtime()
        active.reset()
        current = active.recorder


def shutdown(timeout_s: float = 5.0) -> None:
    """Final export and stop. Later record calls configure a fresh instance on first use."""
    global runtime, current
    with _lock:
        active, runtime = runtime, None
        current = BOOTSTRAP
    if active is not None:
        active.shutdown(timeout_s)


def _shutdown_at_exit() -> None:
    global _exiting
    _exiting = True
    try:
        with _lock:
            active = runtime
        if active is not None:
            active.shutdown(timeout_s=5.0)
    except Exception:  # pragma: no cover - interpreter teardown; nothing left to protect
        logger.debug("otel-perf: error at exit", exc_info=True)


def _after_fork_in_child() -> None:
    """A forked child starts fresh: the parent's counts are not its own, and the endpoint and
    its threads stay with the parent (the child closes its copy of the listening socket). The
    child configures anew on its next record call.

    The lock is replaced, not reused: another thread of the parent may have held it at the
    moment of the fork, and no thread in the child would ever release it.
    """
    global runtime, current, _lock
    abandoned = runtime
    _lock = threading.RLock()
    runtime = None
    current = BOOTSTRAP
    if abandoned is not None:
        abandoned.abandon_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reset_for_tests() -> None:
    """Shut down and forget everything, including which warnings were already given."""
    global _exiting
    _exiting = False
    shutdown(timeout_s=5.0)
    reset_warnings()


__all__ = [
    "BOOTSTRAP",
    "Settings",
    "active_recorder",
    "configure",
    "current",
    "get_runtime",
    "reset_for_tests",
    "reset_metrics",
    "resolve_recorder",
    "runtime",
    "shutdown",
]
