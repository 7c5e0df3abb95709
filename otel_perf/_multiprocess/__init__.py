"""Many processes, one endpoint: the processes of one server merge their numbers.

- :mod:`.group`: which processes are one server (``OTEL_PERF_GROUP``) and their directory;
- :mod:`.supervisor`: whether a process's parent starts the server's next process (a reload);
- :mod:`.codec`: a process's cumulative ``MetricsData`` to OTLP protobuf bytes and back;
- :mod:`.store`: the directory's files, written atomically and read defensively;
- :mod:`.merge`: many processes' data merged series by series;
- :mod:`.member`: one process's part: hand its numbers over, merge the others' when serving.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from otel_perf._log import warn_once
from otel_perf._multiprocess.group import (
    GROUP_ENV,
    base_directory,
    group_directory,
    resolve_group,
)
from otel_perf._multiprocess.member import INTERVAL_S, Member
from otel_perf._settings import Settings

if TYPE_CHECKING:  # see member.py's imports
    from opentelemetry.sdk.metrics.export import MetricsData


def join_group(
    collect: Callable[[], MetricsData | None], settings: Settings
) -> tuple[Member | None, Settings]:
    """This process's membership of its group, or ``None`` (sharing off, or impossible), and
    ``settings`` with the group this process belongs to.

    One server is one group *and* one configured port (``settings.json_port``; ``0`` is one
    more value): a process of the same group configured for another port is another server.
    The group's directory is under ``settings.runtime_dir``. A group derived here (no valid
    ``OTEL_PERF_GROUP``) is written into ``os.environ`` for the processes this one starts, and
    the next ``configure()`` reads it there: the settings returned carry it, so that
    ``configure()`` does not take this process's own write for a change.

    Never raises: a directory that cannot be used is one warning, and the process then serves
    (or fails to bind) alone, as a single process does.
    """
    if os.name != "posix":
        return None, settings  # liveness checks and locks here are POSIX ones: each alone
    try:
        group, warning = resolve_group(settings.group, os.environ)
        if warning is not None:
            warn_once("multiprocess-group", "otel-perf: %s", warning)
        if group is None:
            return None, settings
        settings = dataclasses.replace(settings, group=group)
        base = base_directory(settings.runtime_dir)
        member = Member(group, group_directory(f"{group}-{settings.json_port}", base), collect)
        member.join()
    except Exception as exc:
        warn_once(
            "multiprocess-join",
            "otel-perf: cannot share numbers with this server's other processes (%s: %s); "
            "this process's endpoint shows its own numbers only; OTLP export is unaffected",
            type(exc).__name__,
            getattr(exc, "strerror", None) or exc,
        )
        return None, settings
    return member, settings


__all__ = ["GROUP_ENV", "INTERVAL_S", "Member", "join_group"]
