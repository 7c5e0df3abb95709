"""A parent configured with a token forks a child that outlives it (a pre-fork server's case).

    python fork_token.py PORT TOKEN DIR

The parent configures ``json_port=PORT, auth_token=TOKEN`` in code, records one call, forks;
the child records five calls and writes ``DIR/child`` (its pid), then waits for ``DIR/stop``
(60 s at most). The parent waits for ``DIR/parent-exit``, then exits normally.
"""

import os
import sys
import time
from pathlib import Path

import otel_perf

port, token, directory = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


def announce(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (the test reads it the moment it exists)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


otel_perf.configure(json_port=port, auth_token=token)
otel_perf.record_tool_call("parent", True, 1.0)
child = os.fork()
if child == 0:
    for _ in range(5):
        otel_perf.record_tool_call("child", True, 1.0)
    announce(directory / "child", str(os.getpid()))
    wait_for(directory / "stop")
    otel_perf.shutdown()
    os._exit(0)
announce(directory / "parent", str(os.getpid()))
wait_for(directory / "parent-exit")
