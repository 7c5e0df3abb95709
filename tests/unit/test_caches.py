"""otel_perf.caches with real cachetools caches and functools.lru_cache functions."""

from __future__ import annotations

import copy
import functools
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import cachetools
import pytest

import otel_perf
import otel_perf.testing
from otel_perf import _semconv as n
from otel_perf._integrations import lru_cache_sources as _cache_sources
from otel_perf.caches import InstrumentedCache, instrument_cache, observe_lru_cache


@pytest.fixture(autouse=True)
def no_observed_functions() -> Iterator[None]:
    otel_perf.testing.reset()
    yield
    otel_perf.testing.reset()


def stats(name: str) -> dict[str, Any]:
    entry: dict[str, Any] = otel_perf.get_all_metrics()["cache_metrics"][name]
    return entry


def counts(name: str) -> tuple[int, int, int, int]:
    entry = stats(name)
    return entry["hits"], entry["misses"], entry["evictions"], entry["size_rejections"]


class Clock:
    """A cachetools ``timer``: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lru_cache_behind_cachetools_cached() -> None:
    cache = instrument_cache(cachetools.LRUCache(maxsize=2), "lru")
    calls: list[int] = []

    @cachetools.cached(cache)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    results = [double(x) for x in (1, 2, 1, 3, 4, 1)]
    assert results == [2, 4, 2, 6, 8, 2]
    assert calls == [1, 2, 3, 4, 1]
    # 1 miss, 2 miss, 1 hit, 3 miss (evicts 2), 4 miss (evicts 1), 1 miss (evicts 3)
    assert counts("lru") == (1, 5, 3, 0)
    entry = stats("lru")
    assert entry["total_requests"] == 6
    assert entry["hit_rate"] == 16.67


def test_ttl_expiry_counts_as_eviction() -> None:
    clock = Clock()
    cache = instrument_cache(cachetools.TTLCache(maxsize=10, ttl=5, timer=clock), "ttl")
    cache["a"] = 1
    cache["b"] = 2
    assert cache["a"] == 1
    clock.now = 10.0
    assert cache.get("a") is None  # expired: a miss
    cache["c"] = 3  # the write expires a and b
    assert len(cache) == 1
    assert counts("ttl") == (1, 1, 2, 0)
    clock.now = 20.0
    assert len(cache) == 0  # len() expires c too
    assert counts("ttl") == (1, 1, 3, 0)


def test_lfu_evictions_and_program_removals() -> None:
    cache = instrument_cache(cachetools.LFUCache(maxsize=2), "lfu")
    cache["a"] = 1
    cache["b"] = 2
    _ = cache["a"], cache["a"]
    cache["c"] = 3  # evicts b, the least frequently used
    assert "b" not in cache
    assert sorted(cache) == ["a", "c"]
    del cache["c"]  # the program's own removals are not evictions
    cache.pop("a")
    cache["d"] = 4
    cache.clear()
    assert counts("lfu") == (2, 0, 1, 0)


@pytest.mark.parametrize("lock", [None, threading.Lock()], ids=["plain", "locked"])
def test_size_rejection_is_counted_and_behaviour_is_unchanged(lock: Any) -> None:
    def build(wrap: bool) -> tuple[Any, Any]:
        inner = cachetools.LRUCache(maxsize=10, getsizeof=len)
        cache = instrument_cache(inner, "sized") if wrap else inner

        @cachetools.cached(cache, lock=lock)
        def echo(text: str) -> str:
            return text

        return inner, echo

    plain_cache, plain = build(wrap=False)
    wrapped_cache, wrapped = build(wrap=True)
    inputs = ["x" * 20, "abc", "abc", "y" * 11, "abcd"]
    assert [wrapped(s) for s in inputs] == [plain(s) for s in inputs]
    assert dict(wrapped_cache) == dict(plain_cache) == {("abc",): "abc", ("abcd",): "abcd"}
    # lookups: 20x miss, abc miss, abc hit, 11y miss, abcd miss; two values were too large
    assert counts("sized") == (1, 4, 0, 2)


def test_direct_write_of_a_too_large_value_raises_like_the_cache() -> None:
    inner = cachetools.Cache(maxsize=3, getsizeof=len)
    cache = instrument_cache(inner, "direct")
    with pytest.raises(ValueError, match="value too large"):
        cache["k"] = "long value"
    with pytest.raises(ValueError, match="value too large"):
        cache.setdefault("k", "long value")
    with pytest.raises(ValueError, match="non-negative"):  # not a size rejection
        instrument_cache(cachetools.Cache(maxsize=3, getsizeof=lambda v: -1), "neg")["k"] = 1
    assert "k" not in cache
    assert counts("direct")[3] == 2


def test_any_mutable_mapping_and_what_is_not_a_lookup() -> None:
    cache: InstrumentedCache[str, int] = instrument_cache({}, "dict")
    cache["a"] = 1
    assert cache["a"] == 1
    assert cache.get("zzz", 7) == 7
    with pytest.raises(KeyError):
        _ = cache["missing"]
    # membership, iteration, views and setdefault on a present key are not lookups
    assert "a" in cache
    assert list(cache) == ["a"]
    assert list(cache.items()) == [("a", 1)]
    assert list(cache.values()) == [1]
    assert cache.setdefault("a", 5) == 1
    assert cache == {"a": 1}
    assert counts("dict") == (1, 2, 0, 0)
    with pytest.raises(TypeError, match="MutableMapping"):
        instrument_cache([], "list")  # type: ignore[arg-type]


def test_wrapper_exposes_the_cache_and_renames() -> None:
    inner = cachetools.LRUCache(maxsize=1)
    cache = instrument_cache(inner, "first")
    assert isinstance(inner, cachetools.LRUCache)
    assert type(inner).__name__ == "LRUCache"
    assert (cache.maxsize, cache.currsize) == (1, 0)
    renamed = instrument_cache(cache, "second")
    assert renamed.cache is inner
    renamed["a"] = 1
    renamed["b"] = 2  # evicts a
    assert counts("second")[2] == 1
    assert "first" not in otel_perf.get_all_metrics()["cache_metrics"]


def test_copies_keep_counting_and_pickles_are_plain_caches() -> None:
    inner = cachetools.TTLCache(maxsize=1, ttl=60)
    instrument_cache(inner, "copied")
    inner["a"] = 1
    twin = copy.copy(inner)
    twin["b"] = 2  # evicts a from the copy only
    assert "a" in inner
    assert "a" not in twin
    restored = pickle.loads(pickle.dumps(inner))  # noqa: S301 - our own bytes
    assert type(restored) is cachetools.TTLCache
    assert restored["a"] == 1
    restored["c"] = 3  # a plain cache again: not counted
    assert counts("copied")[2] == 1


def test_observe_lru_cache_costs_nothing_per_call() -> None:
    @functools.lru_cache(maxsize=2)
    def square(x: int) -> int:
        return x * x

    assert observe_lru_cache(square, "squares") is square  # no wrapper: calls are untouched
    assert observe_lru_cache(square, "squares") is square
    for x in (1, 1, 2, 3, 1):
        square(x)
    # misses 1, 2, 3, 1; the hit on 1; two entries evicted (4 misses, 2 kept)
    assert counts("squares") == (1, 4, 2, 0)
    square.cache_clear()  # resets cache_info(); the counters stay monotonic
    square(5)
    square(5)
    assert counts("squares") == (2, 5, 2, 0)


def test_unbounded_lru_cache_never_evicts() -> None:
    @functools.cache
    def ident(x: int) -> int:
        return x

    observe_lru_cache(ident, "unbounded")
    for x in range(10):
        ident(x)
    assert counts("unbounded") == (0, 10, 0, 0)


def test_lru_counts_restart_with_the_metrics_and_keep_being_observed() -> None:
    @functools.lru_cache(maxsize=8)
    def ident(x: int) -> int:
        return x

    observe_lru_cache(ident, "restart")
    ident(1)
    ident(1)
    assert counts("restart") == (1, 1, 0, 0)
    otel_perf.get_collector().reset_metrics()
    assert counts("restart") == (0, 0, 0, 0)
    ident(1)
    assert counts("restart") == (1, 0, 0, 0)


def test_both_sources_of_one_name_are_summed_across_scopes() -> None:
    @functools.lru_cache(maxsize=8)
    def ident(x: int) -> int:
        return x

    observe_lru_cache(ident, "shared")
    ident(1)
    ident(1)
    otel_perf.record_cache_hit("shared")
    cache = instrument_cache({}, "shared")
    cache.get("nope")
    assert counts("shared") == (2, 2, 0, 0)
    data = otel_perf.configure().pipeline.collect()
    scopes = {
        (scope_metrics.scope.name, metric.unit)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == n.CACHE_REQUESTS
    }
    assert scopes == {(n.METER_NAME, n.UNIT_REQUESTS), (_cache_sources.SCOPE_NAME, n.UNIT_REQUESTS)}


def test_observe_rejects_functions_without_statistics() -> None:
    with pytest.raises(TypeError, match="cache_info"):
        observe_lru_cache(len, "len")


def test_a_collected_function_is_left_out_of_later_configurations() -> None:
    import gc

    @functools.lru_cache(maxsize=8)
    def ident(x: int) -> int:
        return x

    observe_lru_cache(ident, "ephemeral")
    ident(1)
    assert counts("ephemeral") == (0, 1, 0, 0)
    del ident
    gc.collect()
    assert counts("ephemeral") == (0, 1, 0, 0)  # this configuration saw it: totals stay
    otel_perf.get_collector().reset_metrics()
    assert "ephemeral" not in otel_perf.get_all_metrics()["cache_metrics"]
