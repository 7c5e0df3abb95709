"""Per-series work kept from one snapshot to the next, so polling an idle server is cheap.

A :class:`DocumentCache`, kept by the pipeline between snapshots, lets a series whose cumulative
count has not changed skip the bucket conversion, the merge and the percentile estimate, so
polling an idle server costs little more than the SDK's own collect.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from operator import is_
from typing import Any, TypeVar

from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint
from opentelemetry.util.types import Attributes

from otel_perf._exphist import Hist, Rescaled, from_point, merge, merge_onto, rest_at
from otel_perf._latency import LatencyValues, latency_values

_L = TypeVar("_L")  # what a handler derives from a series' attributes

#: A merge kept between snapshots: its parts, the merge, and (the index of the part that
#: changed, the other parts' sum at the merge's scale) once one did.
_Rest = tuple[int, tuple[int, tuple[int, ...]]]
_Merged = tuple[tuple[Hist, ...], Hist, "_Rest | None"]

#: One data point as extraction uses it: count, buckets, sum and the labels of its attributes.
SeriesPoint = tuple[int, Hist, float, _L]


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
        # id(attributes) -> (attributes, sum, (count, buckets, float sum, labels))
        self._points: dict[int, tuple[object, float, SeriesPoint[Any]]] = {}
        self._points_next: dict[int, tuple[object, float, SeriesPoint[Any]]] = {}
        self._merged: dict[Hashable, _Merged] = {}
        self._merged_next: dict[Hashable, _Merged] = {}
        self._latency: dict[Hashable, tuple[Hist, LatencyValues]] = {}
        self._latency_next: dict[Hashable, tuple[Hist, LatencyValues]] = {}
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
        """The point's buckets and ``classify(point.attributes)``, reused when unchanged."""
        ((_count, hist, _sum, labels),) = self.series_points((point,), classify)
        return hist, labels

    def series_points(
        self,
        points: Iterable[ExponentialHistogramDataPoint],
        classify: Callable[[Attributes], _L],
    ) -> list[SeriesPoint[_L]]:
        """``(count, buckets, sum, classify(attributes))`` of each point, reused when unchanged.

        A series' attributes never change, so neither does what ``classify`` derives from them
        (each metric's handler passes its own ``classify``, and attributes belong to one metric).
        One call per metric, not per point: an unchanged series then costs a dictionary lookup
        and a comparison, and a changed one the bucket conversion.
        """
        previous, kept = self._points, self._points_next
        out: list[SeriesPoint[_L]] = []
        for point in points:
            attributes = point.attributes
            count, total = point.count, point.sum
            if not attributes:  # no identity to key on
                out.append((count, from_point(point), float(total), classify(attributes)))
                continue
            key = id(attributes)
            entry = previous.get(key)
            if entry is None or entry[0] is not attributes:
                result = (count, from_point(point), float(total), classify(attributes))
                entry = (attributes, total, result)
            elif entry[2][0] != count or entry[1] != total:
                # Changed: converted again, the last buckets telling where its padding starts.
                result = (count, from_point(point, entry[2][1]), float(total), entry[2][3])
                entry = (attributes, total, result)
            kept[key] = entry
            out.append(entry[2])
        return out

    def merged(self, key: Hashable, parts: Sequence[Hist]) -> Hist:
        """``merge(parts)``, reused while the parts are the same objects."""
        entry = self._merged.get(key)
        if (
            entry is None
            or len(entry[0]) != len(parts)
            or not all(map(is_, entry[0], parts))  # same objects (map: no Python frame per part)
        ):
            entry = self._merge(entry, parts)
        self._merged_next[key] = entry
        return entry[1]

    def _merge(self, entry: _Merged | None, parts: Sequence[Hist]) -> _Merged:
        """A new merge entry: ``(parts, merge(parts), kept sum of the unchanged parts)``.

        When one part changed since ``entry`` and kept its scale and bucket range, at the
        merge's scale, the merge keeps that scale, and the other parts' sum at it is kept
        (made once, then reused while they stay the same): the merge is one addition
        (:func:`~otel_perf._exphist.merge_onto`).
        """
        if entry is not None and len(parts) > 1 and len(entry[0]) == len(parts):
            old_parts, old, rest = entry
            same = list(map(is_, old_parts, parts))
            if same.count(False) == 1:
                index = same.index(False)
                before, now = old_parts[index], parts[index]
                scale = old.scale
                if (
                    now.scale == scale
                    and before.scale == scale
                    and now.offset == before.offset
                    and len(now.counts) == len(before.counts)
                    and now.count
                    and before.count
                ):
                    if rest is None or rest[0] != index:
                        rest = (index, rest_at(parts, index, scale))
                    return (tuple(parts), merge_onto(parts, index, rest[1]), rest)
        # A changed series usually joins unchanged ones (a tool's error series): their counts
        # at the merge's scale are reused, only the changed part is rescaled.
        return (tuple(parts), merge(parts, self._rescales), None)

    def latency(self, key: Hashable, window: Hist) -> LatencyValues:
        """``latency_values(window)``, reused while ``key``'s window is the same object."""
        entry = self._latency.get(key)
        if entry is None or entry[0] is not window:
            entry = (window, latency_values(window))
        self._latency_next[key] = entry
        return entry[1]
