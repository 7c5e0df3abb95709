"""A record call never waits: not on a lock its own thread holds, not on one a fork left held.

Two ways a record call could wait for ever, and what happens instead:

- A signal handler runs on the main thread between two bytecodes, possibly in the middle of a
  record or a collection that holds one of the SDK's non-reentrant locks. Each thread marks
  itself busy (a thread-local flag) while it is inside the SDK; a record call that finds its
  own thread busy is dropped and counted instead of waiting on itself.
- A forked child inherits the parent's locks in whatever state the parent's other threads had
  them. The child's copy of the parent's recorder is switched to dropping (and counting) every
  measurement (see :meth:`Guarded.abandon`); the child records into a pipeline of its own.

The flag costs one thread-local read and two writes per record, against several microseconds
for the SDK's own ``record`` (see ``tests/unit/test_never_block.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from otel_perf._log import warn_once


class _ThreadState(threading.local):
    busy = False


#: Per thread: whether this thread is inside the SDK now (a record or a collection).
state: Final = _ThreadState()


class Drops:
    """How many measurements were dropped rather than wait (shared by one recorder)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def drop(self, why: str) -> None:
        # Not atomic under threads, but drops happen in signal handlers (the main thread
        # only) and in forked children (one thread): a lost increment is at worst one.
        self.count += 1
        warn_once(
            f"drop:{why}",
            "otel-perf: a measurement was dropped rather than wait (%s); dropped ones are "
            "counted in /health as dropped_measurements",
            why,
        )


def _discard(_value: Any, _attributes: Any = None) -> None:
    return None


class Guarded:
    """An SDK instrument's ``record``/``add`` that never waits on its own thread."""

    __slots__ = ("_call", "_drops", "_why")

    def __init__(self, call: Callable[..., None], drops: Drops) -> None:
        self._call = call
        self._drops = drops
        self._why = "reentrant call: a signal handler interrupted a record or collection"

    def record(self, value: float, attributes: dict[str, str]) -> None:
        local = state
        if local.busy:
            self._drops.drop(self._why)
            return
        local.busy = True
        try:
            self._call(value, attributes)
        finally:
            local.busy = False

    add = record

    def record_busy(self, value: float, attributes: dict[str, str]) -> None:
        """Record from a thread that marked itself busy but holds no SDK lock: a collection
        handing the SDK the first records it deferred (``Recorder.begin_collection``)."""
        self._call(value, attributes)

    def abandon(self) -> None:
        """In a forked child: drop (and count) from now on; the SDK's locks may be held."""
        drops = self._drops

        def dropped(_value: Any, _attributes: Any = None) -> None:
            drops.drop("recorded in a forked child into the parent's pipeline")

        self._call = dropped


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


__all__ = ["Drops", "Guarded", "collecting", "state"]
