"""Instructions per record call, counted by valgrind's callgrind, beside the timed ratios.

The per-call sections time each call; their ratios move with the processor and its load (a
bare SDK record took 7-12 µs on the machine of earlier runs and 35 µs on a 2 GHz AMD EPYC,
and ``with track_tool()`` measured 1.12x the record on the one and 1.26x on the other, with
the same code). An instruction count does not move with either. Each subject runs in a child
interpreter under callgrind twice, with a few calls and with many after the same set-up and
warm-up; the difference of the two totals divided by the difference of the calls is what one
call executes, set-up and exit cancelled out. otel-perf runs with its endpoint off (nothing
records or collects on another thread) and hands its queue to the SDK every
:data:`HAND_OVER_EVERY` calls, inside the count, as in the timed section.

    python -m benchmarks._instructions SUBJECT CALLS   # the child: one subject, CALLS calls
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from benchmarks._report import ROOT, Section

#: The subjects, as the timed per-call sections name them: (row name, child's subject).
SUBJECTS = (
    ("bare SDK: exponential histogram record (3 attributes)", "record"),
    ("otel-perf: with track_tool()", "track_tool"),
    ("bare SDK: counter add (2 attributes)", "add"),
    ("otel-perf: record_cache_hit()", "cache_hit"),
)
#: (otel-perf subject, its floor) pairs given as ratios.
RATIOS = (("track_tool", "record"), ("cache_hit", "add"))
#: As ``benchmarks._overhead.HAND_OVER_EVERY`` (not imported: the child would load that module).
HAND_OVER_EVERY = 512
_WARM_UP = 500
_COLLECTED = re.compile(rb"Collected\s*:\s*([0-9]+)")
_PREFIXES = ("PERFORMANCE_METRICS_", "METRICS_", "OTEL_")


def available() -> bool:
    return shutil.which("valgrind") is not None


def _child(subject: str, calls: int) -> None:
    """Set up, warm up, then make ``calls`` calls of ``subject``."""
    os.environ["METRICS_JSON_ENABLED"] = "false"
    import otel_perf
    from benchmarks._baselines import CACHE_HIT_ATTRS, TOOL_ATTRS, BareSdk
    from otel_perf._configure import get_runtime

    bare = BareSdk()
    recorder = get_runtime().recorder
    assert recorder is not None
    flush = recorder.flush

    def run(count: int) -> None:
        if subject == "record":
            record, attrs = bare.histogram.record, TOOL_ATTRS
            for _ in range(count):
                record(0.001, attrs)
        elif subject == "add":
            add, cache_attrs = bare.counter.add, CACHE_HIT_ATTRS
            for _ in range(count):
                add(1, cache_attrs)
        elif subject == "track_tool":
            track = otel_perf.track_tool
            for i in range(count):
                with track("search"):
                    pass
                if i % HAND_OVER_EVERY == HAND_OVER_EVERY - 1:
                    flush()
            flush()
        elif subject == "cache_hit":
            hit = otel_perf.record_cache_hit
            for i in range(count):
                hit("semantic_cache")
                if i % HAND_OVER_EVERY == HAND_OVER_EVERY - 1:
                    flush()
            flush()
        else:
            raise ValueError(f"unknown subject {subject!r}")

    run(_WARM_UP)
    run(calls)


def _count(subject: str, calls: int) -> int:
    """Instructions a child making ``calls`` calls of ``subject`` executes, start to exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    # A fixed hash seed, so that dict and set layouts are the same in every child. Two children
    # of one subject still differ by 0.1-0.5 million instructions (set-up and exit), which is
    # why a count spans thousands of calls: about 300 instructions a call at 2,000.
    env["PYTHONHASHSEED"] = "0"
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed")
    done = subprocess.run(  # noqa: S603 - valgrind on our own interpreter and module
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks._instructions",
            subject,
            str(calls),
        ],
        capture_output=True,
        timeout=900,
        check=True,
        cwd=ROOT,
        env=env,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no instruction count for {subject}")
    return int(found.group(1))


def per_call(calls: int, subjects: Sequence[str] = ()) -> dict[str, float]:
    """Instructions per call of each subject (all by default): (count at ``calls`` minus count
    at a tenth of it) over the calls between. Two children at a time (two cores here)."""
    chosen = subjects or [subject for _, subject in SUBJECTS]
    few = max(1, calls // 10)
    jobs = [(subject, k) for subject in chosen for k in (few, calls)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: _count(*job), jobs), strict=True))
    return {
        subject: (counts[subject, calls] - counts[subject, few]) / (calls - few)
        for subject in chosen
    }


def run(*, calls: int) -> Section:
    section = Section(
        "Instructions per record call",
        "Instructions one call executes, counted by valgrind's callgrind: each subject runs "
        f"in a fresh interpreter with {max(1, calls // 10):,} and with {calls:,} calls after "
        f"the same set-up and {_WARM_UP} warm-up calls, and the difference of the two counts "
        "is divided by the difference of the calls. otel-perf hands its queue to the SDK "
        f"every {HAND_OVER_EVERY} calls inside the count, with its endpoint off. A count "
        "does not change with the processor or the machine's load, which the timed ratios "
        "above do.",
    )
    if not calls:
        section.notes.append("Not measured in quick mode (each count runs under valgrind).")
        return section
    if not available():
        section.notes.append("Not measured: valgrind is not installed.")
        return section
    counts = per_call(calls)
    for name, subject in SUBJECTS:
        section.row(name, counts[subject], "instr")
    names = {subject: name for name, subject in SUBJECTS}
    for ours, floor in RATIOS:
        section.row(
            f"{names[ours]} vs {names[floor]}", counts[ours] / counts[floor], "x", note="by count"
        )
    return section


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
