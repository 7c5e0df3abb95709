"""Per-call cost: otel-perf's record paths against the SDK floor, a no-op call and other designs.

The single-thread subjects run in small interleaved groups (:data:`GROUPS`), so every ratio is
paired round by round. The 4-thread comparison runs the same tool-call subjects from four
threads at once.
"""

from __future__ import annotations

import cProfile
import pstats
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import otel_perf
from benchmarks import _baselines as base
from benchmarks import _runtimes
from benchmarks._report import Section, Target
from benchmarks._timing import (
    Loop,
    Samples,
    calibrate,
    compile_loop,
    interleave,
    per_op_ns,
    run_threads,
)
from otel_perf._metrics import Metrics


@dataclass(frozen=True)
class Subject:
    """A timed statement and the otel-perf instance that must be active while it runs."""

    name: str
    stmt: str
    runtime: str | None = None  # key into the runtimes dict; None leaves the state alone


#: Queued measurements the timed thread hands to the SDK itself (below the drainer's threshold).
HAND_OVER_EVERY = 512


@dataclass(frozen=True)
class Pace:
    """How one group is timed: rounds, and chunks of about ``chunk_ns`` per subject and round."""

    rounds: int
    chunk_ns: float
    chunks: int
    #: Whether chunks hold whole hand-overs of HAND_OVER_EVERY queued measurements.
    batched: bool = False


# Subject names used in more than one place.
NOOP = "no-op function call (3 arguments)"
NOOP1 = "no-op function call (1 argument)"
NOOP0 = "no-op function call (no arguments)"
PC_PAIR = "perf_counter() pair"
BARE_HIST = "bare SDK: exponential histogram record (3 attributes)"
BARE_COUNTER = "bare SDK: counter add (2 attributes)"
TRACK = "otel-perf: with track_tool()"
DECORATED = "otel-perf: @track_tool decorated call"
RECORD_TOOL = "otel-perf: record_tool_call()"
CACHE_HIT = "otel-perf: record_cache_hit()"
CACHE_MISS = "otel-perf: record_cache_miss()"
OFF_RECORD_TOOL = "disabled: record_tool_call()"
OFF_CACHE_HIT = "disabled: record_cache_hit()"
OFF_DECORATED = "disabled: @track_tool decorated call"
OFF_TRACK = "disabled: with track_tool()"
NULLCONTEXT = "with nullcontext() (a no-op context manager)"
NAIVE = "naive OTel: tool call (UpDownCounter ±1, histogram, counter)"
PROM_LABELS = "prometheus_client: tool call, labels() per call"
PROM_BOUND = "prometheus_client: tool call, pre-bound child"
ORIGIN = "origin-style: tool call (deque + RLock)"

SUBJECTS = (
    Subject(NOOP, "noop('search', True, 12.5)"),
    Subject(NOOP1, "noop1('semantic_cache')"),
    Subject(NOOP0, "plain()"),
    Subject(PC_PAIR, "perf_counter(); perf_counter()"),
    Subject(BARE_HIST, "hist_record(0.0125, TOOL_ATTRS)"),
    Subject(BARE_COUNTER, "counter_add(1, CACHE_HIT_ATTRS)"),
    Subject(TRACK, "with track_tool('search'):\n    pass", "on"),
    Subject(DECORATED, "tracked()", "on"),
    Subject(RECORD_TOOL, "record_tool_call('search', True, 12.5)", "on"),
    Subject(CACHE_HIT, "record_cache_hit('semantic_cache')", "on"),
    Subject(CACHE_MISS, "record_cache_miss('semantic_cache')", "on"),
    Subject(OFF_RECORD_TOOL, "record_tool_call('search', True, 12.5)", "off"),
    Subject(OFF_CACHE_HIT, "record_cache_hit('semantic_cache')", "off"),
    Subject(OFF_DECORATED, "tracked()", "off"),
    Subject(OFF_TRACK, "with track_tool('search'):\n    pass", "off"),
    Subject(NULLCONTEXT, "with nullcontext():\n    pass"),
    Subject(NAIVE, "with naive_track('search'):\n    pass"),
    Subject(
        PROM_LABELS,
        "prom_inc()\n_s = perf_counter()\n"
        "prom_hist.labels('tools/call', 'search').observe(perf_counter() - _s)\nprom_dec()",
    ),
    Subject(
        PROM_BOUND,
        "prom_inc()\n_s = perf_counter()\nprom_bound_observe(perf_counter() - _s)\nprom_dec()",
    ),
    Subject(
        ORIGIN,
        "_s = perf_counter()\norigin_record('search', True, (perf_counter() - _s) * 1000.0)",
    ),
)

