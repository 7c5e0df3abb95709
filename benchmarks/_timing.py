"""Side-by-side timing on a shared, noisy machine: interleaved rounds, paired ratios, medians.

Every subject is a compiled loop (like :mod:`timeit`) that runs its statement ``n`` times and
returns the nanoseconds of CPU time the running thread spent on it. One *round* runs every
subject of a group once, in a shuffled order, each for about the same time. A ratio between two
subjects is the median over rounds of the per-round ratio, so a burst of load from another
process slows both sides of the pair alike and cancels out. An empty loop is timed in every
round too and its per-iteration cost is subtracted, so tiny operations (a no-op call) are not
flattered by the loop around them.

The garbage collector is off during each timed loop, as :mod:`timeit` does, so a collection
triggered by one subject's garbage is not billed to whichever subject happens to run next.
"""

from __future__ import annotations

import gc
import random
import statistics
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter_ns, thread_time_ns
from typing import Any

Loop = Callable[[int], int]

EMPTY = "empty loop"


def compile_loop(
    stmt: str,
    namespace: Mapping[str, Any],
    setup: str = "",
    clock: Callable[[], int] = thread_time_ns,
    finish: str = "",
) -> Loop:
    """A function ``loop(n) -> elapsed ns`` running ``stmt`` ``n`` times.

    Names in ``stmt`` resolve in a copy of ``namespace``. ``setup`` runs once per call, outside
    the timed part (to bind locals the statement uses). The default clock is this thread's CPU
    time: on a shared machine, time spent descheduled while another process runs is not the
    statement's cost, and wall-clock rounds would bill it to whichever subject it hit.
    """
    body = textwrap.indent(textwrap.dedent(stmt).strip("\n"), " " * 8)
    prelude = textwrap.indent(textwrap.dedent(setup).strip("\n"), " " * 4) if setup else ""
    source = (
        "def _loop(_n):\n"
        f"{prelude}\n"
        "    _it = range(_n)\n"
        "    _t0 = _clock()\n"
        "    for _ in _it:\n"
        f"{body}\n"
        f"{textwrap.indent(textwrap.dedent(finish).strip(chr(10)), ' ' * 4) if finish else ''}\n"
        "    return _clock() - _t0\n"
    )
    scope: dict[str, Any] = {**namespace, "_clock": clock}
    exec(compile(source, f"<bench: {stmt.strip()[:40]}>", "exec"), scope)  # noqa: S102
    loop: Loop = scope["_loop"]
    return loop


def _timed(loop: Loop, n: int) -> int:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return loop(n)
    finally:
        if enabled:
            gc.enable()


def calibrate(loop: Loop, target_ns: float, cap: int = 5_000_000) -> int:
    """Iterations that make ``loop`` take about ``target_ns``."""
    return max(4, min(cap, int(target_ns / per_op_ns(loop, target_ns, cap))))


def per_op_ns(loop: Loop, target_ns: float, cap: int = 5_000_000) -> float:
    """Nanoseconds one iteration of ``loop`` takes, from runs of at least ``target_ns / 8``.

    The first calls of a subject are slow (a new series is created, caches are cold), so a
    few warm-up calls come first and each probe is the faster of two runs.
    """
    _timed(loop, 4)
    n = 4
    while True:
        elapsed = min(_timed(loop, n), _timed(loop, n))
        if elapsed >= target_ns / 8 or n >= cap:
            break
        n *= 4
    return max(elapsed / n, 1.0)


@dataclass(frozen=True)
class Samples:
    """Per-round nanoseconds per operation for every subject of one group."""

    per_op: dict[str, list[float]]
    iterations: dict[str, int]

    def median(self, name: str) -> float:
        return statistics.median(self.per_op[name])

    def minimum(self, name: str) -> float:
        return min(self.per_op[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median over rounds of numerator/denominator (paired, same round)."""
        pairs = zip(self.per_op[numerator], self.per_op[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs if b > 0)


def clock_overhead(loop: Loop) -> float:
    """Nanoseconds a timed call of ``loop`` costs with no iterations (two clock reads)."""
    return float(min(_timed(loop, 0) for _ in range(50)))


def interleave(
    subjects: Mapping[str, Loop],
    *,
    rounds: int,
    chunk_ns: float = 250_000.0,
    chunks: int = 8,
    seed: int = 5,
    subtract_empty: bool = True,
    between_rounds: Callable[[], None] | None = None,
    whole: Mapping[str, int] | None = None,
) -> Samples:
    """Time every subject in every round, finely interleaved.

    A round is ``chunks`` passes over all subjects (a fresh random order each round, rotated
    each pass); in a pass each subject runs for about ``chunk_ns``. Short chunks matter on a
    shared machine: a burst of someone else's load lasting a few milliseconds then lands on
    every subject of the round alike instead of on whichever one happened to be running. The
    cost of the two clock reads around a chunk is taken off.

    With ``subtract_empty`` an empty loop joins every round and its per-iteration cost is taken
    off every subject's figure for that round (floored at 1 % of the raw figure).

    ``whole`` maps subjects to a count their iterations per chunk are a whole multiple of (the
    nearest, at least one): a subject that does something every that many calls does it the
    same number of times in every chunk.
    """
    loops = dict(subjects)
    if subtract_empty:
        loops[EMPTY] = compile_loop("pass", {})
    iterations = {name: calibrate(loop, chunk_ns) for name, loop in loops.items()}
    for name, multiple in (whole or {}).items():
        iterations[name] = max(1, round(iterations[name] / multiple)) * multiple
    overhead = clock_overhead(next(iter(loops.values())))
    rng = random.Random(seed)
    order = list(loops)
    raw: dict[str, list[float]] = {name: [] for name in loops}
    for round_index in range(rounds + 1):
        rng.shuffle(order)
        spent = dict.fromkeys(loops, 0.0)
        for chunk in range(chunks):
            shift = chunk % len(order)
            for name in order[shift:] + order[:shift]:
                spent[name] += max(_timed(loops[name], iterations[name]) - overhead, 0.0)
        if between_rounds is not None:
            between_rounds()
        if round_index == 0:
            continue  # warm-up: caches, specialisation, first-series allocations
        for name, total in spent.items():
            raw[name].append(total / (iterations[name] * chunks))
    if not subtract_empty:
        return Samples(raw, iterations)
    empty = raw.pop(EMPTY)
    iterations.pop(EMPTY)
    net = {
        name: [max(value - base, value * 0.01) for value, base in zip(values, empty, strict=True)]
        for name, values in raw.items()
    }
    return Samples(net, iterations)


def run_threads(loop: Loop, threads: int, n: int) -> float:
    """Operations per second of ``threads`` threads each running ``loop(n)`` at once."""
    barrier = threading.Barrier(threads + 1)
    done: list[int] = []

    def work() -> None:
        barrier.wait()
        loop(n)
        done.append(1)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    enabled = gc.isenabled()
    gc.disable()
    try:
        barrier.wait()
        start = perf_counter_ns()
        for worker in workers:
            worker.join()
        elapsed = perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    if len(done) != threads:
        raise RuntimeError("a benchmark thread failed")
    return threads * n / (elapsed / 1e9)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (NumPy's default) of ``values``; ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    h = (len(ordered) - 1) * q / 100.0
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])
