"""The group directory's files: each process's state, the ended processes' archive, the holder.

Files (all written to a temporary name, then renamed into place, so a reader sees a whole
file or the previous one, never half of one):

- ``p.<pid>.<start>.pb``: one process's cumulative numbers (an OTLP protobuf message, see
  :mod:`.codec`), rewritten every sharing interval; its modification time is its heartbeat;
- ``archive.pb``: the counters and histograms of processes that have ended, merged into one
  message (the way prometheus_client's multiprocess mode keeps a dead process's counters),
  with the names of the files it absorbed, so an absorbed file is never counted twice even
  if the holder dies between writing the archive and deleting them;
- ``holder.json``: which process serves the group's endpoint, on which port;
- ``supervisor.json``: the supervisor (:mod:`.supervisor`) of the run these numbers belong to,
  written by the run's first process when it has one: the numbers stay, after the run's last
  process has ended, for the next process that supervisor starts, and go once it has ended;
- ``.lock``: serialises claiming the port and compacting, with ``fcntl.flock``.

Reading is defensive: no symbolic links, regular files only, at most :data:`MAX_FILE_BYTES`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

from otel_perf._multiprocess.group import process_status
from otel_perf._multiprocess.supervisor import Supervisor

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: claims are not serialised
    fcntl = None  # type: ignore[assignment]

MAX_FILE_BYTES: Final = 32 * 1024 * 1024
ARCHIVE: Final = "archive.pb"
HOLDER: Final = "holder.json"
SUPERVISOR: Final = "supervisor.json"
LOCK: Final = ".lock"
_PREFIX: Final = "p."
_SUFFIX: Final = ".pb"
ABSORBED_ATTRIBUTE: Final = "otel_perf.absorbed"
#: How long a claim waits for another process's claim to finish before going ahead anyway.
LOCK_WAIT_S: Final = 2.0


class ProcessFile(NamedTuple):
    name: str
    pid: int
    start: int  # the process's start time (clock ticks, Linux), 0 when unknown


def file_name(pid: int, start: int | None) -> str:
    return f"{_PREFIX}{pid}.{start or 0}{_SUFFIX}"


def parse_name(name: str) -> ProcessFile | None:
    if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
        return None
    pid, _, start = name[len(_PREFIX) : -len(_SUFFIX)].partition(".")
    if not (pid.isascii() and pid.isdigit() and start.isascii() and start.isdigit()):
        return None
    if len(pid) > 10 or len(start) > 20:
        return None
    return ProcessFile(name, int(pid), int(start))


def is_alive(pid: int, start: int) -> bool:
    """Whether process ``pid`` that started at ``start`` still runs (not a reused pid)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process with that pid: our process is gone if start differs
    except OSError:
        return False
    status = process_status(pid)
    if status is not None:
        state, started = status
        if state in ("Z", "X"):  # ended, not yet reaped by its parent
            return False
        if start and started != start:
            return False  # the pid was reused by another process
    return True


def process_files(directory: Path) -> list[ProcessFile]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [f for f in map(parse_name, names) if f is not None]


