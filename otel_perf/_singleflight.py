"""Single-flight: concurrent callers of an expensive function share one execution."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

_T = TypeVar("_T")


class SingleFlight(Generic[_T]):
    """Run ``fn`` for the first caller; callers arriving while it runs wait for that result.

    A caller that arrives after a run finished starts a new one, so nobody gets data older than
    the moment they asked. Exceptions are shared the same way.
    """

    def __init__(self, fn: Callable[[], _T], wait_timeout_s: float = 30.0) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._current: Future[_T] | None = None
        self._joined = 0  # callers waiting on the current run
        self._wait_timeout_s = wait_timeout_s

    def run(self) -> tuple[_T, bool]:
        """The result, and ``True`` when this caller alone holds it.

        That is the caller that ran ``fn`` while nobody joined: it may mutate the result. Every
        other caller shares the object with at least one more and must treat it as read-only.
        """
        with self._lock:
            future = self._current
            leader = future is None
            if future is None:
                future = self._current = Future()
                self._joined = 0
            else:
                self._joined += 1
        if not leader:
            return future.result(timeout=self._wait_timeout_s), False
        try:
            result = self._fn()
        except BaseException as exc:
            with self._lock:
                self._current = None
            future.set_exception(exc)
            raise
        # Close the run before handing out the result, so the count of who joined is final.
        with self._lock:
            self._current = None
            shared = self._joined > 0
        future.set_result(result)
        return result, not shared
