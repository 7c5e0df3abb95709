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
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate
from operator import add, sub
from typing import TYPE_CHECKING, Final, Protocol

from otel_perf._semconv import EXPONENTIAL_MAX_SIZE

if TYPE_CHECKING:  # an annotation only: this module is pure Python, cheap to import
    from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint


class Hist:
    """An immutable positive-range exponential histogram.

    ``counts[k]`` is the count of bucket index ``offset + k`` at ``scale``; leading and trailing
    empty buckets are trimmed. ``exact_bounds`` says whether ``min``/``max`` are the true
    extremes of the values counted (true for a lifetime histogram, false for a difference of
    two, whose extremes are only known to bucket precision).

    A value (equal when every field is equal), written out rather than a frozen dataclass: a
    busy snapshot makes several per changed series, and a frozen dataclass takes twice as long
    to construct (it sets each field through ``object.__setattr__``) and costs a stdio server
    more to import. Nothing assigns a field after construction (``Final``, checked by mypy).
    """

    __slots__ = (
        "count",
        "counts",
        "exact_bounds",
        "max",
        "min",
        "offset",
        "scale",
        "sum",
        "zero_count",
    )

    def __init__(
        self,
        scale: int,
        zero_count: int,
        offset: int,
        counts: tuple[int, ...],
        count: int,
        sum: float,
        min: float,
        max: float,
        exact_bounds: bool = True,
    ) -> None:
        self.scale: Final = scale
        self.zero_count: Final = zero_count
        self.offset: Final = offset
        self.counts: Final = counts
        self.count: Final = count
        self.sum: Final = sum
        self.min: Final = min
        self.max: Final = max
        self.exact_bounds: Final = exact_bounds

    def _fields(self) -> tuple[object, ...]:
        return (
            self.scale,
            self.zero_count,
            self.offset,
            self.counts,
            self.count,
            self.sum,
            self.min,
            self.max,
            self.exact_bounds,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hist):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Hist(scale={self.scale!r}, zero_count={self.zero_count!r}, offset={self.offset!r}, "
            f"counts={self.counts!r}, count={self.count!r}, sum={self.sum!r}, min={self.min!r}, "
            f"max={self.max!r}, exact_bounds={self.exact_bounds!r})"
        )


EMPTY = Hist(
    scale=20, zero_count=0, offset=0, counts=(), count=0, sum=0.0, min=math.inf, max=-math.inf
)


def from_point(point: ExponentialHistogramDataPoint, previous: Hist | None = None) -> Hist:
    """Convert an SDK data point, dropping the zero padding the SDK adds to its buckets.

    ``previous``: the series' buckets from an earlier collection, when known. A cumulative
    series' buckets only fill up while its scale stays, so the last one it used then is
    usually still its last or close to it: the padding is then found by looking only past it
    (a busy snapshot converts every changed series). The hint is checked, never trusted: with
    any ``previous`` the result is the same.
    """
    if point.count == 0:
        return EMPTY
    positive = point.positive
    offset, counts = positive.offset, positive.bucket_counts
    end = -1
    if previous is not None and previous.scale == point.scale and previous.counts:
        known = previous.offset + len(previous.counts) - offset
        if 0 < known <= len(counts) and counts[known - 1]:
            # Past a used bucket: the used range ends at ``known`` unless something lies beyond.
            end = _end_of_nonzero(counts, known) if any(counts[known:]) else known
    if end < 0:
        offset, kept = _trimmed(offset, counts)
    else:
        first = _first_nonzero(counts)
        offset, kept = offset + first, tuple(counts[first:end])
    return Hist(
        point.scale,
        point.zero_count,
        offset,
        kept,
        point.count,
        float(point.sum),
        float(point.min),
        float(point.max),
    )


# The bucket arithmetic below works on whole lists with C-level builtins (slicing, any(),
# map(operator.add, ...), itertools.accumulate, bisect) instead of a Python loop per bucket:
# a snapshot does it for every changed series, and per-bucket loops made the JSON view cost
# twice the SDK's own collect (see benchmarks/RESULTS.md).


def _first_nonzero(counts: Sequence[int]) -> int:
    """Index of the first non-zero count (``len(counts)`` if there is none)."""
    if counts and counts[0]:
        return 0  # the usual case: SDK points and merges start at their first used bucket
    low, high = 0, len(counts)
    while low < high:  # invariant: counts[:low] are all zero; counts[high:] hold a non-zero
        middle = (low + high) // 2
        if any(counts[low : middle + 1]):
            high = middle
        else:
            low = middle + 1
    return low


