"""The group directory under bad input and faults: one warning each, a safe fallback.

A real :class:`~otel_perf._multiprocess.member.Member` over a directory in ``tmp_path``, with
files written as other processes would write them (or as a hostile one would).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_perf._multiprocess import codec, join_group, store
from otel_perf._multiprocess.group import GROUP_ENV, process_start_ticks
from otel_perf._multiprocess.member import MAX_PROCESSES, STALE_S, Member
from otel_perf._pipeline import Pipeline
from otel_perf._settings import Settings


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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, "otel_perf")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv(GROUP_ENV, "blocked")
    (tmp_path / f"otel-perf-{os.getuid()}").write_text("not a directory")
    assert join_group(pipeline.collect) is None
    other = tmp_path / "other"
    other.mkdir(mode=0o777)
    os.chmod(other, 0o777)  # noqa: S103 - a directory others may write to is refused too
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(other))
    (other / f"otel-perf-{os.getuid()}").mkdir(mode=0o700)
    os.chmod(other / f"otel-perf-{os.getuid()}", 0o777)  # noqa: S103 - the point here
    assert join_group(pipeline.collect) is None
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
    tmp_path: Path, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv(GROUP_ENV, "shared")
    first = join_group(pipeline.collect, 9109)
    second = join_group(pipeline.collect, 9110)
    again = join_group(pipeline.collect, 9109)
    assert first is not None
    assert second is not None
    assert again is not None
    assert first.directory != second.directory
    assert first.directory == again.directory
    for member in (first, second, again):
        member.stop(1.0)
