"""The public recording and reading functions.

Each record function reads :data:`otel_perf._state.current` once and returns at once when it is
``None`` (disabled), so switched-off metrics cost one global lookup and one comparison.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from time import perf_counter
from types import CoroutineType, TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, overload

from otel_perf import _state
from otel_perf._configure import active_recorder, get_runtime
from otel_perf._log import warn_once
from otel_perf._recorder import MAX_DURATION_SECONDS, Recorder, warn_dropped

_P = ParamSpec("_P")
_R = TypeVar("_R")

# --- origin-compatible functions -------------------------------------------------------------


def record_tool_call(
    tool_name: str, success: bool, latency_ms: float, error_type: str | None = None
) -> None:
    """Record one finished tool call (the origin module's signature).

    >>> record_tool_call("search", True, 12.5)
    >>> record_tool_call("search", False, 30.0, "TimeoutError")
    """
    target = _state.current
    if target is not None:
        target.record_tool_call(tool_name, success, latency_ms, error_type)


def record_cache_hit(cache_name: str) -> None:
    """Count one cache hit."""
    target = _state.current
    if target is not None:
        target.record_cache_hit(cache_name)


def record_cache_miss(cache_name: str) -> None:
    """Count one cache miss."""
    target = _state.current
    if target is not None:
        target.record_cache_miss(cache_name)


def record_cache_eviction(cache_name: str) -> None:
    """Count one entry evicted from a cache."""
    target = _state.current
    if target is not None:
        target.record_cache_eviction(cache_name)


def record_cache_size_rejection(cache_name: str) -> None:
    """Count one value the cache refused because it was too large."""
    target = _state.current
    if target is not None:
        target.record_cache_size_rejection(cache_name)


def set_active_sessions(count: int) -> None:
    """Set the number of open sessions you track yourself (added to ``track_session`` ones)."""
    target = _state.current
    if target is not None:
        target.set_active_sessions(count)


def set_concurrent_requests(count: int) -> None:
    """Set the number of in-flight requests you track yourself (added to ``track_tool`` ones)."""
    target = _state.current
    if target is not None:
        target.set_concurrent_requests(count)


def get_all_metrics() -> dict[str, Any]:
    """Collect now and return the document served on ``/metrics``.

    Each call closes a latency-window slice. Raises
    :class:`~otel_perf.CollectionError` only if the SDK's collection itself fails.
    """
    return get_runtime().snapshot()


def snapshot() -> dict[str, Any]:
    """Alias of :func:`get_all_metrics`."""
    return get_all_metrics()


# --- providers ----------------------------------------------------------------------------------


def record_provider_call(
    provider: str,
    success: bool,
    latency_ms: float,
    error_type: str | None = None,
    model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    *,
    operation: str | None = None,
) -> None:
    """Record one finished LLM provider call, with token counts when known.

    >>> record_provider_call("openai", True, 820.0, model="gpt-4o", input_tokens=120)
    """
    target = _state.current
    if target is None:
        return
    target.record_provider_call(
        provider, success, latency_ms, error_type, model, input_tokens, output_tokens, operation
    )


# --- trackers -----------------------------------------------------------------------------------


def error_name(exc_type: type[BaseException]) -> str:
    """The class name recorded as ``error.type``; never raises (a metaclass may make it)."""
    try:
        name = exc_type.__name__
        if type(name) is str:
            return name
    except Exception:  # noqa: S110 - the caller's exception must come out unchanged
        pass
    warn_once("error-name", "otel-perf: an exception class without a readable __name__")
    return "unknown"


def _who() -> object:
    """The asyncio task running now, else this thread: who entered a shared tracker."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        task = None
    return task if task is not None else threading.get_ident()


class ToolTracker:
    """Track a tool call: a context manager (``with``/``async with``) and a decorator.

    The call is timed, counted as a concurrent request while it runs, and counted as a failure
    if it raises — with the exception's class name as error type — and the exception is
    re-raised unchanged (``asyncio.CancelledError`` included). ``otel_perf.track_tool`` is this
    class. Make one per ``with`` block (``with track_tool(name):``); an instance entered again
    before it exited (shared by concurrent tasks) still measures every use, with one warning.
    A decorated function may run concurrently.

    >>> with track_tool("search"):
    ...     pass
    >>> @track_tool("fetch")
    ... async def fetch(url: str) -> str: ...
    """

    __slots__ = ("_recorder", "_shared", "_start", "tool_name")

    def __init__(self, tool_name: str) -> None:
        self.tool_name = tool_name
        self._recorder: Recorder | None = None  # _start is set by __enter__ when this is set
        #: Entries made while the instance was already in use: who -> [(recorder, start)].
        self._shared: dict[object, list[tuple[Recorder, float]]] | None = None

    def __enter__(self) -> ToolTracker:
        # active_recorder()'s common case inlined: this and __exit__ are the hot path of every
        # tracked call.
        recorder = _state.current
        if not isinstance(recorder, Recorder) and recorder is not None:
            recorder = active_recorder()  # the stand-in before the first configuration
        if self._recorder is not None and recorder is not None:
            self._enter_again(recorder)
            return self
        self._recorder = recorder
        if recorder is not None:
            recorder.request_started()
            self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if self._shared is not None and self._exit_again(exc_type):
            return False
        recorder = self._recorder
        if recorder is not None:
            seconds = perf_counter() - self._start
            self._recorder = None
            name = self.tool_name
            if exc_type is None and type(name) is str and 0.0 <= seconds <= MAX_DURATION_SECONDS:
                # Recorder.tool_finished's common case, inlined (one Python call fewer).
                attrs = recorder.ok_tool_series.get(name)
                if attrs is not None:
                    recorder.request_finished()
                    try:
                        recorder.tool_duration.record(seconds, attrs)
                    except Exception as error:
                        warn_dropped("tool", error)
                    return False
            recorder.tool_finished(
                name, seconds, None if exc_type is None else error_name(exc_type)
            )
        return False  # never swallow the caller's exception

    def _enter_again(self, recorder: Recorder) -> None:
        warn_once(
            "tracker-shared",
            "otel-perf: a track_tool(%r) instance was entered again before it exited (shared "
            "by concurrent tasks?); every use is still measured, but make one per call: "
            "`with track_tool(name):`",
            self.tool_name if type(self.tool_name) is str else "...",
        )
        if self._shared is None:
            self._shared = {}
        recorder.request_started()
        self._shared.setdefault(_who(), []).append((recorder, perf_counter()))

    def _exit_again(self, exc_type: type[BaseException] | None) -> bool:
        """Finish an entry made by :meth:`_enter_again` by the same task; False if none."""
        shared = self._shared
        if shared is None:
            return False
        who = _who()
        entries = shared.get(who)
        if not entries:
            return False
        recorder, start = entries.pop()
        if not entries:
            del shared[who]
        recorder.tool_finished(
            self.tool_name,
            perf_counter() - start,
            None if exc_type is None else error_name(exc_type),
        )
        return True

    async def __aenter__(self) -> ToolTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    @overload
    def __call__(
        self, fn: Callable[_P, Coroutine[Any, Any, _R]]
    ) -> Callable[_P, Coroutine[Any, Any, _R]]: ...  # pragma: no cover

    @overload
    def __call__(self, fn: Callable[_P, _R]) -> Callable[_P, _R]: ...  # pragma: no cover

    def __call__(self, fn: Callable[_P, Any]) -> Callable[_P, Any]:
        """Decorate a sync or async function; every call is tracked."""
        name = self.tool_name
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError("track_tool cannot time a generator function; use it as `with`")
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                recorder = _state.current
                if not isinstance(recorder, Recorder) and recorder is not None:
                    recorder = active_recorder()
                if recorder is None:
                    return await fn(*args, **kwargs)
                recorder.request_started()
                start = perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    recorder.tool_finished(name, perf_counter() - start, error_name(type(exc)))
                    raise
                recorder.tool_finished(name, perf_counter() - start, None)
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            recorder = _state.current
            if not isinstance(recorder, Recorder) and recorder is not None:
                recorder = active_recorder()
            if recorder is None:
                return fn(*args, **kwargs)
            recorder.request_started()
            start = perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                recorder.tool_finished(name, perf_counter() - start, error_name(type(exc)))
                raise
            if type(result) is CoroutineType:
                # Not ``async def`` but returns a coroutine (a lambda or partial around one,
                # a sync wrapper): the call is not over until the coroutine is.
                return _finish_when_awaited(recorder, name, start, result)
            recorder.tool_finished(name, perf_counter() - start, None)
            return result

        return wrapper


def _finish_when_awaited(
    recorder: Recorder, name: str, start: float, coroutine: Coroutine[Any, Any, Any]
) -> Coroutine[Any, Any, Any]:
    warn_once(
        "tracker-coroutine",
        "otel-perf: track_tool(%r) decorates a function that returns a coroutine but is not "
        "`async def`; it is measured until the coroutine finishes (declare it `async def`)",
        name if type(name) is str else "...",
    )

    async def finish() -> Any:
        try:
            result = await coroutine
        except BaseException as exc:
            recorder.tool_finished(name, perf_counter() - start, error_name(type(exc)))
            raise
        recorder.tool_finished(name, perf_counter() - start, None)
        return result

    return finish()


#: Track a tool call: a context manager (``with``/``async with``) and a decorator. The class
#: itself rather than a factory function, because a tracked call's cost is mostly fixed
#: overhead and a second Python call is a measurable share of it (see benchmarks/RESULTS.md).
track_tool = ToolTracker


class ProviderTracker:
    """Times an LLM provider call; see :func:`track_provider`."""

    __slots__ = (
        "_recorder",
        "_start",
        "input_tokens",
        "model",
        "operation",
        "output_tokens",
        "provider",
    )

    def __init__(self, provider: str, model: str | None, operation: str | None) -> None:
        self.provider = provider
        self.model = model
        self.operation = operation
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._recorder: Recorder | None = None
        self._start = 0.0

    def set_tokens(self, input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """Report the call's token usage (recorded when the block ends)."""
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens

    def __enter__(self) -> ProviderTracker:
        self._recorder = active_recorder()
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        recorder = self._recorder
        if recorder is not None:
            recorder.record_provider_seconds(
                self.provider,
                perf_counter() - self._start,
                None if exc_type is None else error_name(exc_type),
                self.model,
                self.input_tokens,
                self.output_tokens,
                self.operation,
            )
            self._recorder = None
        return False

    async def __aenter__(self) -> ProviderTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


def track_provider(
    provider: str, model: str | None = None, *, operation: str | None = None
) -> ProviderTracker:
    """Track an LLM provider call (``with``/``async with``); failures are exceptions.

    >>> with track_provider("openai", model="gpt-4o") as call:
    ...     call.set_tokens(input_tokens=120, output_tokens=40)
    """
    return ProviderTracker(provider, model, operation)


class SessionTracker:
    """Counts one active session while inside; see :func:`track_session`."""

    __slots__ = ("_recorder",)

    def __init__(self) -> None:
        self._recorder: Recorder | None = None

    def __enter__(self) -> SessionTracker:
        recorder = self._recorder = active_recorder()
        if recorder is not None:
            recorder.session_started()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        recorder = self._recorder
        if recorder is not None:
            recorder.session_finished()
            self._recorder = None
        return False

    async def __aenter__(self) -> SessionTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


def track_session() -> SessionTracker:
    """Count an active session for the duration of a ``with`` (or ``async with``) block."""
    return SessionTracker()
