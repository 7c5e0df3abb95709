"""Instructions a stdio MCP server executes per ``tools/call`` round trip, counted by callgrind.

The stdio round trip's timed ratios move by several per cent from one set of fresh processes to
the next on a shared machine (scheduling, cache and memory layout): too much to tell a 2 %
difference. An instruction count does not move with any of that. Each variant's child server
runs under valgrind (every thread counted, following ``otel-perf run``'s exec of the server);
after the handshake and :data:`WARM_UP` calls it idles past a history sample, its counters are
zeroed (``callgrind_control -z``), the client makes the counted round trips, the child idles past
another history sample, and its counters are dumped (``-d``). So every measurement the counted
calls queue is handed to the SDK inside the count, on whichever thread does it (the drainer,
the history sampler, or the floor's request).

Under valgrind a round trip takes about 50 times as long, so otel-perf's history sampler (one
collection every 5 s of wall time) runs about 50 times as often per call as at full speed:
its fixed cost weighs more in the count than in a real server (against otel-perf).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: Untimed calls before the count (imports, caches, and the SDK's start under otel-perf run).
WARM_UP = 300
#: Idle wall time around the counted calls: past one history sample (every 5 s) of otel-perf.
IDLE_S = 6.0
#: A callgrind dump file's thread number and its total of instructions.
_THREAD = re.compile(r"^thread: (\d+)$", re.MULTILINE)
_TOTAL = re.compile(r"^(?:summary|totals): (\d+)$", re.MULTILINE)


def available() -> bool:
    return all(shutil.which(tool) for tool in ("valgrind", "callgrind_control"))


def count(
    command: Sequence[str], calls: int, *, warm_up: int = WARM_UP, idle_s: float = IDLE_S
) -> dict[int, float]:
    """Instructions per round trip of the stdio server ``command``, per thread number
    (1: the main thread), over ``calls`` counted ``tools/call`` round trips after ``warm_up``
    untimed ones, with ``idle_s`` of idling before and after them."""
    # Imported here: benchmarks._request_path imports this module.
    from benchmarks._request_path import _peer

    valgrind = shutil.which("valgrind")
    control = shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise RuntimeError("valgrind (callgrind_control) is not installed")
    with tempfile.TemporaryDirectory(prefix="otel-perf-callgrind-") as out:
        wrapped = [
            valgrind,
            "--tool=callgrind",
            "--trace-children=yes",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}/callgrind.%p",
            *command,
        ]
        # A fixed hash seed: dict and set layouts are then the same in every child.
        with _peer(wrapped, read_timeout_s=300.0, extra_env={"PYTHONHASHSEED": "0"}) as peer:
            peer.handshake()
            for i in range(warm_up):
                peer.call(i)
            time.sleep(idle_s)
            pid = str(peer.proc.pid)
            subprocess.run([control, "-z", pid], capture_output=True, timeout=120, check=True)  # noqa: S603
            for i in range(calls):
                peer.call(i)
            time.sleep(idle_s)
            subprocess.run([control, "-d", pid], capture_output=True, timeout=120, check=True)  # noqa: S603
        per_thread: dict[int, float] = {}
        # The dump on request is part 1 (``callgrind.PID.1-NN``, one file per thread); the
        # files without a part number are written at exit and hold what came after it.
        for dump in Path(out).glob("callgrind.*.1-*"):
            text = dump.read_text(errors="replace")
            thread, total = _THREAD.search(text), _TOTAL.search(text)
            if thread is None or total is None:
                raise RuntimeError(f"callgrind wrote an unreadable dump: {dump.name}")
            per_thread[int(thread.group(1))] = int(total.group(1)) / calls
    if 1 not in per_thread:
        raise RuntimeError("callgrind dumped no count for the server's main thread")
    return per_thread


def counts(commands: dict[str, Sequence[str]], calls: int) -> dict[str, dict[int, float]]:
    """:func:`count` of each named command, two at a time (two cores here)."""
    names = list(commands)
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = pool.map(lambda name: count(commands[name], calls), names)
        return dict(zip(names, found, strict=True))
