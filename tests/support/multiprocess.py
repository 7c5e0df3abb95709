"""Run a multi-process MCP server (uvicorn --workers, gunicorn) and drive it with real clients.

Servers run in their own session (process group) and are stopped by the test that started
them, by process id: SIGTERM first, SIGKILL to the group if they do not end in time. Every
load loop is bounded in calls and time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.otlp_sinks import free_port

REPO = Path(__file__).resolve().parents[2]
APP = "tests.support.servers.multiprocess_app:app"
START_TIMEOUT_S = 60.0
WAIT_S = 30.0


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment minus otel-perf's settings (group included), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PERFORMANCE_METRICS_", "METRICS_", "OTEL_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def runtime_dir(tmp_path: Path) -> Path:
    """A private runtime directory for the group files of the processes a test starts."""
    directory = tmp_path / "runtime"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def uvicorn_command(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip


def gunicorn_command(port: int, workers: int, *, preload: bool) -> list[str]:
    command = [
        sys.executable, "-m", "gunicorn", "-w", str(workers), "-k",
        "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
        "--graceful-timeout", "5",
    ]  # fmt: skip
    if preload:
        command.append("--preload")
    return [*command, APP]


def otel_perf_run(command: list[str]) -> list[str]:
    return [sys.executable, "-m", "otel_perf", "run", "--", *command]


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path
    token: str | None = None
    pids: collections.Counter[int] = field(default_factory=collections.Counter)

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running(
    command: list[str], tmp_path: Path, *, env: dict[str, str], port: int, metrics_port: int
) -> Iterator[Running]:
    """Start ``command``; yield once it accepts connections on ``port``; stop it afterwards."""
    log = tmp_path / f"server-{port}.log"
    env = {"XDG_RUNTIME_DIR": str(runtime_dir(tmp_path)), **env}  # its group files stay here
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Running(process, port, metrics_port, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(port):
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not listen in time:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    """SIGTERM the server; SIGKILL its whole session if it has not ended in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    # Workers left behind by a killed supervisor end with their session.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def metrics(
    server: Running, query: str = "", path: str = "/metrics", token: str | None = None
) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{server.metrics_port}{path}{query}")
    token = token if token is not None else server.token
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - test URL
        body = response.read()
    return json.loads(body) if path == "/metrics" else body.decode()


def try_metrics(server: Running, query: str = "") -> Any | None:
    try:
        return metrics(server, query)
    except (OSError, urllib.error.URLError, json.JSONDecodeError):
        return None


def tool_calls(document: Any, tool: str = "pid") -> int:
    entry = document["tool_metrics"].get(tool)
    return 0 if entry is None else int(entry["total_calls"])


def wait_for_document(
    server: Running, predicate: Callable[[Any], bool], what: str, query: str = ""
) -> Any:
    deadline = time.monotonic() + WAIT_S
    document = None
    while time.monotonic() < deadline:
        document = try_metrics(server, query)
        if document is not None and predicate(document):
            return document
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last document: {document}")


async def _client(url: str, calls: int, pids: collections.Counter[int]) -> None:
    import mcp

    async with mcp.Client(url, mode="legacy") as client:
        for _ in range(calls):
            result = await client.call_tool("pid", {})
            pids[int(result.content[0].text)] += 1  # type: ignore[union-attr]


def drive(server: Running, connections: int, calls: int) -> collections.Counter[int]:
    """``connections`` real MCP clients at once, ``calls`` calls each; returns calls per pid."""
    pids: collections.Counter[int] = collections.Counter()

    async def main() -> None:
        clients = (_client(server.mcp_url, calls, pids) for _ in range(connections))
        await asyncio.wait_for(asyncio.gather(*clients), timeout=120)

    asyncio.run(main())
    server.pids.update(pids)
    return pids


def ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second
