"""Bounded duty cycle for the endpoint: a result is reused for a while proportional to its cost.

However hard the endpoint is polled (50 clients asking again the moment they have an answer),
collecting must not starve the host application of the GIL. A result that took ``d`` seconds to
make is therefore handed out again to requests arriving within ``factor * d`` seconds after it
was made (at most ``max_age_s``), so making results takes at most ``1 / (1 + factor)`` of the
time. With the default factor of 9 that is a tenth: a 10 ms collection is reused for 90 ms, a
1 ms one for 9 ms. Requests answered this way share the earlier snapshot, so they close no
latency-window slice of their own.

Concurrent requests share one production too: while one request makes a new result, the
others wait for it and take it, however many pollers ask at once. Results of different paths
share one :class:`DutyCycle`, so the bound holds for the endpoint as a whole, not per path:
after any path's result took ``d`` seconds, no path makes a new one for ``factor * d`` seconds
(each answers with its last result, at most :data:`MAX_STALE_S` old, meanwhile).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final, Generic, TypeVar

_T = TypeVar("_T")

DEFAULT_FACTOR: Final = 9.0
DEFAULT_MAX_AGE_S: Final = 1.0
#: With a shared duty cycle, no path answers with a result older than this: past it, a new
#: one is made even during the rest (a result that costs over 3 s to make would otherwise
#: be older still).
MAX_STALE_S: Final = 30.0


class DutyCycle:
    """The rest that every path sharing it takes after any of them made a result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rest_until = -1.0

    def rest(self, until: float) -> None:
        with self._lock:
            self.rest_until = max(self.rest_until, until)


class Reuse(Generic[_T]):
    """Call ``produce`` again only once its last result has been reused for long enough."""

    def __init__(
        self,
        produce: Callable[[], _T],
        *,
        factor: float = DEFAULT_FACTOR,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
        duty: DutyCycle | None = None,
    ) -> None:
        self._produce = produce
        self._duty = duty
        self._made_at = -1.0
        self._factor = factor
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        #: Held while a result is made: concurrent callers queue here, then share it.
        self._producing = threading.Lock()
        self._value: _T | None = None
        self._fresh_until = -1.0
        self._generation = 0

    def _fresh(self, now: float) -> bool:
        """Whether the last result may still be handed out (``self._lock`` held)."""
        if self._value is None:
            return False
        if now < self._fresh_until:
            return True
        duty = self._duty
        return duty is not None and now < duty.rest_until and now - self._made_at < MAX_STALE_S

    def get(self) -> _T:
        """The last result if it is still fresh, else a new one (exceptions are not kept)."""
        with self._lock:
            if self._fresh(self._clock()):
                return self._value  # type: ignore[return-value]  # _fresh: not None
            seen = self._generation
        with self._producing:
            with self._lock:
                # Made while this caller waited (or still fresh): share it.
                if self._value is not None and (
                    self._generation != seen or self._fresh(self._clock())
                ):
                    return self._value
            started = self._clock()
            value = self._produce()
            finished = self._clock()
            took = finished - started
            with self._lock:
                self._value = value
                self._generation += 1
                self._made_at = finished
                self._fresh_until = finished + min(self._factor * took, self._max_age_s)
            if self._duty is not None:
                # Not capped at max_age_s: a result that took a second to make must be
                # followed by nine seconds of rest for the bound to hold.
                self._duty.rest(finished + self._factor * took)
        return value

    def clear(self) -> None:
        with self._lock:
            self._value = None
            self._fresh_until = -1.0
            self._generation += 1
