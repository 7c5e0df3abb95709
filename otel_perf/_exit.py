"""The final export: once, at the end of the process, whichever way it ends.

A normal exit runs it from ``atexit``; a ``multiprocessing`` child started by fork (which ends
with ``os._exit``, skipping ``atexit``) from multiprocessing's own exit function; SIGTERM and
SIGHUP from :mod:`otel_perf._signals`. ``configure()`` calls :func:`register` each time; the
registrations are made once per process.
"""

from __future__ import annotations

import atexit
import os
import sys

from otel_perf import _state
from otel_perf._log import logger


def register() -> None:
    """Make sure :func:`shutdown_at_exit` runs when this process ends; idempotent."""
    if not _state.atexit_registered:
        atexit.register(shutdown_at_exit)
        _state.atexit_registered = True
    _register_in_multiprocessing_child()


def _register_in_multiprocessing_child() -> None:
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


def shutdown_at_exit() -> None:
    """The final export, at exit or on a signal; later record calls warn once and are dropped."""
    _state.exiting = True
    try:
        with _state.lock:
            running = _state.runtime
            # Late calls reach otel_perf._configure.active_recorder(), which warns and drops.
            _state.current = _state.UNCONFIGURED
        if running is not None:
            running.shutdown(timeout_s=5.0)
    except Exception:  # pragma: no cover - interpreter teardown; nothing left to protect
        logger.debug("otel-perf: error at exit", exc_info=True)


__all__ = ["register", "shutdown_at_exit"]