#: Tool-call subjects compared under four threads.
THREAD_SUBJECTS = (TRACK, BARE_HIST, NAIVE, PROM_LABELS, PROM_BOUND, ORIGIN)


def noop(_name: object, _success: object, _latency: object) -> None:
    """The no-op the disabled record calls are compared with (same arguments)."""


def noop1(_name: object) -> None:
    """The no-op the disabled one-argument calls are compared with."""


def plain() -> None:
    """An undecorated no-op function."""


@otel_perf.track_tool("search")
def tracked() -> None:
    """The same no-op, decorated."""


class _Fixture:
    """Everything the subjects need, built once and torn down at the end."""

    def __init__(self) -> None:
        from contextlib import nullcontext

        self.bare = base.BareSdk()
        self.naive = base.NaiveOtelRecorder()
        self.prom = base.prometheus_subjects()
        self.origin = base.OriginStyleCollector()
        self.runtimes: dict[str, Metrics] = {
            "on": _runtimes.build({}),  # JSON endpoint on (port 0), no OTLP: "JSON view only"
            "off": _runtimes.build({"PERFORMANCE_METRICS_ENABLED": "false"}),
        }
        self.namespace: dict[str, Any] = {
            "noop": noop,
            "noop1": noop1,
            "plain": plain,
            "tracked": tracked,
            "perf_counter": perf_counter,
            "nullcontext": nullcontext,
            "hist_record": self.bare.histogram.record,
            "counter_add": self.bare.counter.add,
            "TOOL_ATTRS": base.TOOL_ATTRS,
            "CACHE_HIT_ATTRS": base.CACHE_HIT_ATTRS,
            "track_tool": otel_perf.track_tool,
            "record_tool_call": otel_perf.record_tool_call,
            "record_cache_hit": otel_perf.record_cache_hit,
            "record_cache_miss": otel_perf.record_cache_miss,
            "naive_track": self.naive.track,
            "prom_hist": self.prom.histogram,
            "prom_bound_observe": self.prom.bound.observe,
            "prom_inc": self.prom.in_progress.inc,
            "prom_dec": self.prom.in_progress.dec,
            "origin_record": self.origin.record_tool_call,
        }

    def queues(self, subject: Subject) -> bool:
        """Whether ``subject``'s record calls queue (and its loop hands the queue over)."""
        return subject.runtime is not None and self.runtimes[subject.runtime].recorder is not None

    def loop(self, subject: Subject) -> Loop:
        if subject.runtime is None:
            return compile_loop(subject.stmt, self.namespace)
        metrics = self.runtimes[subject.runtime]
        recorder = metrics.recorder
        if recorder is None:  # disabled: nothing is queued
            inner = compile_loop(subject.stmt, self.namespace)
        else:
            # otel-perf's record calls queue and the SDK gets the queue later (a collection, or
            # a drainer thread this thread's clock would not see). The timed thread hands it
            # over itself, before the drainer would wake and at the end of the loop, so every
            # measurement's whole cost is timed (the length check costs otel-perf ~0.04 us).
            namespace = {**self.namespace, "_items": recorder.queue.items, "_flush": recorder.flush}
            inner = compile_loop(
                f"{subject.stmt}\nif len(_items) >= {HAND_OVER_EVERY}:\n    _flush()",
                namespace,
                finish="_flush()",
            )

        def run(n: int) -> int:
            _runtimes.activate(metrics)
            return inner(n)

        return run

    def close(self) -> None:
        _runtimes.release(*self.runtimes.values())
        self.bare.shutdown()
        self.naive.shutdown()


