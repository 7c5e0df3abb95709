"""Record calls queue their measurement; the SDK gets the queue in batches, off the request path.

Why: one SDK ``Histogram.record()`` costs about 9 us in a tight loop, but 20-30 us on a real
MCP request path, where the SDK's code and data are cold in the CPU caches by the time the next
request records (the SDK cleans and hashes the attributes and updates the aggregation on every
call). Measured side by side (benchmarks/RESULTS.md, "The MCP request path"), one inline record
costs 1.10-1.25x a plain ``tools/call``; the same records replayed in a batch cost a third as
much. So a record call only appends ``(instrument, value, attributes, context)`` to a queue
(about 0.3 us), and the queue is replayed through the SDK's public ``record()``/``add()`` (same
values, attributes and context, so trace-based exemplars keep their trace):

- **before every collection of the provider** - by an observable callback of the recorder (the
  SDK runs every observable callback before it reads the synchronous instruments) and by
  otel-perf's own reader - so every collection (the JSON view, Prometheus, OTLP, the hand-over
  to the server's endpoint, the application's own readers) includes every record call that
  returned before the collection began, exactly as if it had been recorded inline;
- **by a drainer thread** once :data:`SOFT_LIMIT` measurements are waiting (a busy server that
  nobody collects from), yielding the GIL between small batches;
- **by the recording thread itself** past :data:`HARD_LIMIT` (backpressure: the queue's memory
  stays bounded and nothing is dropped).

A record call never takes an SDK lock, so it can never wait for a collection, nor on a lock its
own thread holds (a signal handler that records while its thread is inside the SDK only
queues). What changes: an exemplar's timestamp is when it reached the SDK, at most one
collection interval after the call.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from opentelemetry.context import Context, create_key, get_current, set_value

from otel_perf._guard import Drops, state
from otel_perf._log import warn_once

#: Waiting measurements past which the drainer thread replays them (about 100 KB).
SOFT_LIMIT: Final = 1024
#: Waiting measurements past which a record call replays the queue itself (about 1.6 MB).
HARD_LIMIT: Final = 16_384
#: Measurements the drainer replays between two yields of the GIL: about 0.15 ms of work, the
#: longest a request thread that wakes up meanwhile waits for the GIL because of it.
_BATCH: Final = 16
#: How long a replay waits for another one to finish before it goes ahead anyway.
_REPLAY_WAIT_S: Final = 2.0
#: How long a retiring queue waits for its drainer thread to end.
_JOIN_S: Final = 2.0

#: (the record call it was made through, value, attributes, context). The record call, not
#: the SDK method behind it: a recorder whose SDK instruments do not exist yet queues too, and
#: its measurements go to the instruments it is attached to later (see Recorder.attach).
Item = tuple["Deferred", float, Any, Any]

#: The context a measurement taken outside any span is handed over with. The SDK reads the
#: current context when the one it is given is empty (``context or get_current()``, and an empty
#: ``Context`` is falsy), which at replay is the *collecting* thread's: inside a span there, a
#: trace-based exemplar would name a trace the call was never part of. A context that holds
#: only this key is not empty and carries no span, so no span is ever read from it (and the SDK
#: skips its second ``get_current()`` call).
OUTSIDE_ANY_SPAN: Final[Context] = set_value(
    create_key("otel-perf-recorded-outside-any-span"), True, Context()
)


class MeasurementQueue:
    """The measurements of one recorder that the SDK has not been given yet."""

    def __init__(self) -> None:
        self.items: deque[Item] = deque()
        #: The record calls that append to :attr:`items` (re-pointed when it is replaced).
        self._sinks: list[Deferred] = []
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Whether the record calls have SDK instruments to be handed to: until then nothing
        #: is replayed, and every record call tells :attr:`need_sdk` (see :meth:`crowded`).
        self.attached = False
        #: Told when a measurement waits for SDK instruments that do not exist yet: once with
        #: ``False`` (the first one), and with ``True`` while :data:`HARD_LIMIT` wait.
        self.need_sdk: Callable[[bool], None] | None = None
        #: Whether :attr:`need_sdk` was told (a measurement was queued before attaching).
        self.told = False
        #: The length at which a record call calls :meth:`crowded`: 1 until attached (so the
        #: first measurement is noticed without a check of its own on the hot path).
        self._limit = 1

    def attach(self) -> None:
        """The record calls are bound to SDK instruments now: replays may begin."""
        self.attached = True
        self._limit = SOFT_LIMIT
        for sink in self._sinks:
            sink._limit = SOFT_LIMIT
        if len(self.items) >= SOFT_LIMIT:
            self.crowded()

    def __len__(self) -> int:
        return len(self.items)

    def flush(self, limit: int | None = None) -> int:
        """Hand the SDK the measurements queued when this starts (at most ``limit``); returns
        how many.

        Safe from any thread and from several at once (each measurement is taken once). The
        thread is marked busy meanwhile, so a signal handler that asks for a collection while
        this thread holds one of the SDK's locks is refused instead of waiting on itself.
        """
        items = self.items
        if not items or not self.attached:
            return 0
        local = state
        was_busy = local.busy
        if not was_busy:
            local.busy = True
        # One replay at a time: a collection's flush waits for the drainer's batch (at most
        # _BATCH measurements), so a measurement taken off the queue before the collection
        # began is in the SDK before the collection reads it, not in the next one.
        acquired = False
        try:
            acquired = self._enter_replay()
            count = len(items) if limit is None else min(len(items), limit)
            return _replay(items, count) if count else 0
        finally:
            if acquired:
                self._replay_lock.release()
            if not was_busy:
                local.busy = False

    def _enter_replay(self) -> bool:
        """Wait for another replay to finish; ``False`` if it went ahead without the lock.

        Waits at most _REPLAY_WAIT_S: the holder may be this very thread, interrupted by a
        signal whose final export runs on a helper thread; then the replay goes ahead anyway
        (each measurement is still taken once). A plain try/finally around it, not a
        ``contextmanager``: that one cost 3.6 us per flush on the benchmark machine (where
        one SDK record costs 25-35 us), paid on every small batch (the drainer's are 16).
        """
        lock = self._replay_lock
        return lock.acquire(False) or lock.acquire(timeout=_REPLAY_WAIT_S)

    def crowded(self) -> None:
        """Called by a record call that found :data:`SOFT_LIMIT` or more waiting (before the
        queue is attached: any)."""
        if not self.attached:
            need_sdk = self.need_sdk
            if need_sdk is None:
                return
            if len(self.items) >= HARD_LIMIT:
                if not state.busy:  # not from a signal handler inside a flush of this thread
                    need_sdk(True)
            elif not self.told:
                self.told = True
                need_sdk(False)
            return
        if len(self.items) >= HARD_LIMIT:
            if not state.busy:  # not from a signal handler inside a flush of this thread
                self.flush()
            return
        if self._wake.is_set() or self._closed:
            return
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._closed:
                    thread = threading.Thread(
                        target=self._drain_forever, name="otel-perf-handoff", daemon=True
                    )
                    thread.start()
                    self._thread = thread
        self._wake.set()

    def _drain_forever(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            if self._closed:
                return
            wake.clear()
            try:
                while self.flush(_BATCH) == _BATCH and not self._closed:
                    time.sleep(0)  # let request threads run between batches
            except Exception as exc:  # pragma: no cover - _replay catches per measurement
                warn_once("handoff-thread", "otel-perf: the hand-off thread failed (%s)", exc)

    def close(self) -> None:
        """Retire the queue: hand the SDK what waits, stop the drainer thread, and let later
        record calls (a call that raced the shutdown) go to the SDK at once, as they arrive."""
        waiting = self.items
        self._replace_items(_ReplayAtOnce())
        self._closed = True
        self._wake.set()
        acquired = self._enter_replay()
        try:
            count = len(waiting)
            if count:
                _replay(waiting, count)
        finally:
            if acquired:
                self._replay_lock.release()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_S)  # it ends after its current batch

    def discard(self) -> int:
        """In a forked child: forget the parent's measurements (the parent hands them over)."""
        count = len(self.items)
        self._replace_items(deque())
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._replay_lock = threading.Lock()  # a fork may have left it held
        self._thread = None
        return count

    def _replace_items(self, items: deque[Item]) -> None:
        self.items = items
        for sink in self._sinks:
            sink._items = items

    def sink(self, call: Callable[..., None], drops: Drops) -> Deferred:
        """A record call (``call`` is an SDK instrument's ``record``/``add``) into this queue."""
        deferred = Deferred(call, self, drops)
        self._sinks.append(deferred)
        return deferred


def _replay(items: deque[Item], count: int) -> int:
    """Hand the SDK ``count`` measurements from the front of ``items``; returns how many."""
    pop = items.popleft
    done = 0
    try:
        for done in range(count):  # noqa: B007 - ``done`` counts what was handed over
            sink, value, attributes, context = pop()
            try:
                sink.call(value, attributes, context)
            except Exception as exc:  # the SDK refused one: never the host's problem
                warn_once(
                    "handoff-refused",
                    "otel-perf: the SDK refused a measurement (%s); it is not counted",
                    type(exc).__name__,
                )
    except IndexError:  # another thread took the rest
        return done
    return count


class Deferred:
    """An SDK instrument's ``record``/``add`` that queues instead of calling the SDK."""

    __slots__ = ("_drops", "_items", "_limit", "_queue", "call")

    def __init__(self, call: Callable[..., None], queue: MeasurementQueue, drops: Drops) -> None:
        #: The SDK instrument's ``record``/``add`` its measurements are handed to.
        self.call = call
        self._queue = queue
        self._items = queue.items
        self._limit = queue._limit
        self._drops = drops

    def record(self, value: float, attributes: dict[str, str]) -> None:
        # The SDK would call get_current() itself: taking it here costs nothing extra, and
        # keeps the trace of the call for trace-based exemplars (see OUTSIDE_ANY_SPAN).
        items = self._items
        items.append((self, value, attributes, get_current() or OUTSIDE_ANY_SPAN))
        if len(items) >= self._limit:
            self._queue.crowded()

    add = record

    def abandon(self) -> None:
        """In a forked child: drop (and count) from now on; the SDK's locks may be held."""
        drops = self._drops
        queue = MeasurementQueue()  # a queue nobody flushes: the parent's stays the parent's

        def dropped(_value: Any, _attributes: Any = None, _context: Any = None) -> None:
            drops.drop("recorded in a forked child into the parent's pipeline")

        self.call = dropped
        self._queue = queue
        # Replayed at once: ``record`` stays branch-free for the parent's hot path.
        self._items = queue.items = _ReplayAtOnce()


class _ReplayAtOnce(deque[Item]):
    """A queue that hands each measurement on as it arrives (an abandoned recorder's)."""

    def append(self, item: Item) -> None:
        item[0].call(item[1], item[2], item[3])


__all__ = ["HARD_LIMIT", "OUTSIDE_ANY_SPAN", "SOFT_LIMIT", "Deferred", "MeasurementQueue"]
