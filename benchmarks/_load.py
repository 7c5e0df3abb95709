"""The endpoint under load: HTTP pollers on its paths while threads record tool calls.

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
from dataclasses import dataclass

import otel_perf
from benchmarks import _runtimes
from benchmarks._report import ROOT, Section, Target

_SETTLE_S = 0.25  # after switching polling on or off, before a block is measured
DASHBOARD_INTERVAL_S = 1.0


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
    def __init__(self, url: str, pollers: int, interval_s: float) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own module, this interpreter
            [sys.executable, "-m", "benchmarks._pollers", url, str(pollers), str(interval_s)],
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


class _PollerGroup:
    """One poller process per URL, driven together; reports are summed (latency: worst URL)."""

    def __init__(self, urls: list[str], pollers: int, interval_s: float) -> None:
        self._processes: list[_PollerProcess] = []
        try:
            for url in urls:
                self._processes.append(_PollerProcess(url, pollers, interval_s))
        except BaseException:
            self.close()
            raise

    def send(self, command: str) -> None:
        for process in self._processes:
            process.send(command)

    def report(self) -> dict[str, object]:
        reports = [process.report() for process in self._processes]
        errors: dict[str, int] = {}
        for report in reports:
            for key, value in dict(report["errors"]).items():  # type: ignore[call-overload]
                errors[key] = errors.get(key, 0) + int(value)
        merged: dict[str, object] = {"errors": errors}
        for key in ("requests", "failures"):
            merged[key] = sum(int(_number(report, key)) for report in reports)
        for key in ("p50_ms", "p99_ms", "max_ms"):
            merged[key] = max(_number(report, key) for report in reports)
        return merged

    def close(self) -> None:
        for process in self._processes:
            process.close()


@dataclass
class _Tally:
    calls: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def add(self, calls: int, wall_s: float, cpu_s: float) -> None:
        self.calls += calls
        self.wall_s += wall_s
        self.cpu_s += cpu_s


def _block(recorders: _Recorders, seconds: float) -> tuple[int, float, float]:
    """Calls recorded, wall seconds and this process's CPU seconds over one block."""
    time.sleep(_SETTLE_S)
    calls0, start, cpu0 = recorders.total(), time.perf_counter(), time.process_time()
    time.sleep(seconds)
    calls = recorders.total() - calls0
    return calls, time.perf_counter() - start, time.process_time() - cpu0


@dataclass
class _Outcome:
    """One polling scenario: paired throughput ratios, tallies and the pollers' reports."""

    ratios: list[float]
    wall_ratios: list[float]
    on: _Tally
    off: _Tally
    report: dict[str, object]
    alone: dict[str, object] | None = None
    alone_s: float = 0.0


def _scenario(
    url: str,
    recorders: _Recorders,
    *,
    pollers: int,
    interval_s: float,
    seconds: float,
    blocks: int,
    alone: bool,
    paths: tuple[str, ...] = ("/metrics",),
) -> _Outcome:
    poller_process = _PollerGroup([url + path for path in paths], pollers, interval_s)
    outcome = _Outcome([], [], _Tally(), _Tally(), {})
    try:
        recorders.running.set()
        block_s = seconds / blocks
        for index in range(blocks):
            order = ("off", "on") if index % 2 == 0 else ("on", "off")
            per_cpu, per_wall = {}, {}
            for phase in order:
                poller_process.send("run" if phase == "on" else "pause")
                calls, wall_s, cpu_s = _block(recorders, block_s)
                # A clock that did not advance (a starved quick run) must not divide by zero.
                per_cpu[phase] = calls / max(cpu_s, 1e-9)
                per_wall[phase] = calls / max(wall_s, 1e-9)
                (outcome.on if phase == "on" else outcome.off).add(calls, wall_s, cpu_s)
            outcome.ratios.append(per_cpu["on"] / max(per_cpu["off"], 1e-9))
            outcome.wall_ratios.append(per_wall["on"] / max(per_wall["off"], 1e-9))
        poller_process.send("pause")
        outcome.report = poller_process.report()
        if alone:
            # The same pollers with nothing else running: what the endpoint itself can do.
            recorders.running.clear()
            poller_process.send("run")
            outcome.alone_s = _SETTLE_S + block_s
            time.sleep(outcome.alone_s)
            poller_process.send("pause")
            outcome.alone = poller_process.report()
    finally:
        poller_process.close()
    return outcome