#: Subjects timed together. Each target's two sides share a group; small groups keep the
#: code of unrelated subjects from crowding the CPU caches between two chunks of a pair.
GROUPS: dict[str, tuple[str, ...]] = {
    "tool call": (BARE_HIST, TRACK, DECORATED, RECORD_TOOL, NAIVE, PC_PAIR),
    "cache": (BARE_COUNTER, CACHE_HIT, CACHE_MISS),
    "disabled": (
        NOOP,
        NOOP1,
        NOOP0,
        OFF_RECORD_TOOL,
        OFF_CACHE_HIT,
        OFF_DECORATED,
        OFF_TRACK,
        NULLCONTEXT,
    ),
    "other designs": (BARE_HIST, TRACK, NAIVE, PROM_LABELS, PROM_BOUND, ORIGIN),
}


def _single_thread(
    fixture: _Fixture, short: Pace, batched_rounds: int
) -> dict[str, tuple[Samples, Pace]]:
    by_name = {subject.name: subject for subject in SUBJECTS}
    out = {}
    for group, names in GROUPS.items():
        loops = {name: fixture.loop(by_name[name]) for name in names}
        queued = [name for name in names if fixture.queues(by_name[name])]
        pace = short
        if queued:
            # Each chunk of a queued subject hands the SDK whole batches of HAND_OVER_EVERY, as
            # a collection or the drainer does, not the few measurements a short chunk holds:
            # those would time a hand-over's fixed cost once every few calls, and how few
            # would depend on the machine's speed (7 calls a chunk at 35 us a record). The
            # whole group runs chunks that long, so someone else's burst of load lands on
            # every subject alike; fewer rounds keep the time in bounds.
            slowest_ns = max(per_op_ns(loops[name], short.chunk_ns) for name in queued)
            pace = Pace(
                batched_rounds,
                max(short.chunk_ns, HAND_OVER_EVERY * slowest_ns),
                short.chunks,
                batched=True,
            )
        samples = interleave(
            loops,
            rounds=pace.rounds,
            chunk_ns=pace.chunk_ns,
            chunks=pace.chunks,
            whole=dict.fromkeys(queued, HAND_OVER_EVERY),
        )
        out[group] = (samples, pace)
    return out


