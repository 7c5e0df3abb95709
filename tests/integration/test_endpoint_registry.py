"""``otel-perf top`` / ``snapshot`` without a URL find the endpoints running on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import otel_perf
from otel_perf._cli.top import choose_endpoint
from otel_perf._http import registry
from tests.support.otlp_sinks import free_port
from tests.support.servers import harness

OTEL_PERF = str(Path(sys.executable).parent / "otel-perf")


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def snapshot(runtime_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTEL_PERF, "snapshot", "--format", "json", *args],
        env=harness.child_env({"XDG_RUNTIME_DIR": str(runtime_dir)}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def other_server(runtime_dir: Path) -> Iterator[str]:
    """A second endpoint in another process (as a second MCP client's stdio server would be)."""
    url_file = runtime_dir / "url"
    process = subprocess.Popen(
        [
            OTEL_PERF,
            "run",
            "--url-file",
            str(url_file),
            "--",
            sys.executable,
            "-c",
            "import otel_perf, time\n"
            "otel_perf.record_tool_call('other_tool', True, 1.0)\n"
            "time.sleep(60)\n",
        ],
        env=harness.child_env(
            {"XDG_RUNTIME_DIR": str(runtime_dir), "OTEL_SERVICE_NAME": "second-server"}
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not url_file.exists():
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield url_file.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_running_endpoint_is_registered_and_unregistered(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "registered-service")
    metrics = otel_perf.configure(json_port=0)
    (entry,) = registry.live_endpoints(str(runtime_dir))
    assert entry.url == metrics.url
    assert entry.pid == os.getpid()
    assert entry.service == "registered-service"  # the resource the numbers carry
    path = entry.path
    assert path.parent == runtime_dir / f"otel-perf-{os.getuid()}" / "endpoints"
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)
    otel_perf.shutdown()
    assert not path.exists()
    assert registry.live_endpoints(str(runtime_dir)) == []


def test_dead_entries_are_cleaned(runtime_dir: Path) -> None:
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    directory = registry.registry_dir(str(runtime_dir))
    assert directory is not None
    stale = directory / f"{dead_pid}-9109.json"
    stale.write_text(json.dumps({"url": "http://127.0.0.1:9109", "pid": dead_pid}))
    garbage = directory / "123-456.json"
    garbage.write_text("{not json")
    not_ours = directory.parent / "holder.json"  # other per-user state of otel-perf's
    not_ours.write_text("{not an entry")
    assert registry.live_endpoints(str(runtime_dir)) == []
    assert not stale.exists()
    assert not garbage.exists()
    assert not_ours.exists()


def test_snapshot_without_a_url_reads_the_only_running_endpoint(runtime_dir: Path) -> None:
    otel_perf.configure(json_port=0)
    otel_perf.record_tool_call("found_me", True, 3.0)
    result = snapshot(runtime_dir)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["tool_metrics"]) == {"found_me"}


def test_with_several_running_the_user_picks(runtime_dir: Path, other_server: str) -> None:
    otel_perf.configure(json_port=0)
    otel_perf.record_tool_call("first_tool", True, 3.0)
    result = snapshot(runtime_dir)  # not a terminal: list them, ask for a choice
    assert result.returncode == 1
    assert other_server in result.stderr
    assert "second-server" in result.stderr
    assert "--pick N" in result.stderr
    assert result.stdout == ""

    picked = {}
    for number in (1, 2):
        result = snapshot(runtime_dir, "--pick", str(number))
        assert result.returncode == 0, result.stderr
        picked[number] = set(json.loads(result.stdout)["tool_metrics"])
    assert sorted(picked.values(), key=sorted) == [{"first_tool"}, {"other_tool"}]

    result = snapshot(runtime_dir, "--pick", "3")
    assert result.returncode == 1
    assert "no endpoint number 3" in result.stderr


def test_an_interactive_choice() -> None:
    entries = [
        registry.Entry("http://127.0.0.1:1", 11, "a", 1.0, False, Path("a")),
        registry.Entry("http://127.0.0.1:2", 12, "b", 2.0, True, Path("b")),
    ]
    said: list[str] = []
    assert choose_endpoint(entries, None, lambda _prompt: "2\n", said.append) == entries[1].url
    assert "b (pid 12)  [token]" in said[0]
    assert choose_endpoint(entries, None, lambda _prompt: "\n", said.append) == entries[0].url
    assert choose_endpoint([], None, None, said.append) == ""  # none: the default URL


def test_an_entry_whose_pid_was_reused_is_left_out(runtime_dir: Path) -> None:
    """A live process id with no otel-perf endpoint behind it (the number was reused)."""
    otel_perf.configure(json_port=0)
    otel_perf.record_tool_call("the_real_one", True, 1.0)
    directory = registry.registry_dir(str(runtime_dir))
    assert directory is not None
    (directory / "0-1.json").write_text(
        json.dumps({"url": f"http://127.0.0.1:{free_port()}", "pid": os.getpid()})
    )
    assert len(registry.live_endpoints(str(runtime_dir))) == 2  # both processes are alive ...
    result = snapshot(runtime_dir)  # ... but only one answers as otel-perf
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["tool_metrics"]) == {"the_real_one"}