def _rate(amount: float, per: float) -> float:
    """``amount / per``, or 0 when ``per`` is 0 (a starved quick run)."""
    return amount / per if per > 0 else 0.0


def _number(report: dict[str, object], key: str) -> float:
    return float(str(report[key]))


def run(*, pollers: int, seconds: float, threads: int, blocks: int) -> Section:
    """Two scenarios, ``blocks`` pairs of blocks each; polling runs ``seconds`` in each."""
    metrics = _runtimes.build({})  # JSON endpoint on a free port, as shipped
    url = metrics.url
    if url is None:
        raise RuntimeError("the metrics endpoint did not start")
    _runtimes.activate(metrics)
    for index in range(20):  # a realistic document: 20 tools with history
        for k in range(200):
            otel_perf.record_tool_call(f"tool_{index:02d}", k % 10 != 0, 5.0 + k, "ValueError")
    recorders = _Recorders(threads)
    try:
        recorders.start()
        outcomes = {
            "every 1 s": _scenario(
                url,
                recorders,
                pollers=pollers,
                interval_s=DASHBOARD_INTERVAL_S,
                seconds=seconds,
                blocks=blocks,
                alone=False,
            ),
            "closed loop": _scenario(
                url,
                recorders,
                pollers=pollers,
                interval_s=0.0,
                seconds=seconds,
                blocks=blocks,
                alone=True,
            ),
        }
    finally:
        recorders.stop()
        _runtimes.release(metrics)

    section = Section(
        "Endpoint under load",
        f"{pollers} HTTP pollers on `/metrics` (a separate process, one keep-alive connection "
        f"each) for {seconds:.0f} s, while {threads} threads record `track_tool` calls, in two "
        f"scenarios: each poller asking every {DASHBOARD_INTERVAL_S:g} s (a fast dashboard; "
        "the bundled dashboard and `otel-perf top` refresh every 2 s), and each asking again "
        f"as soon as it has its answer (closed loop, a stress test). {blocks} pairs of "
        "alternating blocks with and without polling, each measured after a short settling "
        "pause. Throughput is recorded calls per CPU-second of the whole process (every "
        "thread, the endpoint's included), which a core taken by the poller process or by the "
        "machine's other users does not distort; the wall-clock figure is given too.",
    )
    failures = requests = 0
    for name, outcome in outcomes.items():
        report = outcome.report
        on, off = outcome.on, outcome.off
        section.row(
            f"{name}: recording throughput without pollers",
            _rate(off.calls, off.cpu_s),
            "calls/CPU-s",
        )
        section.row(
            f"{name}: recording throughput with pollers", _rate(on.calls, on.cpu_s), "calls/CPU-s"
        )
        section.row(
            f"{name}: recording throughput with / without, wall clock",
            statistics.median(outcome.wall_ratios),
            "x",
        )
        section.row(
            f"{name}: responses served", _rate(_number(report, "requests"), on.wall_s), "/s"
        )
        section.row(f"{name}: response latency p50", _number(report, "p50_ms"), "ms")
        section.row(f"{name}: response latency p99", _number(report, "p99_ms"), "ms")
        failures += int(_number(report, "failures"))
        requests += int(_number(report, "requests"))
        if outcome.alone is not None:
            alone = outcome.alone
            section.row(
                f"{name}, no recording: responses served",
                _number(alone, "requests") / outcome.alone_s,
                "/s",
            )
            section.row(f"{name}, no recording: latency p50", _number(alone, "p50_ms"), "ms")
            section.row(f"{name}, no recording: latency p99", _number(alone, "p99_ms"), "ms")
            failures += int(_number(alone, "failures"))
            requests += int(_number(alone, "requests"))
        pooled = _rate(_rate(on.calls, on.cpu_s), _rate(off.calls, off.cpu_s))
        section.target(
            Target(
                f"recording throughput with {pollers} pollers ({name}) vs without",
                statistics.median(outcome.ratios),
                0.8,
                at_most=False,
                detail=f"Median of {blocks} paired blocks; pooled {pooled:.3f}; by wall clock "
                f"{statistics.median(outcome.wall_ratios):.3f}.",
            )
        )
    section.target(
        Target(
            "failed responses",
            failures,
            0,
            unit="",
            detail=f"Out of {requests} requests in both scenarios.",
        )
    )
    section.notes.append(
        "The recording threads here do nothing but record, so they want the GIL all the time. "
        "In a closed loop the endpoint always has work too, and CPython shares the GIL between "
        "the endpoint's threads and the recording threads about evenly (handing it over every "
        "5 ms): the endpoint then takes its share of the process whatever it does per request, "
        "and every step of a request waits for the GIL, which is what the latency shows. The "
        "`no recording` rows show what the endpoint does by itself. A real server's threads "
        "wait on I/O most of the time and leave the GIL free."
    )
    return section


