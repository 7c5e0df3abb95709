"""Which processes are one server, and where they leave their numbers.

"One server" is the set of processes that share a *group*, named by ``OTEL_PERF_GROUP``:

- set in the environment (by you, or inherited): that group;
- unset: derived from the parent process and the command line — the parent's pid and start
  time, the interpreter and ``sys.argv`` — so the workers a supervisor (uvicorn, gunicorn,
  ``multiprocessing``) starts for one command agree on it without talking to each other; the
  first process that configures then writes it into ``os.environ``, so every process it
  starts later (forked, spawned or exec'd) inherits it;
- ``off``: this process shares nothing (each process alone, as before 0.x).

Unrelated programs never share a group by accident: a different parent or a different
command line gives a different one. Processes of one group configured for different ports
(``METRICS_JSON_PORT``) are different servers. The directory of a group and port is
``$XDG_RUNTIME_DIR/otel-perf-<uid>/<group>-<port>`` (or the temporary directory when there is
no runtime directory), created private to the user (mode 0700) and refused if anyone else
owns it or can write to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Final

from otel_perf._settings import OTEL_PERF_GROUP

GROUP_ENV: Final = OTEL_PERF_GROUP
"""The group this process belongs to; ``off`` turns sharing off for it (see the module doc).
Read with the other settings (otel_perf._settings); only a derived group is written here."""

OFF: Final = frozenset({"off", "none", "false", "0"})
_VALID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class GroupError(OSError):
    """The group's directory cannot be used safely (its text names no secret)."""


def process_status(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of ``pid`` (Linux ``/proc``), or
    ``None`` when unknown (no ``/proc``) or gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode("ascii", "replace"), int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, Linux), or ``None`` if unknown/gone."""
    status = process_status(pid)
    return status[1] if status is not None else None


def derived_group() -> str:
    """The group a process gets without ``OTEL_PERF_GROUP``: its parent and its command."""
    parent = os.getppid()
    seed = "\0".join(
        [
            str(os.getuid() if hasattr(os, "getuid") else 0),
            str(parent),
            str(process_start_ticks(parent)),
            sys.executable,
            *sys.argv,
        ]
    )
    return "g" + hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def resolve_group(
    raw: str | None, environ: MutableMapping[str, str]
) -> tuple[str | None, str | None]:
    """(group or ``None`` when off, warning): the group ``raw`` names (the ``OTEL_PERF_GROUP``
    setting), or a derived one.

    A derived group is written into ``environ`` (``os.environ``) so this process's children
    inherit it.
    """
    if raw is not None and raw.strip():
        value = raw.strip()
        if value.lower() in OFF:
            return None, None
        if _VALID.fullmatch(value):
            return value, None
        group = derived_group()
        environ[GROUP_ENV] = group
        return group, (
            f"{GROUP_ENV} is invalid (letters, digits, '.', '_', '-', at most 64); "
            "using a group derived from the parent process"
        )
    group = derived_group()
    environ[GROUP_ENV] = group
    return group, None


def base_directory(runtime: str | None) -> Path:
    """``runtime`` (the ``XDG_RUNTIME_DIR`` setting) when it is usable, else the temporary
    directory."""
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime)
    return Path(tempfile.gettempdir())


def _private_directory(path: Path) -> None:
    """Create ``path`` (mode 0700) or check the existing one is ours and private."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise GroupError(f"{path} is not a directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise GroupError(f"{path} belongs to another user")
    if info.st_mode & 0o022:
        raise GroupError(f"{path} is writable by other users")


def group_directory(group: str, base: Path) -> Path:
    """The group's private directory under ``base``, created if needed; raises
    OSError/GroupError."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = base / f"otel-perf-{uid}"
    _private_directory(root)
    directory = root / group
    _private_directory(directory)
    return directory
