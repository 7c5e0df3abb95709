"""A process that records calls, then waits to be stopped: for the SIGTERM/SIGHUP tests.

    python signal_app.py MODE CALLS READY_FILE

MODE: ``default`` (no handler of its own), ``handler`` (the host installs its own SIGTERM
handler first, which writes ``READY_FILE.handled`` and exits normally), ``later`` (the same
handler, installed after otel-perf configured), ``late`` (exits at once;
an atexit hook registered before otel-perf's records one more call after the final export).
OTLP export is configured by the environment. Waits at most 60 s.
"""

import atexit
import signal
import sys
import time
from pathlib import Path

mode, calls, ready = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])

import otel_perf  # noqa: E402


def on_term(signum: int, frame: object) -> None:
    Path(f"{ready}.handled").write_text("yes")
    sys.exit(0)


if mode == "handler":
    signal.signal(signal.SIGTERM, on_term)

if mode == "late":
    # atexit runs hooks last-registered first: this one runs after otel-perf's final export.
    atexit.register(lambda: otel_perf.record_tool_call("late", True, 1.0))

otel_perf.configure()
if mode == "later":
    signal.signal(signal.SIGTERM, on_term)
for i in range(calls):
    otel_perf.record_tool_call("work", i % 10 != 0, 2.0, "Boom")
if mode == "late":
    sys.exit(0)
ready.write_text("ready")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
