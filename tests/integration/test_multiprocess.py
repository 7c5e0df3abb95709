"""Many processes, one endpoint: uvicorn --workers and gunicorn pre-fork, driven by real clients.

Every server is a real ``MCPServer`` over streamable HTTP (stateless, so any worker answers any
request) whose ``pid`` tool returns the answering worker's process id: the test counts the
calls per worker on the client side and compares the endpoint's totals with that count.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otel_perf import _semconv as n
from tests.support.multiprocess import (
    WAIT_S,
    Running,
    drive,
    gunicorn_command,
    metrics,
    otel_perf_run,
    ports,
    running,
    runtime_dir,
    server_env,
    stop,
    tool_calls,
    try_metrics,
    uvicorn_command,
    wait_for_document,
)
from tests.support.otlp_sinks import LoopbackHttpSink, Recorder, attributes_of, iter_points

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="pre-fork servers: Linux")

CONNECTIONS = 12
CALLS = 15


def _instrumented_env(metrics_port: int, **extra: str) -> dict[str, str]:
    return server_env(
        {"OTEL_PERF_TEST_INSTRUMENT": "1", "METRICS_JSON_PORT": str(metrics_port), **extra}
    )


def _check_exact(server: Running, supervisor: int = 0, *, spread: bool = True) -> None:
    """Drive many connections; the endpoint's totals equal what the clients counted.

    A worker joins its server when it first records, so the live processes are the workers
    that answered, plus the supervisor when ``otel-perf run`` instrumented it too.
    """
    pids = drive(server, CONNECTIONS, CALLS)
    total = sum(pids.values())
    assert total == CONNECTIONS * CALLS
    expected_processes = len(pids) + supervisor
    document = wait_for_document(
        server,
        lambda d: tool_calls(d) == total and d["system_metrics"]["processes"] == expected_processes,
        f"{total} calls from {expected_processes} processes",
        query="?per_process=1",
    )
    if spread:
        assert len(pids) >= 2, f"the load did not spread over the workers: {pids}"
    assert document["tool_metrics"]["pid"]["failed_calls"] == 0
    rows = {row["pid"]: row for row in document["processes"] if row["pid"] is not None}
    for pid, count in pids.items():
        assert rows[pid]["tool_calls"] == count, (pid, rows)
    assert sum(1 for row in rows.values() if row["serving"]) == 1
    # The Prometheus view shows the same merged totals.
    text = metrics(server, path="/metrics/prometheus")
    count_line = next(
        line
        for line in text.splitlines()
        if line.startswith("mcp_server_operation_duration_seconds_count{")
        and 'gen_ai_tool_name="pid"' in line
        and "error_type" not in line
    )
    assert float(count_line.rsplit(" ", 1)[1]) == total


def test_uvicorn_workers_show_exact_totals(tmp_path: Path) -> None:
    port, metrics_port = ports()
    env = _instrumented_env(metrics_port)
    with running(
        uvicorn_command(port, 3), tmp_path, env=env, port=port, metrics_port=metrics_port
    ) as server:
        _check_exact(server)
    assert "cannot serve metrics" not in server.output()


@pytest.mark.parametrize("preload", [False, True], ids=["fork", "preload"])
def test_gunicorn_workers_show_exact_totals(tmp_path: Path, preload: bool) -> None:
    port, metrics_port = ports()
    env = _instrumented_env(metrics_port)
    command = gunicorn_command(port, 3, preload=preload)
    with running(command, tmp_path, env=env, port=port, metrics_port=metrics_port) as server:
        _check_exact(server)
    assert "cannot serve metrics" not in server.output()


def _reload_command(port: int, watched: Path) -> list[str]:
    """uvicorn --reload of the app, watching ``watched`` (a test's own directory, so a test
    reloads its server by writing a file there and never touches the repository's files)."""
    command = uvicorn_command(port, 1)
    return [*command[: command.index("--workers")], "--reload", "--reload-dir", str(watched)]


def _running_process(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _reload(server: Running, trigger: Path, readings: list[int]) -> None:
    """Write a watched file; return once every worker that has answered so far has ended.

    Meanwhile the endpoint is read whenever it answers (with the app instrumented in code
    nothing serves it between the old worker's end and the new worker's first call).
    """
    old = set(server.pids)
    trigger.write_text(f"# reload {time.monotonic()}\n")
    deadline = time.monotonic() + WAIT_S
    while any(_running_process(pid) for pid in old):
        assert time.monotonic() < deadline, f"the reload did not end {old}:\n{server.output()}"
        document = try_metrics(server)
        if document is not None:
            readings.append(tool_calls(document))
        time.sleep(0.1)


@pytest.mark.parametrize("instrumented", ["in-code", "otel-perf-run"])
def test_uvicorn_reload_keeps_exact_totals_across_reloads(
    tmp_path: Path, instrumented: str
) -> None:
    """Totals over the old and new workers after each reload, never lower; a new run: zero.

    In code, the reloader never imports the app: the worker it runs is the whole server, and
    the ending worker is its last process; its numbers are kept for the reloader's next
    worker. Under ``otel-perf run`` the reloader is instrumented too, and serves throughout.
    """
    port, metrics_port = ports()
    watched = tmp_path / "watched"
    watched.mkdir()
    trigger = watched / "trigger.py"
    trigger.write_text("")
    in_code = instrumented == "in-code"
    supervisor = 0 if in_code else 1
    command = _reload_command(port, watched)
    # The test's own runtime directory (the session's is shared by every test's servers): what
    # each run leaves there is checked below.
    runtime = {"XDG_RUNTIME_DIR": str(runtime_dir(tmp_path))}
    if in_code:
        env = _instrumented_env(metrics_port, **runtime)
    else:
        env = server_env({"METRICS_JSON_PORT": str(metrics_port), **runtime})
        command = otel_perf_run(command)
    readings: list[int] = []
    with running(command, tmp_path, env=env, port=port, metrics_port=metrics_port) as server:
        started = time.monotonic()
        _check_exact(server, supervisor, spread=False)
        for _ in range(2):
            before = sum(server.pids.values())
            reloaded = time.monotonic()
            _reload(server, trigger, readings)
            old = set(server.pids)
            answered = drive(server, 4, 5)
            assert not set(answered) & old, "the calls after the reload reached a new worker"
            total = sum(server.pids.values())
            document = wait_for_document(
                server,
                lambda d, total=total: (
                    tool_calls(d) == total and d["system_metrics"]["processes"] == 1 + supervisor
                ),
                f"{before} calls before the reload and {total - before} after",
                query="?per_process=1",
            )
            readings.append(tool_calls(document))
            rows = document["processes"]
            live = {row["pid"]: row["tool_calls"] for row in rows if row["live"]}
            assert {pid: calls for pid, calls in live.items() if calls} == dict(answered), rows
            assert sum(row["tool_calls"] for row in rows if not row["live"]) == before, rows
            system = document["system_metrics"]
            assert system["active_sessions"] == 0
            assert system["concurrent_requests"] == 0
            # Uptime is the longest-running live process's: in code, the new worker's (a
            # reload starts it over); under otel-perf run, the reloader's.
            if in_code:
                assert system["uptime_seconds"] <= time.monotonic() - reloaded + 0.5, system
            else:
                assert system["uptime_seconds"] >= time.monotonic() - started - 1.0, system
    drops = [(a, b) for a, b in itertools.pairwise(readings) if b < a]
    assert not drops, f"totals went down: {drops} in {readings}"
    assert "cannot serve metrics" not in server.output()

    # The same command started again is a new run (another reloader: another group), from
    # zero; what the ended run kept is swept when this run's first process joins.
    groups = runtime_dir(tmp_path) / f"otel-perf-{os.getuid()}"
    ended = sorted(groups.glob(f"*-{metrics_port}"))  # the group directories (not endpoints/)
    left = [p.name for d in ended for p in d.iterdir() if p.name.endswith((".pb", ".json"))]
    if in_code:
        # Kept while the reloader ran (its last worker ended first); the reloader has ended.
        assert "supervisor.json" in left, left
    else:
        assert not left, left  # the reloader was the last process, and had no supervisor
    with running(command, tmp_path, env=env, port=port, metrics_port=metrics_port) as again:
        answered = drive(again, 2, 3)
        wait_for_document(again, lambda d: tool_calls(d) == 6, "this run's 6 calls only")
        assert sum(answered.values()) == 6
        time.sleep(1.5)  # a sharing interval or more: still this run's calls only
        assert tool_calls(metrics(again)) == 6
        for directory in ended:
            assert not [p.name for p in directory.iterdir() if p.name.endswith((".pb", ".json"))]


@pytest.mark.parametrize("server_kind", ["uvicorn", "gunicorn"])
def test_otel_perf_run_instruments_every_worker(tmp_path: Path, server_kind: str) -> None:
    port, metrics_port = ports()
    env = server_env({"METRICS_JSON_PORT": str(metrics_port)})  # no instrumentation in the app
    inner = {
        "uvicorn": lambda: uvicorn_command(port, 3),
        "gunicorn": lambda: gunicorn_command(port, 3, preload=False),
    }[server_kind]()
    with running(
        otel_perf_run(inner), tmp_path, env=env, port=port, metrics_port=metrics_port
    ) as server:
        # The supervisor (uvicorn) or master (gunicorn) serves, and counts as one
        # of the live processes (with no calls of its own).
        _check_exact(server, supervisor=1)
    assert "cannot serve metrics" not in server.output()


def test_killed_worker_and_holder_never_take_counts_back(tmp_path: Path) -> None:
    port, metrics_port = ports()
    env = _instrumented_env(metrics_port)
    with running(
        uvicorn_command(port, 3), tmp_path, env=env, port=port, metrics_port=metrics_port
    ) as server:
        first = sum(drive(server, 6, 10).values())
        document = wait_for_document(
            server,
            lambda d: tool_calls(d) == first and d["system_metrics"]["processes"] == 3,
            "the first calls",
            query="?per_process=1",
        )
        rows = [row for row in document["processes"] if row["pid"] is not None]
        holder = next(row["pid"] for row in rows if row["serving"])
        worker = next(row["pid"] for row in rows if not row["serving"] and row["tool_calls"])

        seen: list[int] = []

        def watch(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                document = try_metrics(server)
                if document is not None:
                    seen.append(tool_calls(document))
                time.sleep(0.05)

        os.kill(worker, signal.SIGKILL)  # a worker dies mid-run
        watch(3.0)
        os.kill(holder, signal.SIGKILL)  # then the process serving the endpoint
        watch(4.0)
        assert seen, "the endpoint never answered"
        drops = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(seen)) if b < a]
        assert not drops, f"totals went down: {drops} of {len(seen)} readings"
        assert seen[-1] == first, "another process took over with the totals intact"

        survivor = next(row["pid"] for row in rows if row["pid"] not in (holder, worker))
        answered = drive(server, 6, 10)
        second = sum(answered.values())
        # A worker joins its server when it first records: the survivor (serving now) and the
        # restarted workers that answered.
        live = len({survivor, *answered})
        wait_for_document(
            server,
            lambda d: tool_calls(d) == first + second and d["system_metrics"]["processes"] == live,
            f"every call, the killed workers' included, from {live} live processes",
        )


def _handed_over_calls(directory: Path, pid: int) -> int:
    """The calls in the file process ``pid`` last handed over (0 if none yet)."""
    from otel_perf._extract import extract
    from otel_perf._multiprocess import codec

    for path in directory.glob(f"*/p.{pid}.*.pb"):
        payload = path.read_bytes()
        if payload:
            tools = extract(codec.decode(payload)).tools
            return tools["pid"].total if "pid" in tools else 0
    return 0


def test_the_only_worker_killed_and_restarted_keeps_its_counts(tmp_path: Path) -> None:
    """gunicorn -w 1: its one worker hands over every second (its master starts the next)."""
    port, metrics_port = ports()
    groups = runtime_dir(tmp_path) / f"otel-perf-{os.getuid()}"
    env = _instrumented_env(metrics_port, XDG_RUNTIME_DIR=str(runtime_dir(tmp_path)))
    command = gunicorn_command(port, 1, preload=False)
    with running(command, tmp_path, env=env, port=port, metrics_port=metrics_port) as server:
        first = drive(server, 4, 5)
        (worker,) = first
        wait_for_document(server, lambda d: tool_calls(d) == 20, "the first 20 calls")
        deadline = time.monotonic() + WAIT_S
        while _handed_over_calls(groups, worker) != 20:
            assert time.monotonic() < deadline, "the lone worker never handed its calls over"
            time.sleep(0.1)
        os.kill(worker, signal.SIGKILL)
        second = drive(server, 4, 5)  # the master starts another worker, which answers these
        assert worker not in second
        document = wait_for_document(
            server,
            lambda d: tool_calls(d) == 40 and d["system_metrics"]["processes"] == 1,
            "the killed worker's 20 calls and its successor's 20",
            query="?per_process=1",
        )
        ended = [row for row in document["processes"] if not row["live"]]
        assert sum(row["tool_calls"] for row in ended) == 20, document["processes"]
    assert "cannot serve metrics" not in server.output()


def test_unrelated_server_on_the_port_is_not_merged(tmp_path: Path) -> None:
    """A second server (another group) finding the port taken warns once and keeps its own."""
    port, metrics_port = ports()
    first_env = _instrumented_env(metrics_port, OTEL_PERF_GROUP="first")
    with running(
        uvicorn_command(port, 2), tmp_path, env=first_env, port=port, metrics_port=metrics_port
    ) as first:
        drive(first, 2, 5)
        wait_for_document(first, lambda d: tool_calls(d) == 10, "the first server's calls")
        other_port, _ = ports()
        other_env = _instrumented_env(metrics_port, OTEL_PERF_GROUP="second")
        with running(
            uvicorn_command(other_port, 1),
            tmp_path,
            env=other_env,
            port=other_port,
            metrics_port=metrics_port,
        ) as second:
            drive(second, 1, 7)
            time.sleep(2.5)  # several sharing intervals
            assert tool_calls(metrics(first)) == 10
        output = second.output()
    assert output.count("cannot serve metrics") == 1, output
    assert "another program holds the port" in output
    assert "METRICS_JSON_PORT" in output


def test_garbage_in_the_group_directory_changes_nothing_but_one_warning(tmp_path: Path) -> None:
    port, metrics_port = ports()
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = _instrumented_env(metrics_port, OTEL_PERF_GROUP="garbled", XDG_RUNTIME_DIR=str(runtime))
    with running(
        uvicorn_command(port, 2), tmp_path, env=env, port=port, metrics_port=metrics_port
    ) as server:
        first = sum(drive(server, 4, 5).values())
        wait_for_document(server, lambda d: tool_calls(d) == first, "the first calls")
        directory = runtime / f"otel-perf-{os.getuid()}" / f"garbled-{metrics_port}"
        # A file named like a running process's (the test's own pid), full of garbage.
        (directory / f"p.{os.getpid()}.0.pb").write_bytes(b"\xff\x00not protobuf" * 100)
        second = sum(drive(server, 4, 5).values())
        wait_for_document(server, lambda d: tool_calls(d) == first + second, "every call")
        time.sleep(1.5)
        assert tool_calls(metrics(server)) == first + second
    assert server.output().count("left a file of this server's group out") == 1


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_children_count_on_the_parents_endpoint(
    tmp_path: Path, method: str
) -> None:
    _, metrics_port = ports()
    ready = tmp_path / "ready"
    env = server_env(
        {"METRICS_JSON_PORT": str(metrics_port), "XDG_RUNTIME_DIR": str(runtime_dir(tmp_path))}
    )
    log = tmp_path / "mp.log"
    script = Path(__file__).resolve().parents[1] / "support" / "servers" / "mp_children.py"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(script), method, "3", "20", str(ready)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        server = Running(process, 0, metrics_port, log)
        document = wait_for_document(
            server,
            lambda d: tool_calls(d, "child") == 60 and tool_calls(d, "parent") == 1,
            "the children's calls on the parent's endpoint",
        )
        assert document["system_metrics"]["processes"] == 1  # the children have ended
    finally:
        Path(f"{ready}.stop").write_text("stop")
        process.wait(30)
    assert "cannot serve metrics" not in log.read_text()


def test_sigterm_delivers_every_workers_calls_over_otlp(tmp_path: Path) -> None:
    """uvicorn --workers stopped by SIGTERM: each worker's calls reach a real OTLP receiver."""
    handler = Recorder()
    sink = LoopbackHttpSink(handler)
    sink.start()
    port, metrics_port = ports()
    env = _instrumented_env(
        metrics_port,
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=sink.endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="600000",  # only the last exports can deliver
    )
    try:
        with running(
            uvicorn_command(port, 2), tmp_path, env=env, port=port, metrics_port=metrics_port
        ) as server:
            pids = drive(server, 6, 10)
            wait_for_document(server, lambda d: tool_calls(d) == 60, "the calls")
            assert stop(server.process) == 0
        received: dict[str, int] = {}
        for resource, metric, _, point in iter_points(handler.snapshot()):
            attributes = attributes_of(point.attributes)
            if metric.name == n.MCP_SERVER_OPERATION_DURATION and attributes.get(
                n.GEN_AI_TOOL_NAME
            ):
                # cumulative: the newest point of each process (service.instance.id) counts
                received[resource["service.instance.id"]] = int(point.count)
        assert sum(received.values()) == sum(pids.values()) == 60
        assert len(received) == len(pids)
    finally:
        sink.stop()


def test_the_benchmark_rows_run_and_leave_otel_perf_unconfigured(tmp_path: Path) -> None:
    """The harness's "Many processes" section (run with --quick), as a smoke test."""
    output = tmp_path / "results.md"
    code = (
        "import benchmarks.__main__ as m, otel_perf._state as s;"
        f"m.main(['--quick', '--only', 'multiprocess', '--output', {str(output)!r}]);"
        "print(s.runtime is None and s.current is s.UNCONFIGURED)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"
    text = output.read_text()
    for row in ("contributing, 500 tools, idle", "answer time, 500 tools, 4 processes"):
        assert row in text
