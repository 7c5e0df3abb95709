"""Soak: 16 recording threads, 1,000 asyncio tasks and 20 HTTP pollers at once.

At the end every total is exact, memory is flat after warm-up, and nothing deadlocked (every
wait has a timeout). The default run soaks for ``SOAK_SECONDS`` (8 s); the full 60 s version
is marked ``slow``:

    python3 dev.py test -m slow
    .venv/bin/python -m pytest -m slow tests/integration/test_soak.py   # the same, alone

Each run prints a ``[reliability]`` line with its figures (docs/reliability.md quotes them).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

import otel_perf

THREADS = 16
TASKS = 1000
POLLERS = 20
JOIN_TIMEOUT_S = 120.0
SHORT_SOAK_S = float(os.environ.get("SOAK_SECONDS", "8"))
#: Allowed growth of resident memory between the end of warm-up and the end of the run.
MAX_GROWTH_BYTES = 24 * 1024 * 1024


def vm_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@dataclass
class Tally:
    """What one worker did, to compare with what otel-perf reports."""

    calls: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)
    provider_calls: Counter[str] = field(default_factory=Counter)
    input_tokens: Counter[str] = field(default_factory=Counter)


class Flaky(Exception):
    """What the soak's tools raise now and then."""


def recording_thread(index: int, stop: threading.Event, tally: Tally) -> None:
    rng = random.Random(index)
    tool, cache, provider = f"sync-{index % 8}", f"cache-{index % 4}", f"llm-{index % 3}"
    i = 0
    while not stop.is_set():
        i += 1
        kind = i % 4
        if kind == 0:
            ok = rng.random() > 0.1
            otel_perf.record_tool_call(tool, ok, rng.uniform(0.1, 500.0), None if ok else "Flaky")
            tally.calls[tool] += 1
            tally.failures[tool] += not ok
        elif kind == 1:
            try:
                with otel_perf.track_tool(tool):
                    if rng.random() < 0.1:
                        raise Flaky
            except Flaky:
                tally.failures[tool] += 1
            tally.calls[tool] += 1
        elif kind == 2:
            if rng.random() < 0.7:
                otel_perf.record_cache_hit(cache)
                tally.hits[cache] += 1
            else:
                otel_perf.record_cache_miss(cache)
                tally.misses[cache] += 1
        else:
            tokens = rng.randrange(1, 500)
            otel_perf.record_provider_call(
                provider, True, rng.uniform(50.0, 2000.0), model="m", input_tokens=tokens
            )
            tally.provider_calls[provider] += 1
            tally.input_tokens[provider] += tokens


async def async_tasks(stop: threading.Event, tally: Tally) -> None:
    async def one(k: int) -> None:
        rng = random.Random(1000 + k)
        tool = f"async-{k % 4}"

        @otel_perf.track_tool(tool)
        async def work() -> None:
            await asyncio.sleep(rng.uniform(0.0, 0.005))
            if rng.random() < 0.05:
                raise Flaky

        with otel_perf.track_session():
            while not stop.is_set():
                try:
                    await work()
                except Flaky:
                    tally.failures[tool] += 1
                tally.calls[tool] += 1

    await asyncio.wait_for(asyncio.gather(*(one(k) for k in range(TASKS))), timeout=JOIN_TIMEOUT_S)


@dataclass
class Polls:
    requests: int = 0
    bad: list[str] = field(default_factory=list)


