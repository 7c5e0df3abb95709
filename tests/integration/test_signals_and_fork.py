"""SIGTERM/SIGHUP run the final export; a fork keeps configure()'s token; late calls warn.

Real processes, a real OTLP receiver on 127.0.0.1 (tests/support/otlp_sinks.py), real HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from otel_perf import _semconv as n
from tests.support.multiprocess import runtime_dir, server_env
from tests.support.otlp_sinks import LoopbackHttpSink, Recorder, free_port, latest, wait_for

SERVERS = Path(__file__).resolve().parents[1] / "support" / "servers"
CALLS = 5000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _tool_counts(handler: Recorder) -> dict[str, int]:
    counts: dict[str, int] = {}
    for attributes, point in latest(handler.snapshot()).series(n.MCP_SERVER_OPERATION_DURATION):
        tool = attributes.get(n.GEN_AI_TOOL_NAME)
        if tool is not None:
            counts[str(tool)] = counts.get(str(tool), 0) + int(point.count)
    return counts


def _start(
    mode: str, tmp_path: Path, sink: LoopbackHttpSink
) -> tuple[subprocess.Popen[bytes], Path]:
    ready = tmp_path / f"{mode}.ready"
    env = server_env(
        {
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": sink.endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the final export can deliver
            "METRICS_JSON_PORT": "0",
            "XDG_RUNTIME_DIR": str(runtime_dir(tmp_path)),
        }
    )
    process = subprocess.Popen(
        [sys.executable, str(SERVERS / "signal_app.py"), mode, str(CALLS), str(ready)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return process, ready


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_runs_the_final_export_then_the_default(tmp_path: Path, signum: int) -> None:
    handler = Recorder()
    sink = LoopbackHttpSink(handler)
    sink.start()
    process, ready = _start("default", tmp_path, sink)
    try:
        assert wait_for(ready.exists, timeout_s=60), "the app did not start"
        assert _tool_counts(handler) == {}
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
        # The process still ends the way the signal's default ends it.
        assert process.returncode == -signum, stderr.decode()
        assert _tool_counts(handler) == {"work": CALLS}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        sink.stop()


@pytest.mark.parametrize("mode", ["handler", "later"], ids=["installed-before", "installed-after"])
def test_the_hosts_own_handler_still_runs(tmp_path: Path, mode: str) -> None:
    handler = Recorder()
    sink = LoopbackHttpSink(handler)
    sink.start()
    process, ready = _start(mode, tmp_path, sink)
    try:
        assert wait_for(ready.exists, timeout_s=60), "the app did not start"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr.decode()
        assert Path(f"{ready}.handled").read_text() == "yes"
        assert _tool_counts(handler) == {"work": CALLS}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        sink.stop()


def test_a_call_recorded_after_the_final_export_is_warned_about_once(tmp_path: Path) -> None:
    handler = Recorder()
    sink = LoopbackHttpSink(handler)
    sink.start()
    process, _ = _start("late", tmp_path, sink)
    try:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
        assert _tool_counts(handler) == {"work": CALLS}
        assert stderr.decode().count("recorded after the final export") == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        sink.stop()


def _get(port: int, token: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - test URL
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return 0, b""


def test_a_forked_child_never_serves_without_the_token(tmp_path: Path) -> None:
    import json

    port, token = free_port(), "s3cret-token"
    env = server_env({"XDG_RUNTIME_DIR": str(runtime_dir(tmp_path))})
    log = tmp_path / "fork.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(SERVERS / "fork_token.py"), str(port), token, str(tmp_path)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    child_pid = 0
    try:
        assert wait_for((tmp_path / "child").exists, timeout_s=60), "no child"
        child_pid = int((tmp_path / "child").read_text())

        def totals() -> dict[str, int]:
            status, body = _get(port, token)
            if status != 200:
                return {}
            document = json.loads(body)
            return {k: v["total_calls"] for k, v in document["tool_metrics"].items()}

        # The parent serves both processes' calls, with the token.
        assert wait_for(lambda: totals() == {"parent": 1, "child": 5}, timeout_s=15)
        assert _get(port, None)[0] == 401
        # The parent exits; the child takes the port over: still with the token.
        (tmp_path / "parent-exit").write_text("go")
        process.wait(30)
        deadline = time.monotonic() + 15
        statuses: list[int] = []
        while time.monotonic() < deadline:
            statuses.append(_get(port, None)[0])
            if totals() == {"parent": 1, "child": 5} and statuses[-1] == 401:
                break
            time.sleep(0.1)
        assert totals() == {"parent": 1, "child": 5}, log.read_text()
        assert set(statuses) <= {0, 401}, f"served without the token: {statuses}"
        assert "cannot serve metrics" not in log.read_text()
    finally:
        (tmp_path / "stop").write_text("stop")
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if child_pid:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(child_pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(child_pid, signal.SIGKILL)
