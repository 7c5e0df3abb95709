"""Cache metrics without hand-written ``record_cache_*`` calls.

>>> import cachetools, functools
>>> from otel_perf.caches import instrument_cache, observe_lru_cache
>>> cache = instrument_cache(cachetools.TTLCache(maxsize=100, ttl=60), "sessions")
>>> @cachetools.cached(cache)
... def lookup(key: str) -> str: ...
>>> @functools.lru_cache(maxsize=256)
... def parse(text: str) -> str: ...
>>> parse = observe_lru_cache(parse, "parse")

:func:`instrument_cache` wraps any ``cachetools`` cache (``LRUCache``, ``TTLCache``,
``LFUCache``, ...) or any other ``MutableMapping`` and counts, into ``cache_metrics``:

- **hits and misses**: each ``cache[key]`` and ``cache.get(key)`` through the wrapper (what
  ``cachetools.cached`` / ``cachedmethod`` do). ``in``, ``setdefault``, ``pop`` and iteration
  are not lookups and are not counted;
- **evictions**: for a ``cachetools`` cache, every entry its policy removes: ``popitem()``
  called to make room, and every entry dropped by ``expire()`` (TTL/TLRU expiry, which
  cachetools runs on writes, ``len()`` and ``currsize``). The cache object itself is hooked: its
  ``__class__`` becomes a same-named subclass whose ``popitem``/``expire`` count and call the
  originals, so removals are counted even when code uses the unwrapped cache (and
  ``isinstance`` checks still hold). ``clear()``, ``del`` and ``pop`` are the program's own
  removals, not evictions. A plain mapping never evicts;
- **size rejections**: ``cache[key] = value`` raising ``ValueError('value too large')`` (a
  value bigger than ``maxsize``, per ``getsizeof``). The error is counted and **re-raised**, so
  the wrapper behaves exactly like the cache it wraps: ``cachetools.cached`` swallows that
  error (the value is returned uncached) with or without the wrapper.

:func:`observe_lru_cache` reports a ``functools.lru_cache`` function's hits, misses and
(derived) evictions through observable instruments read at collection time: zero cost per call.
See :mod:`otel_perf._integrations.lru_cache_sources`.
"""

from __future__ import annotations

import copyreg
import sys
from collections.abc import Callable, ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from typing import Any, TypeVar

from otel_perf import _state
from otel_perf._configure import active_recorder, get_runtime
from otel_perf._integrations import lru_cache_sources
from otel_perf._log import warn_once

__all__ = ["InstrumentedCache", "instrument_cache", "observe_lru_cache"]

_K = TypeVar("_K")
_V = TypeVar("_V")
_F = TypeVar("_F", bound=Callable[..., Any])

_MISSING = object()


def _is_size_rejection(exc: ValueError) -> bool:
    # cachetools' wording since 1.0; "value size must be non-negative" is a programming error
    return "too large" in str(exc)


class _EvictionCounter:
    """The name a hooked cachetools cache counts its evictions under."""

    def __init__(self, name: str) -> None:
        self.name = name

    def count(self, evicted: int) -> None:
        if evicted <= 0:
            return
        recorder = active_recorder()
        if recorder is not None:
            recorder.record_cache_eviction(self.name, evicted)


_COUNTER_ATTR = "_otel_perf_evictions"


def _counter_of(cache: object) -> _EvictionCounter | None:
    counter = getattr(cache, "__dict__", {}).get(_COUNTER_ATTR)
    return counter if isinstance(counter, _EvictionCounter) else None


def _counting_class(cls: type) -> type:
    """A subclass of cachetools class ``cls`` whose ``popitem``/``expire`` count what they drop.

    cachetools calls ``self.popitem()`` to make room and ``self.expire(time)`` to drop expired
    entries, so overriding both sees every eviction; each override calls the original. Same
    name, same layout, no new state: only the instance's ``__class__`` changes. A pickled copy
    is a plain ``cls`` again.
    """
    known = _state.counting_classes.get(cls)
    if known is not None:
        return known
    has_expire = callable(getattr(cls, "expire", None))

    class Counting(cls):  # type: ignore[misc]
        def popitem(self) -> Any:
            item = super().popitem()
            counter = _counter_of(self)
            if counter is not None:
                counter.count(1)
            return item

        if has_expire:

            def expire(self, *args: Any, **kwargs: Any) -> Any:
                expired = super().expire(*args, **kwargs)
                counter = _counter_of(self)
                if counter is not None:
                    try:
                        counter.count(len(expired))
                    except TypeError:  # a cachetools whose expire() returns nothing countable
                        warn_once("cache-expire", "otel-perf: cannot count this cache's expiries")
                return expired

        def __reduce_ex__(self, protocol: Any) -> Any:
            # Pickle as the plain class (copyreg's own reconstructor, so unpickling needs no
            # otel-perf) and without the counter: a pickled cache is not instrumented.
            reduced = super().__reduce_ex__(protocol)
            state = reduced[2] if len(reduced) > 2 else None
            if isinstance(state, dict):
                state = {k: v for k, v in state.items() if k != _COUNTER_ATTR}
            rebuild = copyreg._reconstructor  # type: ignore[attr-defined]
            return (rebuild, (cls, object, None), state, *reduced[3:])

    Counting.__name__ = cls.__name__
    Counting.__qualname__ = cls.__qualname__
    Counting.__module__ = cls.__module__
    _state.counting_classes[cls] = Counting
    return Counting


