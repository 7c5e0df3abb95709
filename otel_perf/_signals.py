"""SIGTERM and SIGHUP: hand the numbers over first, then whatever the host would have done.

Process managers, Docker and Kubernetes stop a server with SIGTERM (SIGHUP when its terminal
goes). Python's default for both is to die at once, without ``atexit``, so the final OTLP export
and the last hand-over to the server's endpoint would be lost. ``configure()`` (from the main
thread; elsewhere Python allows no handler) therefore installs a handler for each of the two
signals that is not ignored, remembering the one it replaces:

- it replaced the default: the handler runs the same final export as a normal exit (within its
  timeout), then restores the default and raises the signal again, so the process ends exactly
  as it would have (killed by the signal, exit status included);
- it replaced the host's own handler: that handler is called, as before, and decides how and
  whether to exit. otel-perf only flushes first (one export and one hand-over of everything
  recorded so far, nothing stopped): a host that then exits normally runs the final export at
  ``atexit``, but one that restores the default and raises the signal again after a graceful
  shutdown (uvicorn does) would otherwise lose what it recorded before the signal.

A host that installs its handler after otel-perf's replaces it, and its own handler alone runs,
as without otel-perf. Both steps run on a helper thread the handler waits for (at most
:data:`TIMEOUT_S`): the signal may have interrupted the main thread inside a lock the export
needs. The handlers replaced are kept in :mod:`otel_perf._state`.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final

from otel_perf import _state
from otel_perf._exit import shutdown_at_exit
from otel_perf._log import logger

SIGNALS: Final = ("SIGTERM", "SIGHUP")
#: How long a signal handler waits for the export it started.
TIMEOUT_S: Final = 5.0


def install() -> None:
    """Install the handlers (main thread only; elsewhere a no-op); idempotent."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in SIGNALS:
        number = getattr(signal, name, None)
        if number is None:
            continue
        try:
            current = signal.getsignal(number)
            if current is _handler or current == signal.SIG_IGN or current is None:
                continue
            signal.signal(number, _handler)
        except (ValueError, OSError, RuntimeError):
            continue
        _state.replaced_signal_handlers[int(number)] = current


def uninstall() -> None:
    """Put back the handlers replaced, where otel-perf's is still the one installed."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number, previous in list(_state.replaced_signal_handlers.items()):
        try:
            if signal.getsignal(number) is _handler:
                signal.signal(number, previous)
        except (ValueError, OSError, RuntimeError):
            pass
        _state.replaced_signal_handlers.pop(number, None)


def _flush() -> None:
    running = _state.runtime
    if running is not None:
        running.flush()


def _run_bounded(step: Callable[[], None], what: str) -> None:
    def guarded() -> None:
        try:
            step()
        except Exception as exc:
            logger.warning("otel-perf: the %s on a signal failed (%s)", what, type(exc).__name__)

    worker = threading.Thread(target=guarded, name="otel-perf-signal", daemon=True)
    try:
        worker.start()
    except RuntimeError:  # no new threads: the interpreter is shutting down
        return
    worker.join(TIMEOUT_S)


def _handler(signum: int, frame: FrameType | None) -> None:
    previous = _state.replaced_signal_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        _run_bounded(_flush, "flush")
        previous(signum, frame)
        return
    _run_bounded(shutdown_at_exit, "final export")
    # Then exactly what the default does: the process ends by this signal.
    try:
        signal.signal(signum, signal.SIG_DFL)
    except (ValueError, OSError):
        return
    os.kill(os.getpid(), signum)


__all__ = ["SIGNALS", "TIMEOUT_S", "install", "uninstall"]
