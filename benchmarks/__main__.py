"""Run the whole benchmark harness and write ``benchmarks/RESULTS.md``.

    .venv/bin/python -m benchmarks            # the full run, a few minutes
    python3 dev.py bench                      # the same, setting up .venv first
    .venv/bin/python -m benchmarks --quick    # seconds; checks the harness, not the figures

Run it from the repository root. ``--only`` picks sections (comma-separated: overhead,
instructions, snapshot, export, load, paths, memory, contention, accuracy, request, multiprocess);
``--output`` writes elsewhere; ``--check`` makes the exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import (
    _accuracy,
    _contention,
    _export,
    _instructions,
    _load,
    _memory,
    _multiprocess,
    _overhead,
    _request_path,
    _snapshot,
)
from benchmarks._report import ROOT, Section, environment, render

DEFAULT_OUTPUT = ROOT / "benchmarks" / "RESULTS.md"
COMMAND = "python -m benchmarks"


@dataclass(frozen=True)
class Scale:
    """How much work each section does."""

    overhead_rounds: int
    chunk_ns: float
    chunks: int
    batched_rounds: int
    thread_rounds: int
    thread_ns: float
    profile_calls: int
    snapshot_tools: int
    snapshot_calls: int
    snapshot_rounds: int
    export_blocks: int
    export_block_s: float
    export_interval_ms: int
    export_rounds: int
    pollers: int
    poll_seconds: float
    poll_blocks: int
    path_tools: int
    path_pollers: int
    path_seconds: float
    path_blocks: int
    memory_calls: int
    memory_tools: int
    memory_names: int
    memory_warmup: int
    accuracy_samples: int
    accuracy_window: int
    accuracy_seeds: int
    request_calls: int
    request_rounds: int
    stdio_rounds: int
    stdio_blocks: int
    stdio_calls: int
    stdio_instruction_calls: int
    handshakes: int
    imports: int
    multiprocess_rounds: int
    multiprocess_calls: int
    instruction_calls: int


FULL = Scale(
    overhead_rounds=150,
    chunk_ns=250_000.0,
    chunks=6,
    batched_rounds=25,
    thread_rounds=10,
    thread_ns=40_000_000.0,
    profile_calls=20_000,
    snapshot_tools=100,
    snapshot_calls=200,
    snapshot_rounds=40,
    export_blocks=4,
    export_block_s=2.0,
    export_interval_ms=1000,
    export_rounds=60,
    pollers=50,
    poll_seconds=10.0,
    poll_blocks=5,
    path_tools=500,
    path_pollers=4,
    path_seconds=10.0,
    path_blocks=5,
    memory_calls=1_000_000,
    memory_tools=50,
    memory_names=100_000,
    memory_warmup=200_000,
    accuracy_samples=100_000,
    accuracy_window=1000,
    accuracy_seeds=3,
    request_calls=200,
    request_rounds=30,
    stdio_rounds=6,
    stdio_blocks=8,
    stdio_calls=256,
    stdio_instruction_calls=1024,
    handshakes=15,
    imports=11,
    multiprocess_rounds=30,
    multiprocess_calls=20,
    instruction_calls=2_000,
)

QUICK = Scale(
    overhead_rounds=2,
    chunk_ns=50_000.0,
    chunks=2,
    batched_rounds=1,
    thread_rounds=1,
    thread_ns=2_000_000.0,
    profile_calls=200,
    snapshot_tools=10,
    snapshot_calls=20,
    snapshot_rounds=2,
    export_blocks=1,
    export_block_s=0.3,
    export_interval_ms=100,
    export_rounds=2,
    pollers=5,
    poll_seconds=0.5,
    poll_blocks=1,
    path_tools=20,
    path_pollers=1,
    path_seconds=0.5,
    path_blocks=1,
    memory_calls=20_000,
    memory_tools=50,
    memory_names=2_000,
    memory_warmup=5_000,
    accuracy_samples=5_000,
    accuracy_window=200,
    accuracy_seeds=1,
    request_calls=10,
    request_rounds=1,
    stdio_rounds=1,
    stdio_blocks=1,
    stdio_calls=5,
    stdio_instruction_calls=0,
    handshakes=1,
    imports=1,
    multiprocess_rounds=5,
    multiprocess_calls=3,
    instruction_calls=0,
)


def _sections(scale: Scale) -> dict[str, Callable[[], list[Section]]]:
    return {
        "overhead": lambda: _overhead.run(
            rounds=scale.overhead_rounds,
            chunk_ns=scale.chunk_ns,
            chunks=scale.chunks,
            batched_rounds=scale.batched_rounds,
            thread_rounds=scale.thread_rounds,
            thread_ns=scale.thread_ns,
            profile_calls=scale.profile_calls,
        ),
        "instructions": lambda: [_instructions.run(calls=scale.instruction_calls)],
        "snapshot": lambda: [
            _snapshot.run(
                tools=scale.snapshot_tools,
                calls=scale.snapshot_calls,
                rounds=scale.snapshot_rounds,
            )
        ],
        "export": lambda: [
            _export.run(
                blocks=scale.export_blocks,
                block_s=scale.export_block_s,
                interval_ms=scale.export_interval_ms,
                rounds=scale.export_rounds,
            )
        ],
        "load": lambda: [
            _load.run(
                pollers=scale.pollers,
                seconds=scale.poll_seconds,
                threads=4,
                blocks=scale.poll_blocks,
            )
        ],
        "paths": lambda: [
            _load.run_paths(
                tools=scale.path_tools,
                pollers=scale.path_pollers,
                seconds=scale.path_seconds,
                threads=4,
                blocks=scale.path_blocks,
            )
        ],
        "memory": lambda: [
            _memory.run(
                calls=scale.memory_calls,
                tools=scale.memory_tools,
                names=scale.memory_names,
                warmup=scale.memory_warmup,
            )
        ],
        "request": lambda: _request_path.run(
            calls=scale.request_calls,
            rounds=scale.request_rounds,
            stdio_rounds=scale.stdio_rounds,
            stdio_blocks=scale.stdio_blocks,
            stdio_calls=scale.stdio_calls,
            stdio_instruction_calls=scale.stdio_instruction_calls,
            handshakes=scale.handshakes,
            imports=scale.imports,
            profile_calls=scale.profile_calls // 20,
        ),
        "contention": lambda: [_contention.run(seconds=1.0 if scale is QUICK else 5.0)],
        "accuracy": lambda: [
            _accuracy.run(
                samples=scale.accuracy_samples,
                window=scale.accuracy_window,
                seeds=scale.accuracy_seeds,
            )
        ],
        "multiprocess": lambda: [
            _multiprocess.run(rounds=scale.multiprocess_rounds, calls=scale.multiprocess_calls)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny run: checks the harness")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file")
    parser.add_argument("--only", default="", help="comma-separated sections to run")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    # Exporting to a closed port and capping names log warnings by design; keep them out of
    # the harness's output (they are part of what is measured, not news).
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    logging.getLogger("otel_perf").setLevel(logging.ERROR)

    scale = QUICK if args.quick else FULL
    available = _sections(scale)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()] or list(available)
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(available)}")

    env = environment()
    started = time.monotonic()
    sections: list[Section] = []
    for name in wanted:
        print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)
        section_start = time.monotonic()
        sections += available[name]()
        print(
            f"benchmarks: {name} done in {time.monotonic() - section_start:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    elapsed = time.monotonic() - started

    command = COMMAND + (" --quick" if args.quick else "")
    if args.only:
        command += f" --only {','.join(wanted)}"
    text = render(sections, command=command, env=env, elapsed_s=elapsed, quick=args.quick)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")

    missed = [t for section in sections for t in section.targets if not t.met]
    total = sum(len(section.targets) for section in sections)
    print(f"benchmarks: {total - len(missed)} of {total} targets met", file=sys.stderr)
    for target in missed:
        print(f"benchmarks: MISSED {target.name}: {target.measured:.3f}", file=sys.stderr)
    print(f"benchmarks: wrote {args.output}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