def read_bytes(path: Path) -> tuple[bytes, float] | None:
    """The file's bytes and modification time; ``None`` if absent; OSError if unusable."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise OSError(errno.EFBIG, "file too large")
        chunks = []
        remaining = MAX_FILE_BYTES + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining <= 0:
            raise OSError(errno.EFBIG, "file too large")
        return b"".join(chunks), info.st_mtime
    finally:
        os.close(fd)


def write_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then rename it into place."""
    temporary = path.with_name(f".tmp.{os.getpid()}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def locked(directory: Path, *, shared: bool = False, wait_s: float = LOCK_WAIT_S) -> Iterator[bool]:
    """Hold the group's lock (waiting at most ``wait_s``); yields whether it is held.

    ``shared``: a reader's lock, held by many at once, excluding only the writers (claims and
    compactions), so a reader never sees an ended process's file gone and the archive not yet
    holding it. Never blocks for longer: a process stuck while holding the lock cannot stall
    the others, who then go ahead unserialised (at worst, two claim the port and one loses the
    bind, or one read misses an ended process's numbers).
    """
    if fcntl is None:
        yield False
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(directory / LOCK, flags, 0o600)
    except OSError:
        yield False
        return
    held = False
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
            except OSError:
                break
        yield held
    finally:
        if held:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class Holder(NamedTuple):
    pid: int
    start: int
    host: str
    port: int
    token: str | None  # sha256 of the holder's token, so a standby can tell it holds the same


def read_holder(directory: Path) -> Holder | None:
    try:
        found = read_bytes(directory / HOLDER)
        if found is None or len(found[0]) > 4096:
            return None
        raw: Any = json.loads(found[0])
        holder = Holder(
            pid=int(raw["pid"]),
            start=int(raw["start"]),
            host=str(raw["host"]),
            port=int(raw["port"]),
            token=None if raw.get("token") is None else str(raw["token"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not 0 < holder.port < 65536:
        return None
    return holder


def write_holder(directory: Path, holder: Holder) -> None:
    payload = json.dumps(
        {
            "pid": holder.pid,
            "start": holder.start,
            "host": holder.host,
            "port": holder.port,
            "token": holder.token,
        }
    ).encode()
    write_atomically(directory / HOLDER, payload)


def read_supervisor(directory: Path) -> Supervisor | None:
    """The supervisor recorded for the group's run, or ``None`` (none, or unreadable)."""
    try:
        found = read_bytes(directory / SUPERVISOR)
        if found is None or len(found[0]) > 4096:
            return None
        raw: Any = json.loads(found[0])
        recorded = Supervisor(pid=int(raw["pid"]), start=int(raw["start"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if recorded.pid > 1 else None


def write_supervisor(directory: Path, supervisor: Supervisor) -> None:
    payload = json.dumps({"pid": supervisor.pid, "start": supervisor.start}).encode()
    write_atomically(directory / SUPERVISOR, payload)


def clear_group(directory: Path) -> None:
    """Delete every file a group's processes wrote (the lock stays: others may hold it)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name != LOCK and (
            parse_name(name) is not None
            or name in (ARCHIVE, HOLDER, SUPERVISOR)
            or name.startswith(".tmp.")
        ):
            remove(directory / name)


def remove_group(directory: Path) -> None:
    """Delete the group's directory (the last process of a server leaving)."""
    clear_group(directory)
    remove(directory / LOCK)
    with contextlib.suppress(OSError):
        os.rmdir(directory)


#: A group directory untouched this long, with no process of it running, is swept away.
SWEEP_AFTER_S: Final = 24 * 3600.0


def in_use(directory: Path) -> bool:
    """Whether a process of the group still runs (its file's process, or the holder)."""
    if any(is_alive(f.pid, f.start) for f in process_files(directory)):
        return True
    holder = read_holder(directory)
    return holder is not None and is_alive(holder.pid, holder.start)


def sweep(root: Path, keep: Path) -> None:
    """Remove what ended runs left: at once when their supervisor has ended too, else a day
    after their last write (crashed runs). Numbers kept for a live supervisor stay."""
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries[:1000]:
        try:
            if entry.name == keep.name or not entry.is_dir(follow_symlinks=False):
                continue
            directory = Path(entry.path)
            supervisor = read_supervisor(directory)
            if supervisor is not None:
                if not is_alive(supervisor.pid, supervisor.start):
                    _clear_for_ended_supervisor(directory)
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < SWEEP_AFTER_S:
                continue
            if in_use(directory):
                continue
            remove_group(directory)
        except OSError:
            continue


def _clear_for_ended_supervisor(directory: Path) -> None:
    """Delete the numbers kept for a supervisor that has ended: nobody will continue them.

    Under the group's lock, without waiting for it, and checked again inside it: a process
    joining the group (one named by ``OTEL_PERF_GROUP`` can join after its supervisor has
    ended) is never cleared away. The directory and its lock stay, for the day-old sweep.
    """
    with locked(directory, wait_s=0.0) as held:
        if not held:
            return
        supervisor = read_supervisor(directory)
        if supervisor is None or is_alive(supervisor.pid, supervisor.start):
            return
        if in_use(directory):
            return
        clear_group(directory)