def _threads(
    fixture: _Fixture, rounds: int, round_ns: float, threads: int
) -> dict[str, dict[str, list[float]]]:
    by_name = {subject.name: subject for subject in SUBJECTS}
    loops = {name: fixture.loop(by_name[name]) for name in THREAD_SUBJECTS}
    # Iterations per thread: about round_ns of work for one thread.
    counts = {name: calibrate(loop, round_ns) for name, loop in loops.items()}
    out: dict[str, dict[str, list[float]]] = {
        name: {"one": [], "many": []} for name in THREAD_SUBJECTS
    }
    rng = random.Random(7)
    order = list(THREAD_SUBJECTS)
    for round_index in range(rounds + 1):
        rng.shuffle(order)
        for name in order:
            n = counts[name]
            one = run_threads(loops[name], 1, n)
            many = run_threads(loops[name], threads, max(1, n // threads))
            if round_index:
                out[name]["one"].append(one)
                out[name]["many"].append(many)
    return out


def _profile_track_tool(fixture: _Fixture, calls: int) -> Section:
    """Where the time of a tracked call goes, by function (cProfile self time)."""
    _runtimes.activate(fixture.runtimes["on"])
    track = otel_perf.track_tool
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        with track("search"):
            pass
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (_cc, ncalls, tottime, _ct, _callers) in stats.items():
        rows.append((tottime, ncalls, filename, line, function))
    total = sum(row[0] for row in rows) or 1.0
    owners = {"otel_perf": 0.0, "opentelemetry": 0.0, "other": 0.0}
    for tottime, _n, filename, _line, _function in rows:
        owner = next((key for key in owners if f"/{key}/" in filename), "other")
        owners[owner] += tottime
    section = Section(
        "Where a tracked call's time goes",
        f"cProfile of {calls:,} `with track_tool()` calls (JSON view only): self time per "
        "function as a share of the total. cProfile adds a fixed cost to every Python call, "
        "which inflates the many small functions, so read the shares, not the times. The "
        "builtins are nearly all called by the SDK (`isinstance` 18 times per record, in "
        "attribute validation and hashing).",
    )
    section.row("otel-perf's own code (otel_perf/)", 100.0 * owners["otel_perf"] / total, "%")
    section.row(
        "the OpenTelemetry SDK and API (opentelemetry/)",
        100.0 * owners["opentelemetry"] / total,
        "%",
    )
    section.row("builtins and the standard library", 100.0 * owners["other"] / total, "%")
    for tottime, ncalls, filename, line, function in sorted(rows, reverse=True)[:12]:
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        section.row(
            f"`{function}` ({where}:{line})",
            100.0 * tottime / total,
            "%",
            note=f"{ncalls / calls:g} calls per tracked call",
        )
    return section


def run(
    *,
    rounds: int,
    chunk_ns: float,
    chunks: int,
    batched_rounds: int,
    thread_rounds: int,
    thread_ns: float,
    profile_calls: int = 20_000,
    threads: int = 4,
) -> list[Section]:
    """The per-call section and the multi-thread section."""
    fixture = _Fixture()
    try:
        samples = _single_thread(fixture, Pace(rounds, chunk_ns, chunks), batched_rounds)
        threaded = _threads(fixture, thread_rounds, thread_ns, threads)
        profile = _profile_track_tool(fixture, profile_calls)
    finally:
        fixture.close()
    return [
        *_per_call_sections(samples),
        profile,
        _thread_section(threaded, threads, thread_rounds),
    ]


_REFERENCE: dict[str, str] = {
    TRACK: BARE_HIST,
    DECORATED: BARE_HIST,
    RECORD_TOOL: BARE_HIST,
    NAIVE: BARE_HIST,
    PROM_LABELS: BARE_HIST,
    PROM_BOUND: BARE_HIST,
    ORIGIN: BARE_HIST,
    PC_PAIR: BARE_HIST,
    CACHE_HIT: BARE_COUNTER,
    CACHE_MISS: BARE_COUNTER,
    OFF_RECORD_TOOL: NOOP,
    OFF_CACHE_HIT: NOOP1,
    OFF_DECORATED: NOOP0,
    OFF_TRACK: NOOP0,
    NULLCONTEXT: NOOP0,
}

_GROUP_TEXT = {
    "tool call": "A tracked tool call against the floor: one bare SDK exponential-histogram "
    "record with the same attributes (`mcp.method.name`, `gen_ai.operation.name`, "
    "`gen_ai.tool.name`), the same view (exponential, 160 buckets) and one reader. otel-perf "
    "runs with the JSON view only (endpoint on, no OTLP).",
    "cache": "A cache hit/miss record against one bare SDK counter add with the same "
    "attributes (`cache.name`, `cache.result`).",
    "disabled": "`PERFORMANCE_METRICS_ENABLED=false` against no-op Python functions taking "
    "the same arguments.",
    "other designs": "The same tool call recorded by other designs (informative): "
    "prometheus_client with `labels()` per call and with a pre-bound child (plus an "
    "in-progress gauge), the origin's deque-and-lock recorder, and the naive OTel recorder.",
}


def _per_call_sections(groups: dict[str, tuple[Samples, Pace]]) -> list[Section]:
    sections = []
    for group, (samples, pace) in groups.items():
        batches = ""
        if pace.batched:
            batches = (
                f" otel-perf's record calls queue; every {HAND_OVER_EVERY} calls the timed "
                "loop hands the queue to the SDK itself (as a collection would), and a chunk "
                f"holds whole batches of {HAND_OVER_EVERY}, so each measurement's whole cost "
                "is timed at the batch size a busy server hands over."
            )
        section = Section(
            f"Per-call cost: {group}",
            _GROUP_TEXT[group]
            + batches
            + f" Nanoseconds per operation (thread CPU time, net of the empty loop), min and "
            f"median over {pace.rounds} rounds of {pace.chunks} interleaved chunks of "
            f"{pace.chunk_ns / 1e6:.3g} ms; the note gives the paired median ratio to the "
            "named row.",
        )
        for name in GROUPS[group]:
            reference = _REFERENCE.get(name)
            if reference not in samples.per_op:
                reference = None
            note = f"{samples.ratio(name, reference):.3f}x {reference}" if reference else ""
            section.row(name, samples.median(name), "ns", samples.minimum(name), note)
        sections.append(section)
        if group == "tool call":
            _tool_call_targets(section, samples)
        elif group == "cache":
            for name in (CACHE_HIT, CACHE_MISS):
                section.target(
                    Target(
                        f"`{name.split(': ')[1]}` vs one bare SDK counter add",
                        samples.ratio(name, BARE_COUNTER),
                        1.10,
                    )
                )
        elif group == "disabled":
            _disabled_targets(section, samples)
    return sections


def _tool_call_targets(section: Section, s: Samples) -> None:
    extra = s.median(TRACK) - s.median(BARE_HIST)
    section.notes.append(
        f"`with track_tool()` adds about {extra:,.0f} ns to the SDK record (median "
        "difference): creating the tracker, `__enter__`/`__exit__`, two clock reads, the "
        "lock-free in-flight count, the series lookup and queueing the measurement, plus "
        "handing the queue to the SDK in batches inside the timed loop (what a collection "
        "does). The SDK record itself (attribute validation, attribute hashing, the "
        "exponential aggregation) is the floor; the profile below shows where the time goes."
    )
    for name in (TRACK, DECORATED):
        section.target(
            Target(
                f"`{name.split(': ')[1]}` vs one bare SDK exponential-histogram record",
                s.ratio(name, BARE_HIST),
                1.15,
            )
        )
    section.notes.append(
        f"A naive OTel tool call (four SDK calls, default aggregations) costs "
        f"{s.ratio(NAIVE, TRACK):.2f}x `with track_tool()` and {s.ratio(NAIVE, BARE_HIST):.2f}x "
        "the bare record. It is a comparison, not a target: otel-perf cannot beat the SDK "
        "record it is built on, so where it counts is judged in the request-path section below "
        "(a real `tools/call` round trip, plain vs instrumented)."
    )


def _disabled_targets(section: Section, s: Samples) -> None:
    section.target(
        Target(
            "disabled `record_tool_call()` vs a no-op function call",
            s.ratio(OFF_RECORD_TOOL, NOOP),
            2.0,
            detail="The no-op takes the same three arguments.",
        )
    )
    section.target(
        Target(
            "disabled `record_cache_hit()` vs a no-op function call",
            s.ratio(OFF_CACHE_HIT, NOOP1),
            2.0,
        )
    )
    added = s.median(OFF_DECORATED) - s.median(NOOP0)
    section.notes.append(
        f"A disabled `@track_tool` function costs {s.ratio(OFF_DECORATED, NOOP0):.2f}x the "
        f"undecorated one: the wrapper adds {added:.0f} ns, "
        f"{added / s.median(NOOP0):.1f}x a no-op call (a wrapping decorator is a second "
        "Python call with argument packing, so it cannot add less than about one call)."
    )
    section.notes.append(
        f"A disabled `with track_tool()` block costs {s.ratio(OFF_TRACK, NOOP0):.1f}x a no-op "
        f"call and {s.ratio(OFF_TRACK, NULLCONTEXT):.2f}x `with nullcontext()`: a `with` "
        "block is an object creation plus `__enter__` and `__exit__` calls, so no context "
        "manager comes within 2x of one call; the `record_*` functions are the calls the 2x "
        "target applies to."
    )


def _thread_section(data: dict[str, dict[str, list[float]]], threads: int, rounds: int) -> Section:
    section = Section(
        f"Tool calls under {threads} threads",
        f"Tool calls per second on one series, one thread vs {threads} threads running at "
        f"once ({rounds} interleaved rounds; median and min over rounds). Scaling is the "
        f"paired median of ({threads}-thread throughput / 1-thread throughput): below 1 means "
        "contention costs more than the GIL already does.",
    )
    ratio: Callable[[str], float] = lambda name: statistics.median(  # noqa: E731
        m / o for m, o in zip(data[name]["many"], data[name]["one"], strict=True)
    )
    for name in THREAD_SUBJECTS:
        one, many = data[name]["one"], data[name]["many"]
        section.row(f"{name}, 1 thread", statistics.median(one), "calls/s", min(one))
        section.row(
            f"{name}, {threads} threads",
            statistics.median(many),
            "calls/s",
            min(many),
            f"scaling {ratio(name):.2f}",
        )
    return section
