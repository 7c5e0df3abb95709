"""Per-series work kept from one snapshot to the next, so polling an idle server is cheap.

A :class:`DocumentCache`, kept by the pipeline between snapshots, lets a series whose cumulative
count has not changed skip the bucket conversion, the merge and the percentile estimate, so
polling an idle server costs little more than the SDK's own collect.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from operator import is_
from typing import Any, TypeVar

from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint
from opentelemetry.util.types import Attributes

from otel_perf._exphist import Hist, Rescaled, from_point, merge
from otel_perf._latency import latency_fields

_L = TypeVar("_L")  # what a handler derives from a series' attributes


class _Rescales:
    """Rescaled counts of merge parts (an :class:`otel_perf._exphist.RescaleCache`), kept for
    one snapshot after the last one that used them, like the other entries of the cache."""

    def __init__(self) -> None:
        self._old: dict[tuple[int, int], Rescaled] = {}
        self._new: dict[tuple[int, int], Rescaled] = {}

    def begin(self) -> None:
        self._old, self._new = self._new, {}

    def get(self, key: tuple[int, int], /) -> Rescaled | None:
        entry = self._new.get(key)
        if entry is None:
            entry = self._old.get(key)
            if entry is not None:
                self._new[key] = entry
        return entry

    def __setitem__(self, key: tuple[int, int], value: Rescaled, /) -> None:
        self._new[key] = value


class DocumentCache:
    """Per-series results kept from one snapshot to the next (one per pipeline).

    Every entry is checked before use — a data point by the identity of its attributes (the
    SDK keeps one attributes object per series for the series' life) and its cumulative count;
    a merge by the identity of its parts; latency fields by the identity of the window — so a
    stale or missing entry only costs the recomputation, never a wrong figure. Each snapshot
    keeps only the entries it used, so the cache never outgrows the live series. Concurrent
    snapshots (the pipeline serialises them anyway) can only cause extra recomputation.
    """

    def __init__(self) -> None:
        self._points: dict[int, tuple[object, int, float, Hist, Any]] = {}
        self._points_next: dict[int, tuple[object, int, float, Hist, Any]] = {}
        self._merged: dict[Hashable, tuple[tuple[Hist, ...], Hist]] = {}
        self._merged_next: dict[Hashable, tuple[tuple[Hist, ...], Hist]] = {}
        self._latency: dict[Hashable, tuple[Hist, dict[str, float]]] = {}
        self._latency_next: dict[Hashable, tuple[Hist, dict[str, float]]] = {}
        self._rescales = _Rescales()

    def begin(self) -> None:
        """Start a snapshot: what the previous one used becomes what this one may reuse."""
        self._points, self._points_next = self._points_next, {}
        self._merged, self._merged_next = self._merged_next, {}
        self._latency, self._latency_next = self._latency_next, {}
        self._rescales.begin()

    def series(
        self, point: ExponentialHistogramDataPoint, classify: Callable[[Attributes], _L]
    ) -> tuple[Hist, _L]:
        """The point's buckets and ``classify(point.attributes)``, reused when unchanged.

        A series' attributes never change, so neither does what ``classify`` derives from them
        (each metric's handler passes its own ``classify``, and attributes belong to one metric).
        """
        attributes = point.attributes
        if not attributes:
            return from_point(point), classify(attributes)  # no identity to key on
        key = id(attributes)
        entry = self._points.get(key)
        if entry is None or entry[0] is not attributes:
            entry = (attributes, point.count, point.sum, from_point(point), classify(attributes))
        elif entry[1] != point.count or entry[2] != point.sum:
            entry = (attributes, point.count, point.sum, from_point(point), entry[4])
        self._points_next[key] = entry
        labels: _L = entry[4]
        return entry[3], labels

    def merged(self, key: Hashable, parts: Sequence[Hist]) -> Hist:
        entry = self._merged.get(key)
        if (
            entry is None
            or len(entry[0]) != len(parts)
            or not all(map(is_, entry[0], parts))  # same objects (map: no Python frame per part)
        ):
            # A changed series usually joins unchanged ones (a tool's error series): their
            # counts at the merge's scale are reused, only the changed part is rescaled.
            entry = (tuple(parts), merge(parts, self._rescales))
        self._merged_next[key] = entry
        return entry[1]

    def latency(self, key: Hashable, window: Hist) -> dict[str, float]:
        entry = self._latency.get(key)
        if entry is None or entry[0] is not window:
            entry = (window, latency_fields(window))
        self._latency_next[key] = entry
        return entry[1]
