"""The list-at-a-time bucket arithmetic in ``_exphist`` gives exactly what the straightforward
per-bucket loops give (the reference below is the original implementation), on random
histograms of every shape: internal and padding zeros, exact zeros, negative offsets, merges and
differences across scales."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from otel_perf import _exphist
from otel_perf._exphist import Hist
from otel_perf._latency import round2
from otel_perf._semconv import EXPONENTIAL_MAX_SIZE

# --- reference: the original per-bucket implementation ------------------------------------------


def ref_from_point(point: ExponentialHistogramDataPoint) -> Hist:
    counts = point.positive.bucket_counts
    first = 0
    last = len(counts)
    while first < last and counts[first] == 0:
        first += 1
    while last > first and counts[last - 1] == 0:
        last -= 1
    if point.count == 0:
        return _exphist.EMPTY
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


def ref_rescaled(hist: Hist, scale: int) -> tuple[int, list[int]]:
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


def ref_add_into(
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


def ref_trimmed(offset: int, counts: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    first, last = 0, len(counts)
    while first < last and counts[first] == 0:
        first += 1
    while last > first and counts[last - 1] == 0:
        last -= 1
    return offset + first, tuple(counts[first:last])


def ref_merge(hists: Iterable[Hist]) -> Hist:
    parts = [h for h in hists if h.count]
    if not parts:
        return _exphist.EMPTY
    if len(parts) == 1:
        return parts[0]
    # The finest scale at which the union of the parts fits EXPONENTIAL_MAX_SIZE buckets.
    scale = min(h.scale for h in parts)
    while True:
        indices = [
            index >> (h.scale - scale)
            for h in parts
            for index in range(h.offset, h.offset + len(h.counts))
        ]
        if not indices or max(indices) - min(indices) < EXPONENTIAL_MAX_SIZE:
            break
        scale -= 1
    acc: list[int] = []
    acc_offset = 0
    for hist in parts:
        offset, counts = ref_rescaled(hist, scale)
        acc, acc_offset = ref_add_into(acc, acc_offset, counts, offset)
    offset, trimmed = ref_trimmed(acc_offset, acc)
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


def ref_subtract(newer: Hist, older: Hist) -> Hist:
    if older.count == 0:
        return newer
    count = newer.count - older.count
    if count <= 0:
        return _exphist.EMPTY
    scale = min(newer.scale, older.scale)
    acc_offset, acc = ref_rescaled(newer, scale)
    old_offset, old_counts = ref_rescaled(older, scale)
    acc, acc_offset = ref_add_into(acc, acc_offset, old_counts, old_offset, sign=-1)
    # A negative bucket would mean the two snapshots are not of one series; never report it.
    acc = [c if c > 0 else 0 for c in acc]
    offset, counts = ref_trimmed(acc_offset, acc)
    zero_count = max(newer.zero_count - older.zero_count, 0)
    if zero_count:
        low = 0.0
    elif counts:
        low = max(_exphist.lower_bound(offset, scale), newer.min)
    else:
        low = newer.min
    high = min(_exphist.lower_bound(offset + len(counts), scale), newer.max) if counts else 0.0
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


def ref_quantiles(hist: Hist, qs: Sequence[float]) -> list[float]:
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
    values = ref_values_at_ranks(hist, sorted(wanted))
    out = []
    for low, frac in plans:
        value = values[low]
        if frac > 0.0:
            value += frac * (values[low + 1] - value)
        out.append(value)
    return out


def ref_values_at_ranks(hist: Hist, ranks: list[int]) -> dict[int, float]:
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


# --- random inputs -------------------------------------------------------------------------------


def _random_hist(rng: random.Random, scale: int | None = None) -> Hist:
    scale = rng.randint(0, 6) if scale is None else scale
    size = rng.randint(0, 40)
    counts = [rng.choice((0, 0, 1, 2, 5, 100)) for _ in range(size)]
    if counts:
        counts[0] = counts[0] or 1
        counts[-1] = counts[-1] or 3
    offset = rng.randint(-300, 300)
    zero = rng.choice((0, 0, 0, 4))
    total = zero + sum(counts)
    if total == 0:
        return _exphist.EMPTY
    low = 0.0 if zero else _exphist.lower_bound(offset, scale) * 1.01
    high = _exphist.lower_bound(offset + len(counts), scale) * 0.99 if counts else 0.0
    return Hist(scale, zero, offset, tuple(counts), total, rng.random() * 100, low, max(high, low))


def _grown(rng: random.Random, base: Hist) -> Hist:
    """A later cumulative snapshot of ``base``: same or lower scale, only more counts."""
    extra = _random_hist(rng, base.scale)
    merged = ref_merge([base, extra])
    lower = merged.scale - rng.choice((0, 0, 1, 3))
    offset, counts = ref_rescaled(merged, lower)
    return Hist(
        lower,
        merged.zero_count,
        offset,
        tuple(counts),
        merged.count,
        merged.sum,
        merged.min,
        merged.max,
    )


@pytest.mark.parametrize("seed", range(40))
def test_merge_subtract_and_quantiles_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        parts = [_random_hist(rng) for _ in range(rng.randint(0, 4))]
        assert _exphist.merge(parts) == ref_merge(parts)
        twice = [*parts, *parts]  # the very same histograms twice: each counted twice
        assert _exphist.merge(twice) == ref_merge(twice)
        older = _random_hist(rng)
        newer = _grown(rng, older)
        assert _exphist.subtract(newer, older) == ref_subtract(newer, older)
        # Snapshots of different series (negative buckets) are clamped the same way too.
        other = _random_hist(rng)
        assert _exphist.subtract(other, older) == ref_subtract(other, older)
        for hist in (*parts, newer, _exphist.subtract(newer, older)):
            qs = [0.0, 0.5, 0.95, 0.99, 1.0, rng.random()]
            assert _exphist.quantiles(hist, qs) == ref_quantiles(hist, qs)


@pytest.mark.parametrize("seed", range(20))
def test_merge_reusing_rescaled_parts_matches_the_reference(seed: int) -> None:
    # A snapshot merges a tool's changed series with its unchanged ones: the unchanged parts'
    # rescaled counts come from the reuse cache, never from a different histogram.
    rng = random.Random(seed)
    reuse: dict[tuple[int, int], tuple[Hist, int, Sequence[int]]] = {}
    steady = [_random_hist(rng) for _ in range(rng.randint(1, 3))]
    first = changing = _random_hist(rng)
    for _ in range(10):
        parts = [changing, *steady]
        assert _exphist.merge(parts, reuse) == ref_merge(parts)
        assert _exphist.merge(parts, reuse) == ref_merge(parts)  # all from the cache
        changing = _grown(rng, first)
    # An entry whose key matches but whose histogram is another object is not used.
    for key, (_hist, offset, counts) in list(reuse.items()):
        reuse[key] = (_random_hist(rng), offset + 1, [*counts, 7])
    parts = [changing, *steady]
    assert _exphist.merge(parts, reuse) == ref_merge(parts)


def _moved(hist: Hist, offset: int) -> Hist:
    """``hist`` with its buckets starting at ``offset`` (min and max moved with them)."""
    factor = _exphist.lower_bound(offset, hist.scale) / _exphist.lower_bound(
        hist.offset, hist.scale
    )
    return Hist(
        hist.scale,
        hist.zero_count,
        offset,
        hist.counts,
        hist.count,
        hist.sum,
        hist.min * factor if hist.min else 0.0,
        hist.max * factor,
    )


def _grown_inside(rng: random.Random, base: Hist) -> Hist:
    """A later cumulative snapshot of ``base`` with its new values inside its bucket range."""
    counts = [c + rng.choice((0, 0, 1, 3)) for c in base.counts]
    return Hist(
        base.scale,
        base.zero_count + rng.choice((0, 0, 2)),
        base.offset,
        tuple(counts),
        base.count + sum(counts) - sum(base.counts),
        base.sum + rng.random(),
        base.min * rng.choice((1.0, 0.99, -1.0)),
        base.max * rng.choice((1.0, 1.01)),
    )


@pytest.mark.parametrize("seed", range(30))
def test_merge_onto_the_other_parts_sum_matches_the_reference(seed: int) -> None:
    # What DocumentCache.merged does when one series changed inside its range at the merge's
    # scale: the other parts' sum at that scale, plus the changed one.
    rng = random.Random(seed)
    made = 0
    for _ in range(40):
        parts = [_random_hist(rng, rng.choice((2, 2, 4))) for _ in range(rng.randint(2, 4))]
        parts = [part for part in parts if part.count]
        if len(parts) < 2:
            continue
        scale = ref_merge(parts).scale
        index = rng.randrange(len(parts))
        if parts[index].scale != scale or not parts[index].counts:
            continue
        rest = _exphist.rest_at(parts, index, scale)
        for _ in range(3):
            parts = [*parts[:index], _grown_inside(rng, parts[index]), *parts[index + 1 :]]
            assert _exphist.merge_onto(parts, index, rest) == ref_merge(parts)
            made += 1
    assert made >= 3  # the case it is for does come up


@pytest.mark.parametrize("seed", range(6))
def test_from_point_matches_the_reference_on_real_sdk_points(seed: int) -> None:
    rng = random.Random(seed)
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation(160))],
    )
    histogram = provider.get_meter("t").create_histogram("h")
    try:
        for _ in range(6):
            for series in range(8):
                spread = rng.choice((0.01, 0.3, 2.0))
                for _ in range(rng.randint(0, 60)):
                    value = rng.lognormvariate(rng.uniform(-8, 3), spread)
                    histogram.record(rng.choice((value, value, 0.0)), {"s": series})
            data = reader.get_metrics_data()
            assert data is not None
            points = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
            for point in points:
                assert isinstance(point, ExponentialHistogramDataPoint)
                assert _exphist.from_point(point) == ref_from_point(point)
    finally:
        provider.shutdown()


@pytest.mark.parametrize("seed", range(6))
def test_from_point_with_the_series_previous_buckets_matches_the_reference(seed: int) -> None:
    # A busy snapshot converts a changed series knowing its buckets of the last collection;
    # that only shortens the search for the SDK's zero padding, whatever the hint holds.
    rng = random.Random(seed)
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation(160))],
    )
    histogram = provider.get_meter("t").create_histogram("h")
    previous: dict[object, Hist] = {}
    try:
        for _ in range(8):
            for series in range(6):
                spread = rng.choice((0.01, 0.3, 2.0))
                for _ in range(rng.randint(0, 40)):
                    value = rng.lognormvariate(rng.uniform(-8, 3), spread)
                    histogram.record(rng.choice((value, value, 0.0)), {"s": series})
            data = reader.get_metrics_data()
            assert data is not None
            points = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
            for point in points:
                assert isinstance(point, ExponentialHistogramDataPoint)
                key = point.attributes["s"] if point.attributes else None
                expected = ref_from_point(point)
                hint = previous.get(key)
                assert _exphist.from_point(point, hint) == expected
                # Not the series' own past: still the same result.
                assert _exphist.from_point(point, _random_hist(rng, point.scale)) == expected
                previous[key] = expected
    finally:
        provider.shutdown()


def test_round2_is_round_to_two_decimals() -> None:
    # The document's numbers are rounded by _latency.round2, a cheaper round(x, 2): the same
    # float (and sign of zero) for every value, ties and their neighbours included.
    rng = random.Random(5)
    values = [0.0, -0.0, -1.234, math.inf, -math.inf, 1e11, 1e12, 1e300, 5e-324, 0.005, 1.005]
    values += [2.675, 0.125, 0.375, 99999999.995, 1e9 - 0.005, 86_400_000.0]
    for _ in range(20_000):
        values.append(rng.lognormvariate(3.0, 4.0))
        values.append(rng.uniform(0.0, 100.0))
        tie = rng.randrange(0, 10**9) / 100.0 + 0.005  # the nearest float to a tie
        values += [tie, math.nextafter(tie, 0.0), math.nextafter(tie, math.inf)]
        values.append(100.0 * rng.randrange(1, 10**6) / rng.randrange(1, 10**6))
    for value in values:
        got, want = round2(value), round(value, 2)
        assert (got, math.copysign(1.0, got)) == (want, math.copysign(1.0, want)), value
    assert math.isnan(round2(math.nan))