def _hook_evictions(cache: object, name: str) -> None:
    """Count the evictions of a cachetools cache (see :func:`_counting_class`)."""
    counter = _counter_of(cache)
    if counter is not None:
        counter.name = name  # instrumented again: count under the newest name
        return
    cachetools = sys.modules.get("cachetools")
    base = getattr(cachetools, "Cache", None)
    if not isinstance(base, type) or not isinstance(cache, base):
        return
    try:
        cache.__dict__[_COUNTER_ATTR] = _EvictionCounter(name)
        cache.__class__ = _counting_class(type(cache))
    except (AttributeError, TypeError) as exc:
        warn_once(
            "cache-hook",
            "otel-perf: cannot count the evictions of a %s cache (%s); hits, misses and size "
            "rejections are still counted",
            type(cache).__name__,
            exc,
        )


class InstrumentedCache(MutableMapping[_K, _V]):
    """A cache (any ``MutableMapping``) whose hits, misses, evictions and size rejections are
    recorded under ``name``. Attributes it does not define (``maxsize``, ``currsize``, ``ttl``,
    ``timer``, ``expire``...) are the wrapped cache's. Build it with :func:`instrument_cache`.
    """

    __slots__ = ("_cache", "_name")

    def __init__(self, cache: MutableMapping[_K, _V], name: str) -> None:
        self._cache = cache
        self._name = name

    @property
    def cache(self) -> MutableMapping[_K, _V]:
        """The wrapped cache."""
        return self._cache

    @property
    def cache_name(self) -> str:
        return self._name

    def __getitem__(self, key: _K) -> _V:
        try:
            value = self._cache[key]
        except KeyError:
            recorder = active_recorder()
            if recorder is not None:
                recorder.record_cache_miss(self._name)
            raise
        recorder = active_recorder()
        if recorder is not None:
            recorder.record_cache_hit(self._name)
        return value

    def get(self, key: _K, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: _K, value: _V) -> None:
        try:
            self._cache[key] = value
        except ValueError as exc:
            self._rejected(exc)
            raise

    def setdefault(self, key: _K, default: Any = None) -> Any:
        try:
            return self._cache.setdefault(key, default)
        except ValueError as exc:
            self._rejected(exc)
            raise

    def _rejected(self, exc: ValueError) -> None:
        if _is_size_rejection(exc):
            recorder = active_recorder()
            if recorder is not None:
                recorder.record_cache_size_rejection(self._name)

    def __delitem__(self, key: _K) -> None:
        del self._cache[key]

    def pop(self, key: _K, default: Any = _MISSING) -> Any:
        if default is _MISSING:
            return self._cache.pop(key)
        return self._cache.pop(key, default)

    def popitem(self) -> tuple[_K, _V]:
        return self._cache.popitem()

    def clear(self) -> None:
        self._cache.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._cache

    def __iter__(self) -> Iterator[_K]:
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    def keys(self) -> KeysView[_K]:
        return self._cache.keys()

    def values(self) -> ValuesView[_V]:
        return self._cache.values()

    def items(self) -> ItemsView[_K, _V]:
        return self._cache.items()

    def __getattr__(self, name: str) -> Any:
        if name in InstrumentedCache.__slots__:  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self._cache, name)

    def __repr__(self) -> str:
        return f"InstrumentedCache({self._cache!r}, name={self._name!r})"


def instrument_cache(cache: MutableMapping[_K, _V], name: str) -> InstrumentedCache[_K, _V]:
    """Wrap ``cache`` so that its use is recorded under ``name`` in ``cache_metrics``.

    Use the returned object where the cache was used (e.g. ``cachetools.cached(wrapper)``).
    Instrumenting an :class:`InstrumentedCache` again rewraps its cache under the new name.
    """
    if isinstance(cache, InstrumentedCache):
        cache = cache.cache
    if not isinstance(cache, MutableMapping):
        raise TypeError(
            f"instrument_cache expects a MutableMapping (e.g. a cachetools cache), "
            f"not {type(cache).__name__}"
        )
    _hook_evictions(cache, name)
    return InstrumentedCache(cache, name)


def observe_lru_cache(fn: _F, name: str) -> _F:
    """Report ``fn.cache_info()`` (a ``functools.lru_cache`` function) as cache ``name``.

    Returns ``fn`` itself: calls cost nothing extra; the statistics are read when metrics are
    collected. Calling it again for the same function and name does nothing.
    """
    if not callable(getattr(fn, "cache_info", None)):
        raise TypeError("observe_lru_cache expects a function with cache_info(), e.g. lru_cache")
    lru_cache_sources.register(fn, name)
    get_runtime()  # configure now, so the counts start with the observation
    return fn
