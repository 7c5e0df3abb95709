"""The endpoint under load: HTTP pollers on ``/metrics`` while threads record tool calls.

Recording threads run throughout. Polling is switched on and off in alternating blocks (in the
order off-on, on-off, ... so a slow drift of the machine's load cannot favour one side), and the
recording throughput of each "on" block is compared with its neighbouring "off" block. The
pollers are a separate process (see :mod:`benchmarks._pollers`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time

import otel_perf
from benchmarks import _runtimes
from benchmarks._report import ROOT, Section, Target

_SETTLE_S = 0.25  # after switching polling on or off, before a block is measured


class _Recorders:
    """``threads`` threads recording tracked tool calls as fast as they can."""

    def __init__(self, threads: int) -> None:
        self.counts = [0] * threads
        self._stop = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self._threads = [
            threading.Thread(target=self._work, args=(index,), daemon=True)
            for index in range(threads)
        ]

    def _work(self, index: int) -> None:
        name = f"load_tool_{index}"
        counts = self.counts
        track = otel_perf.track_tool
        while not self._stop.is_set():
            if not self.running.wait(0.05):
                continue
            for _ in range(100):
                with track(name):
                    pass
            counts[index] += 100

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def total(self) -> int:
        return sum(self.counts)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


class _PollerProcess:
    def __init__(self, url: str, pollers: int) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own module, this interpreter
            [sys.executable, "-m", "benchmarks._pollers", url, str(pollers)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._readline() != "ready":
            raise RuntimeError("the poller process did not start")

    def _readline(self) -> str:
        stdout = self._process.stdout
        if stdout is None:  # pragma: no cover - Popen was given stdout=PIPE
            raise RuntimeError("no pipe to the pollers")
        return stdout.readline().strip()

    def send(self, command: str) -> None:
        stdin = self._process.stdin
        if stdin is None:  # pragma: no cover - Popen was given stdin=PIPE
            raise RuntimeError("no pipe to the pollers")
        stdin.write(command + "\n")
        stdin.flush()

    def report(self) -> dict[str, object]:
        self.send("report")
        result: dict[str, object] = json.loads(self._readline())
        return result

    def close(self) -> None:
        try:
            self.send("quit")
            self._process.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()


def _block(recorders: _Recorders, seconds: float) -> tuple[int, float]:
    time.sleep(_SETTLE_S)
    calls0, start = recorders.total(), time.perf_counter()
    time.sleep(seconds)
    return recorders.total() - calls0, time.perf_counter() - start


def run(*, pollers: int, seconds: float, threads: int, blocks: int) -> Section:
    """``blocks`` pairs of blocks; polling runs for ``seconds`` in all."""
    metrics = _runtimes.build({})  # JSON endpoint on a free port, as shipped
    url = metrics.url
    if url is None:
        raise RuntimeError("the metrics endpoint did not start")
    _runtimes.activate(metrics)
    for index in range(20):  # a realistic document: 20 tools with history
        for k in range(200):
            otel_perf.record_tool_call(f"tool_{index:02d}", k % 10 != 0, 5.0 + k, "ValueError")
    recorders = _Recorders(threads)
    poller_process = _PollerProcess(url + "/metrics", pollers)
    ratios: list[float] = []
    on_calls = off_calls = 0
    on_time = off_time = 0.0
    try:
        recorders.start()
        block_s = seconds / blocks
        for index in range(blocks):
            order = ("off", "on") if index % 2 == 0 else ("on", "off")
            rates = {}
            for phase in order:
                poller_process.send("run" if phase == "on" else "pause")
                calls, elapsed = _block(recorders, block_s)
                rates[phase] = calls / elapsed
                if phase == "on":
                    on_calls, on_time = on_calls + calls, on_time + elapsed
                else:
                    off_calls, off_time = off_calls + calls, off_time + elapsed
            ratios.append(rates["on"] / rates["off"])
        poller_process.send("pause")
        report = poller_process.report()
        # The same pollers with nothing else running: what the endpoint itself can do.
        recorders.running.clear()
        poller_process.send("run")
        time.sleep(_SETTLE_S + block_s)
        poller_process.send("pause")
        alone = poller_process.report()
        alone_rate = int(str(alone["requests"])) / (_SETTLE_S + block_s)
    finally:
        recorders.stop()
        poller_process.close()
        _runtimes.release(metrics)

    requests = int(str(report["requests"]))
    failures = int(str(report["failures"]))
    section = Section(
        "Endpoint under load",
        f"{pollers} HTTP pollers (a separate process, one keep-alive connection each, closed "
        f"loop) on `/metrics` for {seconds:.0f} s in all, while {threads} threads record "
        f"`track_tool` calls; {blocks} pairs of alternating blocks with and without polling "
        "(each measured after a short settling pause).",
    )
    section.row("recording throughput without pollers", off_calls / off_time, "calls/s")
    section.row("recording throughput with pollers", on_calls / on_time, "calls/s")
    section.row("responses served", requests / on_time if on_time else 0.0, "responses/s")
    section.row("response latency p50", float(str(report["p50_ms"])), "ms")
    section.row("response latency p99", float(str(report["p99_ms"])), "ms")
    section.row("response latency max", float(str(report["max_ms"])), "ms")
    section.row("pollers alone (no recording): responses served", alone_rate, "responses/s")
    section.row("pollers alone: response latency p50", float(str(alone["p50_ms"])), "ms")
    section.row("pollers alone: response latency p99", float(str(alone["p99_ms"])), "ms")
    failures += int(str(alone["failures"]))
    requests += int(str(alone["requests"]))
    section.notes.append(
        "The recording threads here do nothing but record, so they hold the GIL all the time; "
        "the endpoint's event loop and worker threads then wait for it at every step of a "
        "request (CPython's GIL hands over every 5 ms), which is what the latency with "
        "recording shows. The `pollers alone` rows show what the endpoint does by itself. "
        "A real server's threads wait on I/O most of the time and leave the GIL free."
    )
    section.target(
        Target(
            "recording throughput with pollers vs without",
            statistics.median(ratios),
            0.8,
            at_most=False,
            detail=f"Median of {blocks} paired blocks; pooled over all blocks "
            f"{(on_calls / on_time) / (off_calls / off_time):.3f}.",
        )
    )
    section.target(
        Target(
            "failed responses",
            failures,
            0,
            unit="",
            detail=f"Out of {requests} requests"
            + (f"; errors: {report['errors']}" if failures else "")
            + ".",
        )
    )
    return section
