"""Bounded duty cycle for the endpoint: a result is reused for a while proportional to its cost.

However hard the endpoint is polled (50 clients asking again the moment they have an answer),
collecting must not starve the host application of the GIL. A result that took ``d`` seconds to
make is therefore handed out again to requests arriving within ``factor * d`` seconds after it
was made (at most ``max_age_s``), so making results takes at most ``1 / (1 + factor)`` of the
time. With the default factor of 9 that is a tenth: a 10 ms collection is reused for 90 ms, a
1 ms one for 9 ms. Requests answered this way share the earlier snapshot, so they close no
latency-window slice of their own.

Concurrent requests share one production too: while one request makes a new result, the
others wait for it and take it, however many pollers ask at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final, Generic, TypeVar

_T = TypeVar("_T")

DEFAULT_FACTOR: Final = 9.0
DEFAULT_MAX_AGE_S: Final = 1.0


class Reuse(Generic[_T]):
    """Call ``produce`` again only once its last result has been reused for long enough."""

    def __init__(
        self,
        produce: Callable[[], _T],
        *,
        factor: float = DEFAULT_FACTOR,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._produce = produce
        self._factor = factor
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        #: Held while a result is made: concurrent callers queue here, then share it.
        self._producing = threading.Lock()
        self._value: _T | None = None
        self._fresh_until = -1.0
        self._generation = 0

    def get(self) -> _T:
        """The last result if it is still fresh, else a new one (exceptions are not kept)."""
        with self._lock:
            if self._value is not None and self._clock() < self._fresh_until:
                return self._value
            seen = self._generation
        with self._producing:
            with self._lock:
                # Made while this caller waited (or still fresh): share it.
                if self._value is not None and (
                    self._generation != seen or self._clock() < self._fresh_until
                ):
                    return self._value
            started = self._clock()
            value = self._produce()
            finished = self._clock()
            with self._lock:
                self._value = value
                self._generation += 1
                self._fresh_until = finished + min(
                    self._factor * (finished - started), self._max_age_s
                )
        return value

    def clear(self) -> None:
        with self._lock:
            self._value = None
            self._fresh_until = -1.0
            self._generation += 1