def poller(index: int, port: int, stop: threading.Event, polls: Polls) -> None:
    """Keep-alive polling; totals seen by one poller must never go down."""
    paths = ["/metrics", "/metrics", "/metrics/prometheus", "/health", "/metrics/history"]
    last_total = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        i = index
        while not stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                polls.bad.append(f"{path}: {type(exc).__name__}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            polls.requests += 1
            if response.status != 200:
                polls.bad.append(f"{path}: {response.status}")
            elif path == "/metrics":
                total = json.loads(body)["system_metrics"]["total_requests"]
                if total < last_total:
                    polls.bad.append(f"total went down: {last_total} -> {total}")
                last_total = total
    finally:
        conn.close()


def soak(seconds: float) -> dict[str, Any]:
    metrics = otel_perf.configure()
    assert metrics.port is not None
    stop = threading.Event()
    tallies = [Tally() for _ in range(THREADS + 1)]
    polls = [Polls() for _ in range(POLLERS)]
    workers = [
        threading.Thread(target=recording_thread, args=(i, stop, tallies[i]), name=f"rec-{i}")
        for i in range(THREADS)
    ]
    workers.append(
        threading.Thread(
            target=lambda: asyncio.run(async_tasks(stop, tallies[THREADS])), name="tasks"
        )
    )
    workers += [
        threading.Thread(target=poller, args=(i, metrics.port, stop, polls[i]), name=f"poll-{i}")
        for i in range(POLLERS)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    rss: list[tuple[float, int]] = []
    while (elapsed := time.monotonic() - started) < seconds:
        rss.append((elapsed, vm_rss()))
        time.sleep(min(0.25, seconds / 40))
    stop.set()
    for worker in workers:
        worker.join(JOIN_TIMEOUT_S)
    stuck = [worker.name for worker in workers if worker.is_alive()]
    assert not stuck, f"deadlocked: {stuck}"
    return {"tallies": tallies, "polls": polls, "rss": rss, "seconds": seconds}


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(SHORT_SOAK_S, id="short"),
        pytest.param(60.0, id="60s", marks=pytest.mark.slow),
    ],
)
def test_soak(seconds: float, capsys: pytest.CaptureFixture[str]) -> None:
    result = soak(seconds)
    tally = Tally()
    for one in result["tallies"]:
        for name in ("calls", "failures", "hits", "misses", "provider_calls", "input_tokens"):
            getattr(tally, name).update(getattr(one, name))

    document = otel_perf.get_all_metrics()
    tools = document["tool_metrics"]
    assert {name: tool["total_calls"] for name, tool in tools.items()} == dict(tally.calls)
    assert {name: tool["failed_calls"] for name, tool in tools.items()} == {
        name: tally.failures[name] for name in tally.calls
    }
    caches = document["cache_metrics"]
    assert {name: cache["hits"] for name, cache in caches.items()} == dict(tally.hits)
    assert {name: cache["misses"] for name, cache in caches.items()} == dict(tally.misses)
    providers = document["provider_metrics"]
    assert {name: p["total_calls"] for name, p in providers.items()} == dict(tally.provider_calls)
    assert {name: p["input_tokens"] for name, p in providers.items()} == dict(tally.input_tokens)
    system = document["system_metrics"]
    assert system["total_requests"] == sum(tally.calls.values())
    assert system["concurrent_requests"] == 0  # every tracked call ended
    assert system["active_sessions"] == 0

    polls: list[Polls] = result["polls"]
    bad = [problem for poll in polls for problem in poll.bad]
    assert not bad, bad[:5]
    requests = sum(poll.requests for poll in polls)
    assert requests > POLLERS

    rss: list[tuple[float, int]] = result["rss"]
    warm = [value for at, value in rss if at >= seconds / 4]
    growth = max(warm) - warm[0]
    assert growth < MAX_GROWTH_BYTES, f"RSS grew {growth / 2**20:.1f} MiB after warm-up"

    calls = sum(tally.calls.values()) + sum(tally.provider_calls.values())
    calls += sum(tally.hits.values()) + sum(tally.misses.values())
    with capsys.disabled():
        print(
            f"\n[reliability] soak {seconds:.0f}s: {THREADS} threads + {TASKS} asyncio tasks + "
            f"{POLLERS} pollers: {calls} record calls ({calls / seconds:.0f}/s), "
            f"{sum(tally.calls.values())} tool calls, {requests} HTTP requests all 200; totals "
            f"exact; RSS {warm[0] / 2**20:.0f} MiB after warm-up, growth "
            f"{growth / 2**20:.1f} MiB; no deadlock"
        )
