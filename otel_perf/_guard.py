"""Nothing otel-perf does waits for ever: not on a lock its own thread holds, nor on one a fork
left held.

- Record calls never take an SDK lock at all: they queue (see :mod:`otel_perf._handoff`). The
  queue is replayed into the SDK by collections, by a drainer thread and, past a bound, by a
  record call; a thread marks itself busy while it is inside the SDK (a replay or a
  collection), and a collection asked for on a busy thread - a signal handler interrupting
  one, an observable callback calling ``get_all_metrics()`` - is refused at once instead of
  waiting on the lock its own thread holds.
- A forked child inherits the parent's locks in whatever state the parent's other threads had
  them. The child's copy of the parent's recorder drops (and counts) every measurement (see
  :meth:`otel_perf._handoff.Deferred.abandon`); the child records into a pipeline of its own.

Only the main thread runs signal handlers, and its flag is a plain list cell rather than a
``threading.local`` attribute (a third of the cost); other threads keep a per-thread flag.
"""

from __future__ import annotations

import threading
from _thread import get_ident
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from otel_perf._log import warn_once

#: The thread that runs signal handlers (a forked child keeps the parent's value; a fork from
#: a thread other than the main one leaves the child's records unguarded against its handlers).
_MAIN_IDENT: Final = threading.main_thread().ident

#: Whether the main thread is inside the SDK now: one cell, read and written on the hot path.
_main_busy: Final = [False]


class _ThreadState(threading.local):
    """``busy``: whether this thread is inside the SDK now (a replay or a collection)."""

    _busy_here = False

    @property
    def busy(self) -> bool:
        if get_ident() == _MAIN_IDENT:
            return _main_busy[0]
        return self._busy_here

    @busy.setter
    def busy(self, value: bool) -> None:
        if get_ident() == _MAIN_IDENT:
            _main_busy[0] = value
        else:
            self._busy_here = value


#: Per thread: whether this thread is inside the SDK now (a replay or a collection).
state: Final = _ThreadState()


class Drops:
    """How many measurements were dropped (recorded into a forked parent's pipeline)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def drop(self, why: str) -> None:
        # Not atomic under threads, but drops happen in signal handlers (the main thread
        # only) and in forked children (one thread): a lost increment is at worst one.
        self.count += 1
        warn_once(
            f"drop:{why}",
            "otel-perf: a measurement was dropped (%s); dropped ones are "
            "counted in /health as dropped_measurements",
            why,
        )


@contextmanager
def collecting() -> Iterator[bool]:
    """Mark this thread busy during a collection; yields ``False`` if it already was.

    A collection started from inside one (an observable callback calling
    ``get_all_metrics()``, a signal handler interrupting a collection) would wait on the
    outer one for ever; the caller refuses it instead.
    """
    local = state
    if local.busy:
        yield False
        return
    local.busy = True
    try:
        yield True
    finally:
        local.busy = False


__all__ = ["Drops", "collecting", "state"]
