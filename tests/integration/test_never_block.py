"""A record call never blocks the host: not in a signal handler, not in a forked child.

Each scenario runs in a child interpreter with a deadline, so a hang fails the test instead of
hanging the suite. Before the fix, the signal scenario hung for good from about the fourth
signal, and 2-13 of 40 forked children hung (see docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and signals")

DEADLINE_S = 120.0


def _run(script: str) -> dict[str, object]:
    env = {**os.environ, "METRICS_JSON_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


SIGNALS = """
import json, os, signal, threading, time
import otel_perf
from otel_perf._configure import get_runtime

metrics = otel_perf.configure()
handled = 0

def handler(signum, frame):
    global handled
    # The same series the main loop records, and a provider and a cache series besides.
    otel_perf.record_tool_call("t", True, 1.0)
    otel_perf.record_cache_hit("c")
    handled += 1

signal.signal(signal.SIGUSR1, handler)
SENT = 400

def sender():
    for _ in range(SENT):
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.002)

thread = threading.Thread(target=sender)
thread.start()
main = 0
while thread.is_alive() or main < 20000:
    otel_perf.record_tool_call("t", True, 1.0)
    main += 1
    if main % 997 == 0:
        otel_perf.get_all_metrics()  # collections on the main thread get interrupted too
thread.join()
time.sleep(0.1)  # the last signals are handled
document = otel_perf.get_all_metrics()
dropped = get_runtime().pipeline.recorder.drops.count
print(json.dumps({
    "handled": handled, "main": main, "dropped": dropped,
    "calls": document["tool_metrics"]["t"]["total_calls"],
    "hits": document["cache_metrics"].get("c", {}).get("hits", 0),
}))
"""


def test_recording_from_a_signal_handler_never_hangs_and_loses_nothing() -> None:
    result = _run(SIGNALS)
    handled, main, dropped = result["handled"], result["main"], result["dropped"]
    assert isinstance(handled, int)
    assert isinstance(main, int)
    assert isinstance(dropped, int)
    assert handled >= 100  # the handler ran, many times, while the main loop recorded
    # A record call only queues, so a handler's record never waits and is never dropped.
    assert dropped == 0
    assert result["calls"] + result["hits"] == main + 2 * handled
    print(
        f"\n[reliability] signals: {handled} handlers recorded 2 measurements each while the "
        f"main loop made {main} record calls and collected: all counted, none dropped, no hang"
    )


FORKS = """
import json, os, threading, time
import otel_perf

otel_perf.configure()
stop = threading.Event()

def busy():
    while not stop.is_set():
        otel_perf.record_tool_call("t", True, 1.0)
        with otel_perf.track_tool("t"):
            pass

workers = [threading.Thread(target=busy) for _ in range(2)]
for worker in workers:
    worker.start()
hung = failed = 0
for _ in range(40):
    with otel_perf.track_tool("t"):
        pid = os.fork()
        if pid == 0:
            time.sleep(0.001)
    if pid == 0:
        try:
            # The child's own pipeline: its one record is all it reports.
            otel_perf.record_tool_call("t", True, 1.0)
            ok = otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1
        except BaseException:
            ok = False
        os._exit(0 if ok else 3)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            failed += os.waitstatus_to_exitcode(status) != 0
            break
        if time.monotonic() > deadline:
            hung += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.005)
stop.set()
for worker in workers:
    worker.join()
print(json.dumps({"hung": hung, "failed": failed}))
"""


def test_forty_forks_inside_track_tool_beside_busy_threads_never_hang() -> None:
    result = _run(FORKS)
    assert result["hung"] == 0
    assert result["failed"] == 0
    print("\n[reliability] forks: 40 forks inside track_tool beside 2 busy threads: 0 hung")


SIGNAL_DURING_FIRST_IMPORT = """
import importlib.abc, importlib.util, json, os, signal, sys
import otel_perf

class SignalWhileLoading(importlib.abc.MetaPathFinder):
    '''Sends a signal to this process as otel_perf._api starts executing: deterministically,
    the handler runs while the module is half made (what a real signal does by chance).'''

    def find_spec(self, fullname, path, target=None):
        if fullname != "otel_perf._api":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        real_exec = spec.loader.exec_module

        def exec_module(module):
            os.kill(os.getpid(), signal.SIGUSR1)  # handled before the module's first line
            real_exec(module)

        spec.loader.exec_module = exec_module
        return spec

handled = []

def handler(signum, frame):
    otel_perf.record_tool_call("from-handler", True, 1.0)
    otel_perf.record_cache_hit("c")
    handled.append(signum)

signal.signal(signal.SIGUSR1, handler)
sys.meta_path.insert(0, SignalWhileLoading())
otel_perf.record_tool_call("main", True, 1.0)  # the first use imports otel_perf._api
document = otel_perf.get_all_metrics()
print(json.dumps({
    "handled": len(handled),
    "tools": {k: v["total_calls"] for k, v in document["tool_metrics"].items()},
    "hits": document["cache_metrics"].get("c", {}).get("hits", 0),
}))
"""


def test_a_signal_handler_recording_during_the_first_import_loses_nothing() -> None:
    result = _run(SIGNAL_DURING_FIRST_IMPORT)
    assert result["handled"] == 1
    assert result["tools"] == {"from-handler": 1, "main": 1}
    assert result["hits"] == 1