#: Every path a dashboard, ``top``, Grafana or Prometheus polls.
POLLED_PATHS = ("/metrics", "/metrics/prometheus", "/metrics/history")
ERROR_TYPES = ("ValueError", "KeyError", "TimeoutError")


def run_paths(*, tools: int, pollers: int, seconds: float, threads: int, blocks: int) -> Section:
    """``pollers`` closed-loop pollers on each of :data:`POLLED_PATHS` at ``tools`` tools."""
    metrics = _runtimes.build({})
    url = metrics.url
    if url is None:
        raise RuntimeError("the metrics endpoint did not start")
    _runtimes.activate(metrics)
    # Four series per tool (a success series and three error types), the recording threads'
    # own tools included, so the cap of 500 tools is reached and nothing folds into _OTHER.
    names = [f"load_tool_{index}" for index in range(threads)]
    names += [f"tool_{index:03d}" for index in range(tools - threads)]
    for name in names:
        for k in range(8):
            otel_perf.record_tool_call(name, k % 4 == 0, 5.0 + k, ERROR_TYPES[k % 3])
    recorders = _Recorders(threads)
    try:
        recorders.start()
        outcome = _scenario(
            url,
            recorders,
            pollers=pollers,
            interval_s=0.0,
            seconds=seconds,
            blocks=blocks,
            alone=False,
            paths=POLLED_PATHS,
        )
    finally:
        recorders.stop()
        _runtimes.release(metrics)

    listed = ", ".join(f"`{path}`" for path in POLLED_PATHS)
    section = Section(
        "Every path polled",
        f"{pollers} closed-loop HTTP pollers on each of {listed} "
        f"({pollers * len(POLLED_PATHS)} in all, separate processes, one keep-alive connection "
        f"each) at {tools} tools with 4 series each, while {threads} threads record "
        f"`track_tool` calls; {blocks} pairs of alternating blocks with and without polling, "
        f"{seconds:.0f} s of polling in all. Throughput is recorded calls per CPU-second of the "
        "whole process, as in the section above; the wall-clock figure is given too.",
    )
    on, off = outcome.on, outcome.off
    report = outcome.report
    section.row("recording throughput without pollers", _rate(off.calls, off.cpu_s), "calls/CPU-s")
    section.row("recording throughput with pollers", _rate(on.calls, on.cpu_s), "calls/CPU-s")
    section.row(
        "recording throughput with / without, wall clock",
        statistics.median(outcome.wall_ratios),
        "x",
    )
    section.row("responses served, all paths", _rate(_number(report, "requests"), on.wall_s), "/s")
    section.row("response latency p99, worst path", _number(report, "p99_ms"), "ms")
    section.target(
        Target(
            f"recording throughput with {pollers} pollers on each path vs none, {tools} tools",
            statistics.median(outcome.ratios),
            0.8,
            at_most=False,
            detail=f"Median of {blocks} paired blocks; by wall clock "
            f"{statistics.median(outcome.wall_ratios):.3f}; "
            f"{int(_number(report, 'failures'))} failed responses of "
            f"{int(_number(report, 'requests'))}.",
        )
    )
    return section
