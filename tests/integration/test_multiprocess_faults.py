"""The group directory under bad input and faults: one warning each, a safe fallback.

A real :class:`~otel_perf._multiprocess.member.Member` over a directory in ``tmp_path``, with
files written as other processes would write them (or as a hostile one would).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_perf._multiprocess import codec, join_group, store
from otel_perf._multiprocess.group import process_start_ticks
from otel_perf._multiprocess.member import MAX_PROCESSES, STALE_S, Member
from otel_perf._multiprocess.supervisor import Supervisor, current_supervisor
from otel_perf._pipeline import Pipeline
from otel_perf._settings import Settings
from tests.support.supervised_member import join_record_leave


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline(Settings(json_enabled=False))
    yield made
    made.shutdown(1.0)


def other_process(calls: int, sessions: int = 0) -> bytes:
    """What another process of the group writes: its encoded cumulative numbers."""
    other = Pipeline(Settings(json_enabled=False))
    try:
        for _ in range(calls):
            other.recorder.record_tool_call("t", True, 1.0)
        other.recorder.set_active_sessions(sessions)
        data = other.collect()
        assert data is not None
        return codec.encode(data)
    finally:
        other.shutdown(1.0)


def ended_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def member(tmp_path: Path, pipeline: Pipeline) -> Member:
    directory = tmp_path / "group"
    directory.mkdir(mode=0o700, exist_ok=True)
    joined = Member("test", directory, pipeline.collect)
    joined.holding = True
    return joined


def calls_and_sessions(joined: Member, pipeline: Pipeline) -> tuple[int, int, int]:
    from otel_perf._extract import extract

    merged = extract(joined.merged(pipeline.collect))
    return (
        merged.tools["t"].total if "t" in merged.tools else 0,
        merged.active_sessions,
        (joined.live_processes()),
    )


def warnings_of(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_a_garbled_or_hostile_file_is_left_out_with_one_warning(
    tmp_path: Path, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otel_perf")
    joined = member(tmp_path, pipeline)
    parent = os.getppid()
    start = process_start_ticks(parent) or 0
    good = store.file_name(parent, start)
    (joined.directory / good).write_bytes(other_process(4))
    (joined.directory / store.file_name(parent, start + 1)).write_bytes(b"\x00garbage\xff" * 50)
    # A symbolic link to a file elsewhere, and a file far too large: neither is read.
    secret = tmp_path / "secret"
    secret.write_bytes(other_process(100))
    (joined.directory / store.file_name(parent, start + 2)).symlink_to(secret)
    with (joined.directory / store.file_name(parent, start + 3)).open("wb") as big:
        big.truncate(store.MAX_FILE_BYTES + 1)
    pipeline.recorder.record_tool_call("t", True, 1.0)
    for _ in range(3):
        assert calls_and_sessions(joined, pipeline)[0] == 1 + 4
    assert len(warnings_of(caplog, "left a file of this server's group out")) == 3  # one each
    assert not any("garbage" in m for m in warnings_of(caplog, "left a file"))


def test_an_ended_process_keeps_its_counters_but_not_its_sessions(
    tmp_path: Path, pipeline: Pipeline
) -> None:
    joined = member(tmp_path, pipeline)
    gone = store.file_name(ended_pid(), 1)
    (joined.directory / gone).write_bytes(other_process(7, sessions=5))
    assert calls_and_sessions(joined, pipeline) == (7, 0, 1)
    joined.compact()  # folded into the archive, its file deleted
    assert not (joined.directory / gone).exists()
    assert calls_and_sessions(joined, pipeline) == (7, 0, 1)
    # A holder that died after writing the archive but before deleting the file it absorbed
    # must not count it twice.
    (joined.directory / gone).write_bytes(other_process(7, sessions=5))
    assert calls_and_sessions(joined, pipeline) == (7, 0, 1)
    joined.compact()
    assert not (joined.directory / gone).exists()
    assert calls_and_sessions(joined, pipeline) == (7, 0, 1)


def test_a_hung_process_leaves_the_sessions_with_one_warning(
    tmp_path: Path, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otel_perf")
    joined = member(tmp_path, pipeline)
    parent = os.getppid()  # a running process that never updates the file: "hung"
    path = joined.directory / store.file_name(parent, process_start_ticks(parent) or 0)
    path.write_bytes(other_process(3, sessions=2))
    assert calls_and_sessions(joined, pipeline) == (3, 2, 2)
    old = time.time() - STALE_S - 5
    os.utime(path, (old, old))
    for _ in range(2):
        assert calls_and_sessions(joined, pipeline) == (3, 0, 1)
    assert len(warnings_of(caplog, "has not handed its numbers over")) == 1


def test_more_processes_than_expected_are_capped_with_one_warning(
    tmp_path: Path, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otel_perf")
    joined = member(tmp_path, pipeline)
    payload = other_process(1)
    for start in range(MAX_PROCESSES + 20):
        (joined.directory / store.file_name(os.getppid(), start + 10**9)).write_bytes(payload)
    seen, _, _ = joined.others()
    assert len(seen) == MAX_PROCESSES
    joined.others()
    assert len(warnings_of(caplog, "processes' files")) == 1


def test_a_failing_write_warns_once_and_recovers(
    tmp_path: Path, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "otel_perf")
    joined = member(tmp_path, pipeline)
    own = joined.directory / joined.name
    own.mkdir()  # as good as a full disk: the rename onto it fails
    for _ in range(3):
        joined.publish()
    assert len(warnings_of(caplog, "cannot hand this process's numbers")) == 1
    assert list(joined.directory.glob(".tmp.*")) == []  # nothing half-written left behind
    own.rmdir()
    joined.publish()
    assert own.is_file()
    assert warnings_of(caplog, "works again")


def test_an_unusable_directory_means_alone_with_one_warning(
    tmp_path: Path,
    pipeline: Pipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "otel_perf")
    settings = Settings(group="blocked", runtime_dir=str(tmp_path))
    (tmp_path / f"otel-perf-{os.getuid()}").write_text("not a directory")
    assert join_group(pipeline.collect, settings)[0] is None
    other = tmp_path / "other"
    other.mkdir(mode=0o777)
    os.chmod(other, 0o777)  # noqa: S103 - a directory others may write to is refused too
    (other / f"otel-perf-{os.getuid()}").mkdir(mode=0o700)
    os.chmod(other / f"otel-perf-{os.getuid()}", 0o777)  # noqa: S103 - the point here
    assert (
        join_group(pipeline.collect, Settings(group="blocked", runtime_dir=str(other)))[0] is None
    )
    assert len(warnings_of(caplog, "cannot share numbers")) == 1  # warn-once


def test_the_rows_show_each_process_and_the_ended_ones(tmp_path: Path, pipeline: Pipeline) -> None:
    joined = member(tmp_path, pipeline)
    parent = os.getppid()
    (joined.directory / store.file_name(parent, process_start_ticks(parent) or 0)).write_bytes(
        other_process(2)
    )
    (joined.directory / store.file_name(ended_pid(), 1)).write_bytes(other_process(5))
    joined.compact()
    joined.merged(pipeline.collect)
    rows: list[dict[str, Any]] = joined.rows()
    assert sorted((row["pid"] is None, row["live"], row["tool_calls"]) for row in rows) == [
        (False, True, 2),
        (True, False, 5),
    ]


def test_one_group_configured_for_two_ports_is_two_servers(
    tmp_path: Path, pipeline: Pipeline
) -> None:
    shared = Settings(group="shared", runtime_dir=str(tmp_path))
    first, _ = join_group(pipeline.collect, dataclasses.replace(shared, json_port=9109))
    second, _ = join_group(pipeline.collect, dataclasses.replace(shared, json_port=9110))
    again, _ = join_group(pipeline.collect, dataclasses.replace(shared, json_port=9109))
    assert first is not None
    assert second is not None
    assert again is not None
    assert first.directory != second.directory
    assert first.directory == again.directory
    for member in (first, second, again):
        member.stop(1.0)


def _supervised_child(directory: Path, calls: int, sessions: int, tmp_path: Path) -> Any:
    """One process of the group, started by this one through multiprocessing; what it saw."""
    result = tmp_path / f"child-{calls}-{sessions}.json"
    child = multiprocessing.get_context("spawn").Process(
        target=join_record_leave, args=(str(directory), calls, sessions, str(result))
    )
    child.start()
    child.join(60)
    if child.exitcode is None:
        child.kill()
        child.join(5)
    assert child.exitcode == 0
    return json.loads(result.read_text())


def test_a_supervised_runs_numbers_stay_for_its_supervisors_next_process_only(
    tmp_path: Path, pipeline: Pipeline
) -> None:
    assert current_supervisor() is None, "the test process must not be a supervised one"
    directory = tmp_path / "group"
    directory.mkdir(mode=0o700)
    me = Supervisor(os.getpid(), process_start_ticks(os.getpid()) or 0)
    first = _supervised_child(directory, 5, 3, tmp_path)
    assert first == {"calls": 5, "sessions": 3, "supervisor": me.pid}
    # The run's last process has ended, its supervisor (this process) runs: the numbers stay.
    assert store.read_supervisor(directory) == me
    assert len(store.process_files(directory)) == 1
    # The supervisor's next process continues from them; the ended one's sessions are closed.
    second = _supervised_child(directory, 2, 1, tmp_path)
    assert second == {"calls": 7, "sessions": 1, "supervisor": me.pid}
    # A process started any other way (this one) finds them and starts a new run, from zero.
    joined = Member("test", directory, pipeline.collect)
    joined.join()
    assert joined.supervisor is None
    pipeline.recorder.record_tool_call("t", True, 1.0)
    assert calls_and_sessions(joined, pipeline) == (1, 0, 1)
    assert store.read_supervisor(directory) is None
    joined.stop(1.0)
    assert not directory.exists()  # the last process of a run without a supervisor


def test_the_supervisor_is_a_parent_that_forked_without_exec_or_used_multiprocessing() -> None:
    # (multiprocessing: the test above.) A forked copy that has not exec'd, as a pre-fork
    # master's worker is.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            found = current_supervisor()
            answer = None if found is None else [found.pid, found.start]
            os.write(write, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as answer:
        assert json.loads(answer.read()) == [os.getpid(), process_start_ticks(os.getpid())]
    # A program this process starts (fork and exec), as a shell starts a server or an MCP
    # client its stdio server: no supervisor, so each start of it is a new run.
    code = "from otel_perf._multiprocess.supervisor import current_supervisor as c; print(c())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "None"


def test_ended_runs_are_swept_at_once_when_their_supervisor_has_ended_too(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    payload = other_process(1)

    def ended_run(name: str, supervisor: Supervisor | None, age_s: float) -> Path:
        directory = root / name
        directory.mkdir(mode=0o700)
        (directory / store.file_name(ended_pid(), 1)).write_bytes(payload)
        if supervisor is not None:
            store.write_supervisor(directory, supervisor)
        old = time.time() - age_s
        os.utime(directory, (old, old))
        return directory

    def left(directory: Path) -> list[str]:
        return sorted(p.name for p in directory.iterdir()) if directory.exists() else []

    me = Supervisor(os.getpid(), process_start_ticks(os.getpid()) or 0)
    gone = Supervisor(ended_pid(), 1)
    day = store.SWEEP_AFTER_S
    supervisor_ended = ended_run("supervisor-ended", gone, 0)
    supervisor_runs = ended_run("supervisor-runs", me, 2 * day)
    crashed_lately = ended_run("crashed-lately", None, 0)
    crashed_long_ago = ended_run("crashed-long-ago", None, 2 * day)
    locked_now = ended_run("locked-now", gone, 0)
    kept = left(supervisor_runs)
    with store.locked(locked_now) as held:  # a process joining it holds its lock
        assert held
        started = time.monotonic()
        store.sweep(root, keep=root / "mine")
        assert time.monotonic() - started < store.LOCK_WAIT_S  # never waits for a lock
    assert left(supervisor_ended) == [store.LOCK]  # numbers gone; the day-old sweep takes the rest
    assert left(supervisor_runs) == kept  # its next process will continue them, however late
    assert len(store.process_files(crashed_lately)) == 1
    assert not crashed_long_ago.exists()
    assert len(store.process_files(locked_now)) == 1
    assert store.read_supervisor(locked_now) == gone


def test_a_garbled_supervisor_record_is_no_supervisor(tmp_path: Path, pipeline: Pipeline) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"pid": os.getpid(), "start": 0}))
    garbled: list[bytes | None] = [
        b"garbage",
        b'{"pid": "x", "start": 1}',
        b'{"pid": 1, "start": 0}',
        b"[]",
        b"{" * 5000,
        None,  # a symbolic link to a file elsewhere: never followed
    ]
    for number, content in enumerate(garbled):
        directory = tmp_path / f"group-{number}"
        directory.mkdir(mode=0o700)
        record = directory / store.SUPERVISOR
        if content is None:
            record.symlink_to(elsewhere)
        else:
            record.write_bytes(content)
        (directory / store.file_name(ended_pid(), 1)).write_bytes(other_process(4))
        assert store.read_supervisor(directory) is None, content
        joined = Member("test", directory, pipeline.collect)
        joined.join()
        assert calls_and_sessions(joined, pipeline) == (0, 0, 1), content  # a new run
        joined.stop(1.0)
