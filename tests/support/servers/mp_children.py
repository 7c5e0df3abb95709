"""An instrumented program whose ``multiprocessing`` children record calls (spawn and fork).

    python mp_children.py METHOD CHILDREN CALLS READY_FILE

The parent configures (its endpoint on ``METRICS_JSON_PORT``) and records one call; each child
records ``CALLS`` calls of ``child`` and exits normally. The parent then writes READY_FILE and
waits for ``READY_FILE.stop`` (60 s at most).
"""

import multiprocessing
import sys
import time
from pathlib import Path

import otel_perf


def child(calls: int) -> None:
    for _ in range(calls):
        otel_perf.record_tool_call("child", True, 1.0)


if __name__ == "__main__":
    method, children, calls, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    otel_perf.configure()
    otel_perf.record_tool_call("parent", True, 1.0)
    context = multiprocessing.get_context(method)
    processes = [context.Process(target=child, args=(calls,)) for _ in range(children)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    Path(ready).write_text("ready")
    deadline = time.monotonic() + 60
    while not Path(f"{ready}.stop").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
