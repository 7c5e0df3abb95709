"""A small registry of the metrics endpoints running on this machine, for ``otel-perf top``.

MCP clients spawn stdio servers with a bare environment, and two clients spawning the same
server cannot both have port 9109: the second one's endpoint lands elsewhere (or on a free
port with ``METRICS_JSON_PORT=0``), and nobody knows where. So every endpoint, once it
listens, leaves one small file in the user's runtime directory
(``$XDG_RUNTIME_DIR/otel-perf-<uid>/endpoints``, else the same under the temporary directory;
a directory only the user can write), and removes it when it stops. ``otel-perf top`` /
``snapshot`` without a URL read them, drop those whose process is gone (a killed process never
removes its file), and offer the live ones.

An entry holds the URL, process id, service name, start time and whether a token is needed,
never the token itself. Nothing here raises: a registry that cannot be written only costs the
discovery (one debug line).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

from otel_perf._log import logger


class Entry(NamedTuple):
    """One registered endpoint."""

    url: str
    pid: int
    service: str
    started: float
    token_required: bool
    path: Path


def registry_dir(runtime: str | None) -> Path | None:
    """The user's registry directory, created if needed; ``None`` if none is safe to use.

    ``<base>/otel-perf-<uid>/endpoints``, where ``<base>`` is ``runtime`` (the
    ``XDG_RUNTIME_DIR`` setting, see otel_perf._settings.runtime_dir) when it is an existing
    absolute directory, else the temporary directory. The ``otel-perf-<uid>`` directory is
    shared with other per-user state of otel-perf; entries live in their own ``endpoints``
    folder so nothing else there is ever read or removed.
    """
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        base = Path(runtime)
    else:
        import tempfile  # noqa: PLC0415 - only without a runtime directory (start-up counts)

        base = Path(tempfile.gettempdir())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = base / f"otel-perf-{uid}"
    directory = root / "endpoints"
    for path in (root, directory):
        if not _private_directory(path):
            return None
    return directory


def _private_directory(path: Path) -> bool:
    """Create ``path`` (0700) or check the existing one: ours, a directory, private."""
    try:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
    except OSError:
        logger.debug("otel-perf: no endpoint registry at %s", path, exc_info=True)
        return False
    # In a shared temporary directory another user could have made it first: use it only if
    # it is ours and nobody else's to write.
    if (
        not stat.S_ISDIR(info.st_mode)
        or (hasattr(os, "getuid") and info.st_uid != os.getuid())
        or info.st_mode & 0o022
    ):
        logger.debug("otel-perf: %s is not a private directory of this user; no registry", path)
        return False
    return True


def register(url: str, service: str, token_required: bool, runtime_dir: str | None) -> Path | None:
    """Record this process's endpoint under ``runtime_dir`` (see :func:`registry_dir`);
    returns the entry's path (for :func:`unregister`)."""
    directory = registry_dir(runtime_dir)
    if directory is None:
        return None
    pid = os.getpid()
    port = url.rsplit(":", 1)[-1]
    path = directory / f"{pid}-{port}.json"
    entry = {
        "url": url,
        "pid": pid,
        "service": service,
        "started": time.time(),
        "token_required": token_required,
    }
    partial = path.with_suffix(".partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            json.dump(entry, stream)
        partial.replace(path)  # readers never see half an entry
    except OSError:
        logger.debug("otel-perf: could not register the endpoint", exc_info=True)
        return None
    return path


def unregister(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _alive(pid: int) -> bool:
    if os.name != "posix":
        # On Windows os.kill(pid, 0) would terminate the process: no liveness check there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that number: not ours, but alive
        return True
    except OSError:
        return False
    return True


def live_endpoints(runtime_dir: str | None) -> list[Entry]:
    """The endpoints registered under ``runtime_dir`` whose process still runs, oldest first;
    dead ones removed."""
    directory = registry_dir(runtime_dir)
    if directory is None:
        return []
    found = []
    for path in sorted(directory.glob("*-*.json")):  # <pid>-<port>.json, as register() names them
        try:
            raw = json.loads(path.read_text())
            entry = Entry(
                url=str(raw["url"]),
                pid=int(raw["pid"]),
                service=str(raw.get("service", "")),
                started=float(raw.get("started", 0.0)),
                token_required=bool(raw.get("token_required", False)),
                path=path,
            )
        except (OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):
                path.unlink()  # unreadable: not an entry anybody can use
            continue
        if not _alive(entry.pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found.append(entry)
    return sorted(found, key=lambda e: e.started)


__all__ = ["Entry", "live_endpoints", "register", "registry_dir", "unregister"]
