"""HTTP pollers in a separate process: ``python -m benchmarks._pollers URL CONCURRENCY [INTERVAL]``.

``URL`` is the path polled (``.../metrics``, ``.../metrics/prometheus``, ...); a response is
good when it is a 200, and for ``/metrics`` when it is the JSON document.

Dashboards poll from other processes (usually other machines), so the pollers run outside the
process under test: their own client work must not be billed to the server's process. Each
poller keeps one connection open and asks ``GET /metrics`` every ``INTERVAL`` seconds (the
pollers' phases spread at random), or, with an interval of 0, in a closed loop: the next request
leaves as soon as the previous response is read. Every response must be a 200 with a JSON
document. Commands arrive one per line on stdin:

``run``    start (or resume) polling;
``pause``  stop after the requests in flight;
``report`` print one JSON line: requests, failures, and latency percentiles (ms) since the
           previous report;
``quit``   stop and exit.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
from time import perf_counter
from urllib.parse import urlsplit


class _Poller(threading.Thread):
    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        interval_s: float,
        go: threading.Event,
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True)
        self._host = host
        self._port = port
        self._path = path
        self._interval_s = interval_s
        self._go = go
        self._stop_event = stop
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.failures = 0
        self.errors: dict[str, int] = {}

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=30)

    def run(self) -> None:
        connection = self._connect()
        next_at = perf_counter() + random.random() * self._interval_s
        while not self._stop_event.is_set():
            if not self._go.wait(0.05):
                continue
            if self._interval_s:
                delay = next_at - perf_counter()
                if delay > 0:
                    self._stop_event.wait(min(delay, 0.05))
                    continue
                next_at = max(next_at + self._interval_s, perf_counter())
            start = perf_counter()
            try:
                connection.request("GET", self._path)
                response = connection.getresponse()
                body = response.read()
                ok = response.status == 200 and (
                    self._path != "/metrics" or "tool_metrics" in json.loads(body)
                )
                problem = None if ok else f"status {response.status}"
            except Exception as exc:  # any failure counts; the connection is replaced
                problem = type(exc).__name__
                connection.close()
                connection = self._connect()
            elapsed_ms = (perf_counter() - start) * 1000.0
            with self.lock:
                if problem is None:
                    self.latencies.append(elapsed_ms)
                else:
                    self.failures += 1
                    self.errors[problem] = self.errors.get(problem, 0) + 1
        connection.close()

    def take(self) -> tuple[list[float], int, dict[str, int]]:
        with self.lock:
            out = (self.latencies, self.failures, self.errors)
            self.latencies, self.failures, self.errors = [], 0, {}
        return out


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    h = (len(ordered) - 1) * q / 100.0
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def main(argv: list[str]) -> int:
    url, concurrency = argv[0], int(argv[1])
    interval_s = float(argv[2]) if len(argv) > 2 else 0.0
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    go, stop = threading.Event(), threading.Event()
    path = parts.path or "/metrics"
    pollers = [_Poller(host, port, path, interval_s, go, stop) for _ in range(concurrency)]
    for poller in pollers:
        poller.start()
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            go.set()
        elif command == "pause":
            go.clear()
        elif command == "report":
            latencies: list[float] = []
            failures = 0
            errors: dict[str, int] = {}
            for poller in pollers:
                lat, fail, errs = poller.take()
                latencies += lat
                failures += fail
                for key, value in errs.items():
                    errors[key] = errors.get(key, 0) + value
            latencies.sort()
            report = {
                "requests": len(latencies) + failures,
                "failures": failures,
                "errors": errors,
                "p50_ms": _percentile(latencies, 50),
                "p99_ms": _percentile(latencies, 99),
                "max_ms": latencies[-1] if latencies else 0.0,
            }
            print(json.dumps(report), flush=True)
        elif command == "quit":
            break
    go.clear()
    stop.set()
    for poller in pollers:
        poller.join(timeout=35)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