def _end_of_nonzero(counts: Sequence[int], start: int) -> int:
    """Index just past the last non-zero count at or after ``start`` (``start`` if none)."""
    low, high = start, len(counts)
    while low < high:  # invariant: counts[high:] are all zero
        middle = (low + high) // 2
        if any(counts[middle:high]):
            low = middle + 1
        else:
            high = middle
    return high


def _trimmed(offset: int, counts: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    if counts and counts[0] and counts[-1]:
        return offset, tuple(counts)  # the usual case for merges: nothing to trim
    first = _first_nonzero(counts)
    last = _end_of_nonzero(counts, first)
    return offset + first, tuple(counts[first:last])


def _rescaled(hist: Hist, scale: int) -> tuple[int, list[int]]:
    """Bucket counts of ``hist`` at a scale lower than (or equal to) its own."""
    if not hist.counts:
        return 0, []
    offset = hist.offset
    shift = hist.scale - scale
    if shift > 2:
        # A large drop (a lone error series at scale 20 joining a tool's series at scale 4):
        # move each bucket once, instead of halving the list ``shift`` times.
        new_offset = offset >> shift
        out = [0] * (((offset + len(hist.counts) - 1) >> shift) - new_offset + 1)
        for index, count in enumerate(hist.counts, offset):
            out[(index >> shift) - new_offset] += count
        return new_offset, out
    counts = list(hist.counts)
    for _ in range(shift):
        # One scale down, bucket i goes to i >> 1: pad to an even start and an even length,
        # then add neighbours pairwise.
        if offset & 1:
            counts.insert(0, 0)
            offset -= 1
        if len(counts) & 1:
            counts.append(0)
        counts = list(map(add, counts[0::2], counts[1::2]))
        offset >>= 1
    return offset, counts


def rescaled(hist: Hist, scale: int) -> Hist:
    """``hist``'s bucket counts at ``scale`` (not above its own); sum and extremes are dropped."""
    offset, counts = _rescaled(hist, scale) if hist.scale != scale else (hist.offset, hist.counts)
    return Hist(
        scale=scale,
        zero_count=0,
        offset=offset,
        counts=tuple(counts),
        count=hist.count,
        sum=0.0,
        min=0.0,
        max=0.0,
    )


def _aligned(
    first: Sequence[int], first_offset: int, second: Sequence[int], second_offset: int
) -> tuple[int, list[int], list[int]]:
    """Both count lists padded with zeros to one common index range."""
    low = min(first_offset, second_offset)
    high = max(first_offset + len(first), second_offset + len(second))
    a = [0] * (first_offset - low)
    a += first
    a += [0] * (high - first_offset - len(first))
    b = [0] * (second_offset - low)
    b += second
    b += [0] * (high - second_offset - len(second))
    return low, a, b


def _common_scale(parts: Sequence[Hist]) -> int:
    """The finest scale at which all of ``parts`` fit in one series' worth of buckets together.

    Each SDK series fits its own buckets, but two series of one tool can sit far apart at a
    fine scale (a single 10 ms call and a single 1 us failure are ~14 million buckets apart at
    scale 20), so a merge lowers the scale until their union fits, as the SDK itself would.
    """
    # A merge keeps at least the default series size's span (EXPONENTIAL_MAX_SIZE), or the
    # longest part's span when series were configured with more (METRICS_HISTOGRAM_BUCKETS).
    # Plain loops and comparisons, not generator expressions or min()/max() calls: a merge has
    # a handful of parts, a busy snapshot merges every changed tool, and those calls made
    # merging cost twice as much.
    limit = EXPONENTIAL_MAX_SIZE
    scale = parts[0].scale
    spans: list[tuple[int, int, int]] = []
    for hist in parts:
        size = len(hist.counts)
        if size > limit:  # noqa: PLR1730 - see above: a comparison is cheaper than max()
            limit = size
        if hist.scale < scale:  # noqa: PLR1730
            scale = hist.scale
        if size:
            spans.append((hist.scale, hist.offset, hist.offset + size - 1))
    while spans:
        own, first, last = spans[0]
        low = first >> (own - scale)
        high = last >> (own - scale)
        for own, first, last in spans:
            shift = own - scale
            if first >> shift < low:  # noqa: PLR1730
                low = first >> shift
            if last >> shift > high:  # noqa: PLR1730
                high = last >> shift
        if high - low < limit:
            break
        scale -= 1
    return scale


Rescaled = tuple[Hist, int, Sequence[int]]


class RescaleCache(Protocol):
    """Rescaled bucket counts kept between merges: ``(id(hist), scale) -> (hist, offset,
    counts)`` (a ``dict`` is one). The hist is kept in the entry and checked by identity, so
    a reused id never matches."""

    def get(self, key: tuple[int, int], /) -> Rescaled | None: ...

    def __setitem__(self, key: tuple[int, int], value: Rescaled, /) -> None: ...


def merge(hists: Iterable[Hist], reuse: RescaleCache | None = None) -> Hist:
    """Sum histograms (e.g. one tool's success and error series) at their lowest scale.

    With ``reuse``, a part's counts rescaled to the common scale are looked up there before
    they are computed (and stored after): a tool's unchanged error series are rescaled once,
    not at every snapshot that merges them with its changed success series.
    """
    parts = [h for h in hists if h.count]
    if not parts:
        return EMPTY
    if len(parts) == 1:
        return parts[0]
    scale = _common_scale(parts)
    pieces: list[tuple[int, Sequence[int]]] = []
    zero_count = count = 0
    low_value, high_value = parts[0].min, parts[0].max  # as min() and max() of them all start
    exact_bounds = True
    for hist in parts:
        zero_count += hist.zero_count
        count += hist.count
        if hist.min < low_value:  # noqa: PLR1730 - as in _common_scale
            low_value = hist.min
        if hist.max > high_value:  # noqa: PLR1730
            high_value = hist.max
        exact_bounds = exact_bounds and hist.exact_bounds
        if not hist.counts:
            continue
        if hist.scale == scale:
            pieces.append((hist.offset, hist.counts))
            continue
        key = (id(hist), scale)
        entry = reuse.get(key) if reuse is not None else None
        if entry is None or entry[0] is not hist:
            entry = (hist, *_rescaled(hist, scale))
            if reuse is not None:
                reuse[key] = entry
        pieces.append((entry[1], entry[2]))
    offset, counts = _summed(pieces) if pieces else (0, ())
    return Hist(
        scale,
        zero_count,
        offset,
        counts,
        count,
        math.fsum([h.sum for h in parts]),
        low_value,
        high_value,
        exact_bounds,
    )


def rest_at(parts: Sequence[Hist], skip: int, scale: int) -> tuple[int, tuple[int, ...]]:
    """The bucket-wise sum of ``parts`` but ``parts[skip]``, at ``scale`` (not above any of
    theirs): ``(offset, counts)``, for :func:`merge_onto`."""
    pieces: list[tuple[int, Sequence[int]]] = []
    for index, hist in enumerate(parts):
        if index == skip or not hist.count or not hist.counts:
            continue
        pieces.append((hist.offset, hist.counts) if hist.scale == scale else _rescaled(hist, scale))
    return _summed(pieces) if pieces else (0, ())


def merge_onto(parts: Sequence[Hist], index: int, rest: tuple[int, Sequence[int]]) -> Hist:
    """``merge(parts)`` when it is known to keep ``parts[index]``'s scale, and ``rest`` is
    :func:`rest_at` of the other parts at that scale: one addition instead of a merge.

    A busy snapshot merges every changed tool's series again, usually with one of them changed
    (a tool's success series) and the others the same objects as last time; while the changed
    one keeps its scale and bucket range, so does the merge (the common scale depends only on
    the parts' ranges), and the other parts' sum can be kept (see DocumentCache.merged).
    """
    changed = parts[index]
    pieces: list[tuple[int, Sequence[int]]] = [(changed.offset, changed.counts)]
    if rest[1]:
        pieces.append(rest)
    offset, counts = _summed(pieces)
    zero_count = count = 0
    low_value, high_value = parts[0].min, parts[0].max  # as merge() computes them
    exact_bounds = True
    for hist in parts:
        if not hist.count:
            continue
        zero_count += hist.zero_count
        count += hist.count
        if hist.min < low_value:  # noqa: PLR1730 - as in _common_scale
            low_value = hist.min
        if hist.max > high_value:  # noqa: PLR1730
            high_value = hist.max
        exact_bounds = exact_bounds and hist.exact_bounds
    return Hist(
        changed.scale,
        zero_count,
        offset,
        counts,
        count,
        math.fsum([h.sum for h in parts if h.count]),
        low_value,
        high_value,
        exact_bounds,
    )


def _summed(pieces: Sequence[tuple[int, Sequence[int]]]) -> tuple[int, tuple[int, ...]]:
    """The bucket-wise sum of ``(offset, counts)`` pieces at one scale, trimmed."""
    # The longest piece is copied into place and the others added to it: adding into zeros
    # would cost one more C-level pass over the widest part of the range.
    base_index = 0
    base_first, base = pieces[0]
    low, high = base_first, base_first + len(base)
    for index, (first, counts) in enumerate(pieces):
        if len(counts) > len(base):
            base_index, base_first, base = index, first, counts
        if first < low:  # noqa: PLR1730 - as in _common_scale
            low = first
        if first + len(counts) > high:  # noqa: PLR1730
            high = first + len(counts)
    acc = [0] * (base_first - low)
    acc += base
    acc += [0] * (high - base_first - len(base))
    for index, (first, counts) in enumerate(pieces):
        if index == base_index:
            continue
        start = first - low
        end = start + len(counts)
        acc[start:end] = map(add, acc[start:end], counts)
    return _trimmed(low, acc)


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
    new_offset, new_counts = _rescaled(newer, scale)
    old_offset, old_counts = _rescaled(older, scale)
    if not old_counts:
        acc, acc_offset = new_counts, new_offset
    elif not new_counts:
        acc, acc_offset = [-c for c in old_counts], old_offset
    else:
        acc_offset, left, right = _aligned(new_counts, new_offset, old_counts, old_offset)
        acc = list(map(sub, left, right))
    if acc and min(acc) < 0:
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
    """Estimate the ``qs`` quantiles (each in [0, 1]) of ``hist``.

    One cumulative pass over the buckets, then a binary search per rank. The ranks away from
    the ends and the exact zeros (nearly all of them) are estimated inline, with comparisons
    for the clamping, rather than through a helper function with ``min``/``max`` calls: a busy
    snapshot estimates three quantiles for every changed tool, and those calls and checks were
    most of the time it took.
    """
    n = hist.count
    if n == 0:
        return [0.0 for _ in qs]
    lo, hi = hist.min, hist.max
    last_rank = n - 1
    zero_count = hist.zero_count
    counts = hist.counts
    offset = hist.offset
    # starts[k]: how many bucketed values sit in the buckets before bucket k (one C-level pass).
    starts = list(accumulate(counts, initial=0))
    bucketed = starts[-1]
    step = math.ldexp(1.0, -hist.scale)  # log2 width of one bucket
    exact = hist.exact_bounds
    # Ranks in [inner_low, inner_high) are estimated from their bucket; the others are a known
    # extreme, an exact zero, or past the buckets (see _edge_estimate).
    inner_low, inner_high = zero_count, zero_count + bucketed
    if exact:
        if inner_low < 1:  # noqa: PLR1730 - see the docstring
            inner_low = 1
        if inner_high > last_rank:  # noqa: PLR1730
            inner_high = last_rank
    out = []
    for q in qs:
        # The value at fractional rank h of the sorted sample, interpolated between neighbours.
        h = (q if 0.0 <= q <= 1.0 else min(max(q, 0.0), 1.0)) * last_rank
        low = int(h)
        frac = h - low
        value = 0.0
        for rank in (low, low + 1) if frac > 0.0 else (low,):
            # The estimated value of the sorted sample at ``rank`` (0-based).
            if inner_low <= rank < inner_high:
                position = rank - zero_count
                k = bisect_right(starts, position) - 1
                estimate = 2.0 ** ((offset + k + (position - starts[k] + 0.5) / counts[k]) * step)
                # min(max(estimate, lo), hi), as comparisons
                if lo > estimate:  # noqa: PLR1730 - see the docstring
                    estimate = lo
                if hi < estimate:  # noqa: PLR1730
                    estimate = hi
            else:
                estimate = _edge_estimate(hist, rank, bucketed)
            if rank == low:
                value = estimate
            else:
                value += frac * (estimate - value)
        out.append(value)
    return out


def _edge_estimate(hist: Hist, rank: int, bucketed: int) -> float:
    """The value at a rank that no bucket estimates: the true extremes when they are known
    (checked first, for one value), an exact zero, or past the buckets (only if the counts
    disagree with ``count``) the maximum."""
    lo, hi = hist.min, hist.max
    if hist.exact_bounds and rank == hist.count - 1:
        return hi
    if hist.exact_bounds and rank == 0:
        return lo
    if rank < hist.zero_count:
        return 0.0  # exact zeros come first
    return hi if hi >= lo else 0.0
