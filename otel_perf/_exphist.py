"""Base-2 exponential histogram arithmetic: merge, difference, percentiles.

An OTel exponential histogram at scale ``s`` has bucket ``i`` covering ``(b**i, b**(i+1)]`` with
``b = 2 ** (2 ** -s)``; a separate zero bucket counts exact zeros. otel-perf never records
negative durations, so only the positive range is used.

Percentiles use the "linear" definition (NumPy's default, Hyndman-Fan type 7): the value at
fractional rank ``q * (n - 1)`` of the sorted sample, interpolated between neighbours. The
k values of a bucket are assumed spread evenly in log space across it (value ``m`` of ``k`` sits
at ``lower * b ** ((m + 0.5) / k)``), which keeps the error well under 1 % for the 4-9 % wide
buckets a 160-bucket histogram settles at, and every estimate is clamped to ``[min, max]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint


@dataclass(frozen=True)
class Hist:
    """An immutable positive-range exponential histogram.

    ``counts[k]`` is the count of bucket index ``offset + k`` at ``scale``; leading and trailing
    empty buckets are trimmed. ``exact_bounds`` says whether ``min``/``max`` are the true
    extremes of the values counted (true for a lifetime histogram, false for a difference of
    two, whose extremes are only known to bucket precision).
    """

    scale: int
    zero_count: int
    offset: int
    counts: tuple[int, ...]
    count: int
    sum: float
    min: float
    max: float
    exact_bounds: bool = True


EMPTY = Hist(
    scale=20, zero_count=0, offset=0, counts=(), count=0, sum=0.0, min=math.inf, max=-math.inf
)


def from_point(point: ExponentialHistogramDataPoint) -> Hist:
    """Convert an SDK data point, dropping the zero padding the SDK adds to its buckets."""
    counts = point.positive.bucket_counts
    first = 0
    last = len(counts)
    while first < last and counts[first] == 0:
        first += 1
    while last > first and counts[last - 1] == 0:
        last -= 1
    if point.count == 0:
        return EMPTY
    return Hist(
        scale=point.scale,
        zero_count=point.zero_count,
        offset=point.positive.offset + first,
        counts=tuple(counts[first:last]),
        count=point.count,
        sum=float(point.sum),
        min=float(point.min),
        max=float(point.max),
    )


def _rescaled(hist: Hist, scale: int) -> tuple[int, list[int]]:
    """Bucket counts of ``hist`` at a scale lower than (or equal to) its own."""
    if not hist.counts:
        return 0, []
    shift = hist.scale - scale
    if shift == 0:
        return hist.offset, list(hist.counts)
    offset = hist.offset >> shift
    out = [0] * (((hist.offset + len(hist.counts) - 1) >> shift) - offset + 1)
    index = hist.offset
    for count in hist.counts:
        out[(index >> shift) - offset] += count
        index += 1
    return offset, out


def _add_into(
    acc: list[int], acc_offset: int, counts: Sequence[int], offset: int, sign: int = 1
) -> tuple[list[int], int]:
    if not counts:
        return acc, acc_offset
    if not acc:
        return [sign * c for c in counts], offset
    low = min(acc_offset, offset)
    high = max(acc_offset + len(acc), offset + len(counts))
    if low < acc_offset or high > acc_offset + len(acc):
        grown = [0] * (high - low)
        grown[acc_offset - low : acc_offset - low + len(acc)] = acc
        acc, acc_offset = grown, low
    start = offset - acc_offset
    for k, count in enumerate(counts):
        acc[start + k] += sign * count
    return acc, acc_offset


def _trimmed(offset: int, counts: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    first, last = 0, len(counts)
    while first < last and counts[first] == 0:
        first += 1
    while last > first and counts[last - 1] == 0:
        last -= 1
    return offset + first, tuple(counts[first:last])


def merge(hists: Iterable[Hist]) -> Hist:
    """Sum histograms (e.g. one tool's success and error series) at their lowest scale."""
    parts = [h for h in hists if h.count]
    if not parts:
        return EMPTY
    if len(parts) == 1:
        return parts[0]
    scale = min(h.scale for h in parts)
    acc: list[int] = []
    acc_offset = 0
    for hist in parts:
        offset, counts = _rescaled(hist, scale)
        acc, acc_offset = _add_into(acc, acc_offset, counts, offset)
    offset, trimmed = _trimmed(acc_offset, acc)
    return Hist(
        scale=scale,
        zero_count=sum(h.zero_count for h in parts),
        offset=offset,
        counts=trimmed,
        count=sum(h.count for h in parts),
        sum=math.fsum(h.sum for h in parts),
        min=min(h.min for h in parts),
        max=max(h.max for h in parts),
        exact_bounds=all(h.exact_bounds for h in parts),
    )


def subtract(newer: Hist, older: Hist) -> Hist:
    """The values counted by cumulative ``newer`` but not yet by the earlier ``older``.

    Cumulative histograms only ever lose scale, so both are brought to the lower of the two
    scales. The result's min/max are the edges of its outermost non-empty buckets, clamped to
    the lifetime extremes of ``newer``: true bounds, at bucket precision.
    """
    if older.count == 0:
        return newer
    count = newer.count - older.count
    if count <= 0:
        return EMPTY
    scale = min(newer.scale, older.scale)
    acc_offset, acc = _rescaled(newer, scale)
    old_offset, old_counts = _rescaled(older, scale)
    acc, acc_offset = _add_into(acc, acc_offset, old_counts, old_offset, sign=-1)
    # A negative bucket would mean the two snapshots are not of one series; never report it.
    acc = [c if c > 0 else 0 for c in acc]
    offset, counts = _trimmed(acc_offset, acc)
    zero_count = max(newer.zero_count - older.zero_count, 0)
    if zero_count:
        low = 0.0
    elif counts:
        low = max(lower_bound(offset, scale), newer.min)
    else:
        low = newer.min
    high = min(lower_bound(offset + len(counts), scale), newer.max) if counts else 0.0
    high = max(high, low)
    return Hist(
        scale=scale,
        zero_count=zero_count,
        offset=offset,
        counts=counts,
        count=count,
        sum=max(newer.sum - older.sum, 0.0),
        min=low,
        max=high,
        exact_bounds=False,
    )


def lower_bound(index: int, scale: int) -> float:
    """Lower edge of bucket ``index`` at ``scale``: ``2 ** (index / 2**scale)``."""
    return float(2.0 ** math.ldexp(index, -scale))


def quantiles(hist: Hist, qs: Sequence[float]) -> list[float]:
    """Estimate the ``qs`` quantiles (each in [0, 1]) of ``hist`` in one pass over its buckets."""
    n = hist.count
    if n == 0:
        return [0.0 for _ in qs]
    # Which ranks (0-based positions in the sorted sample) each quantile needs.
    wanted: set[int] = set()
    plans: list[tuple[int, float]] = []
    for q in qs:
        h = min(max(q, 0.0), 1.0) * (n - 1)
        low = int(h)
        frac = h - low
        wanted.add(low)
        if frac > 0.0:
            wanted.add(low + 1)
        plans.append((low, frac))
    values = _values_at_ranks(hist, sorted(wanted))
    out = []
    for low, frac in plans:
        value = values[low]
        if frac > 0.0:
            value += frac * (values[low + 1] - value)
        out.append(value)
    return out


def _values_at_ranks(hist: Hist, ranks: list[int]) -> dict[int, float]:
    """Estimated value of the sorted sample at each (ascending) rank."""
    values: dict[int, float] = {}
    lo, hi = hist.min, hist.max
    last_rank = hist.count - 1
    pending = iter(ranks)
    rank = next(pending, None)
    # Exact zeros first.
    while rank is not None and rank < hist.zero_count:
        values[rank] = 0.0
        rank = next(pending, None)
    before = hist.zero_count
    step = math.ldexp(1.0, -hist.scale)  # log2 width of one bucket
    index = hist.offset
    for count in hist.counts:
        while rank is not None and rank < before + count:
            position = (rank - before + 0.5) / count
            estimate = 2.0 ** ((index + position) * step)
            values[rank] = min(max(estimate, lo), hi)
            rank = next(pending, None)
        if rank is None:
            break
        before += count
        index += 1
    # Ranks past the buckets (only if counts disagree with ``count``) take the maximum.
    while rank is not None:
        values[rank] = hi if hi >= lo else 0.0
        rank = next(pending, None)
    if hist.exact_bounds:
        if 0 in values:
            values[0] = lo
        if last_rank in values:
            values[last_rank] = hi
    return values
