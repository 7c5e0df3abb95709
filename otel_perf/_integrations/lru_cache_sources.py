"""Caches whose statistics are read at collection time: ``functools.lru_cache`` and alike.

``otel_perf.caches.observe_lru_cache(fn, name)`` registers ``fn`` here. Nothing happens per call
of ``fn``: when the SDK collects, an observable callback reads ``fn.cache_info()`` and reports
the totals.

**One instrument name per meaning.** The numbers go under the same names, units and attributes
as the synchronous counters that ``instrument_cache`` and ``record_cache_hit`` feed
(``cache.requests{cache.name, cache.result}``, ``cache.evictions{cache.name}``), as observable
counters of a second instrumentation scope, ``otel_perf.caches``, of the same MeterProvider.
One scope cannot hold a synchronous and an observable instrument of one name, but two scopes
can, and every consumer keeps them apart by scope; the JSON view sums the points of a name
across scopes, so a cache fed both ways shows one total. :func:`attach` runs for every
MeterProvider otel-perf creates (``Pipeline``), so a reconfiguration or ``reset_metrics()``
keeps observing, counting from zero like every other metric.

Details:

- ``cache_clear()`` resets an lru_cache's statistics; totals stay monotonic (what a counter
  must be) by carrying the pre-clear values forward. Calls between the last collection and a
  clear are lost, so clear rarely or accept that.
- Evictions of a ``functools.lru_cache`` are derived: every miss inserts one entry, so
  ``misses - currsize`` entries were evicted (0 when unbounded). Other ``cache_info()``
  providers (e.g. ``cachetools.cached(info=True)``) report hits and misses only.
- Sources are held weakly; a collected function keeps contributing its last totals to the
  providers that saw it alive, and is left out of providers created after it was collected.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_perf import _semconv as n
from otel_perf import _state
from otel_perf._log import warn_once
from otel_perf._observables import Relay
from otel_perf._sanitize import sanitize
from otel_perf._version import __version__

SCOPE_NAME = "otel_perf.caches"

Totals = tuple[int, int, int]  # hits, misses, evictions
_ZERO: Totals = (0, 0, 0)


class Source:
    """One observed function: its name and monotonic totals across ``cache_clear()`` calls."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.name = name
        self._ref: Callable[[], Any]
        try:
            self._ref = weakref.ref(fn)
        except TypeError:  # not weak-referenceable: keep it alive
            self._ref = lambda: fn
        self._derive_evictions = callable(getattr(fn, "cache_parameters", None))
        self._lock = threading.Lock()
        self._last_raw: Totals = _ZERO
        self._offset: Totals = _ZERO

    def after_fork(self) -> None:
        """In a forked child: a new lock (another thread may have held this one at the fork)."""
        self._lock = threading.Lock()

    def is_for(self, fn: object) -> bool:
        return self._ref() is fn

    def alive(self) -> bool:
        return self._ref() is not None

    def totals(self) -> Totals:
        """Monotonic (hits, misses, evictions) since the function was created."""
        with self._lock:
            fn = self._ref()
            if fn is not None:
                raw = self._read(fn)
                if raw is not None:
                    if any(now < before for now, before in zip(raw, self._last_raw, strict=True)):
                        # cache_clear() restarted the statistics: carry the old ones forward
                        self._offset = _add(self._offset, self._last_raw)
                    self._last_raw = raw
            return _add(self._offset, self._last_raw)

    def _read(self, fn: Any) -> Totals | None:
        try:
            info = fn.cache_info()
            hits, misses = int(info.hits), int(info.misses)
            evictions = 0
            if self._derive_evictions and info.maxsize:
                evictions = max(misses - int(info.currsize), 0)
        except Exception as exc:
            warn_once("lru-read", "otel-perf: could not read a cache's cache_info() (%s)", exc)
            return None
        return hits, misses, evictions


def _add(a: Totals, b: Totals) -> Totals:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _registered() -> list[Source]:
    """The registered sources (call with ``_state.lru_sources_lock`` held).

    ``_state`` holds them typed only by what its fork hook calls; every one is a :class:`Source`.
    """
    return [source for source in _state.lru_sources if isinstance(source, Source)]


def register(fn: Callable[..., Any], name: object) -> Source:
    """Observe ``fn`` (anything with ``cache_info()``) as cache ``name``; idempotent."""
    clean = sanitize(name)
    with _state.lru_sources_lock:
        for source in _registered():
            if source.is_for(fn) and source.name == clean:
                return source
        source = Source(fn, clean)
        _state.lru_sources.append(source)
        return source


def attach(meter_provider: MeterProvider, relay: Relay, owner: object) -> None:
    """Report every registered source through ``meter_provider`` (counting from now).

    The instruments go through ``relay`` on behalf of ``owner`` (the pipeline), so attaching
    again to a provider that outlives a pipeline re-points them (see otel_perf._observables).
    """
    with _state.lru_sources_lock:
        existing = _registered()
    # What each source had before this provider existed is not this provider's to report, and
    # a function already gone has nothing new to report here.
    baselines: dict[Source, Totals] = {source: source.totals() for source in existing}
    gone = {source for source in existing if not source.alive()}

    def since_attach() -> dict[str, Totals]:
        with _state.lru_sources_lock:
            current = _registered()
        per_name: dict[str, Totals] = {}
        for source in current:
            if source in gone:
                continue
            totals = source.totals()
            base = baselines.get(source, _ZERO)
            delta = (totals[0] - base[0], totals[1] - base[1], totals[2] - base[2])
            per_name[source.name] = _add(per_name.get(source.name, _ZERO), delta)
        return per_name

    def observe_requests(_options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for name, (hits, misses, _evictions) in since_attach().items():
            out.append(Observation(hits, {n.CACHE_NAME: name, n.CACHE_RESULT: n.CACHE_HIT}))
            out.append(Observation(misses, {n.CACHE_NAME: name, n.CACHE_RESULT: n.CACHE_MISS}))
        return out

    def observe_evictions(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(evictions, {n.CACHE_NAME: name})
            for name, (_hits, _misses, evictions) in since_attach().items()
        ]

    meter = meter_provider.get_meter(SCOPE_NAME, __version__)
    relay.observe(
        meter,
        "counter",
        n.CACHE_REQUESTS,
        observe_requests,
        owner=owner,
        unit=n.UNIT_REQUESTS,
        description="Cache lookups by result",
    )
    relay.observe(
        meter,
        "counter",
        n.CACHE_EVICTIONS,
        observe_evictions,
        owner=owner,
        unit=n.UNIT_EVICTIONS,
        description="Entries evicted from a cache",
    )
