"""Many processes, one endpoint: the processes of one server merge their numbers.

- :mod:`.group`: which processes are one server (``OTEL_PERF_GROUP``) and their directory;
- :mod:`.supervisor`: whether a process's parent starts the server's next process (a reload);
- :mod:`.codec`: a process's cumulative ``MetricsData`` to OTLP protobuf bytes and back;
- :mod:`.store`: the directory's files, written atomically and read defensively;
- :mod:`.merge`: many processes' data merged series by series;
- :mod:`.member`: one process's part: hand its numbers over, merge the others' when serving.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from opentelemetry.sdk.metrics.export import MetricsData

from otel_perf._log import warn_once
from otel_perf._multiprocess.group import GROUP_ENV, group_directory, resolve_group
from otel_perf._multiprocess.member import INTERVAL_S, Member


def join_group(collect: Callable[[], MetricsData | None], port: int = 0) -> Member | None:
    """This process's membership of its group, or ``None`` (sharing off, or impossible).

    One server is one group *and* one configured ``port`` (``METRICS_JSON_PORT``; ``0`` is one
    more value): a process of the same group configured for another port is another server.

    Never raises: a directory that cannot be used is one warning, and the process then serves
    (or fails to bind) alone, as a single process does.
    """
    if os.name != "posix":
        return None  # liveness checks and locks here are POSIX ones: each process alone
    try:
        group, warning = resolve_group(os.environ)
        if warning is not None:
            warn_once("multiprocess-group", "otel-perf: %s", warning)
        if group is None:
            return None
        member = Member(group, group_directory(f"{group}-{port}"), collect)
        member.join()
    except Exception as exc:
        warn_once(
            "multiprocess-join",
            "otel-perf: cannot share numbers with this server's other processes (%s: %s); "
            "this process's endpoint shows its own numbers only; OTLP export is unaffected",
            type(exc).__name__,
            getattr(exc, "strerror", None) or exc,
        )
        return None
    return member


__all__ = ["GROUP_ENV", "INTERVAL_S", "Member", "join_group"]
