"""Whether this process's parent is its server's *supervisor*: the process that starts the
server's next worker when this one ends (a reload, a crash, a worker recycled).

The parent is the supervisor when it started this process

- through ``multiprocessing`` (``multiprocessing.parent_process()`` is the parent): uvicorn's
  ``--reload`` reloader and its ``--workers`` supervisor, ``multiprocessing`` pools; or
- as a copy of itself, forked and not exec'd since (Linux: the kernel's ``PF_FORKNOEXEC`` flag
  in ``/proc/self/stat``): a pre-fork master such as gunicorn's, whatever it names its
  processes, or a forking server.

A shell, an MCP client starting a stdio server, systemd or a test harness starts a program with
fork *and exec*, and is not a supervisor: the same command started again from it is a new run.
The numbers of a server whose last process ended are kept only while that process's supervisor
runs, for the next process it starts (see :mod:`.member`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final, NamedTuple

from otel_perf._multiprocess.group import process_start_ticks

#: The kernel's per-process flag "forked but didn't exec" (``include/linux/sched.h``; the
#: ninth field of ``/proc/<pid>/stat``, see proc(5)).
_PF_FORKNOEXEC: Final = 0x40


class Supervisor(NamedTuple):
    """A process by pid and start time (clock ticks since boot; ``0`` when unknown), so a
    reused pid is another process."""

    pid: int
    start: int


def current_supervisor() -> Supervisor | None:
    """This process's supervisor (its parent, see the module doc), or ``None``."""
    # pid 1 may well be a supervisor (gunicorn or uvicorn as a container's first process); a
    # process orphaned and adopted by init or a subreaper gets that one as its supervisor,
    # which is never the one its run recorded (see member.Member.join), so nothing is kept.
    parent = os.getppid()
    if parent <= 0:  # a parent in another pid namespace
        return None
    if not (_started_by_multiprocessing(parent) or _forked_without_exec()):
        return None
    return Supervisor(parent, process_start_ticks(parent) or 0)


def _started_by_multiprocessing(parent: int) -> bool:
    # A process that multiprocessing started has its module loaded already: looking it up
    # here costs no import in every other process.
    module = sys.modules.get("multiprocessing.process")
    if module is None:
        return False
    try:
        found = module.parent_process()
    except Exception:
        return False
    # A process forked by a multiprocessing child inherits that child's record of its own
    # parent: only the recorded parent that is ours counts.
    return found is not None and found.pid == parent


def _forked_without_exec() -> bool:
    try:
        raw = Path("/proc/self/stat").read_bytes()
    except OSError:
        return False  # no /proc (macOS): only the multiprocessing case is known there
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return bool(int(fields[6]) & _PF_FORKNOEXEC)
    except (IndexError, ValueError):
        return False
