"""One process's part in its group: share its numbers, and merge the others' when it serves.

Every process of a group runs one daemon thread (``otel-perf-share``) that, every
:data:`INTERVAL_S`, collects the process's cumulative numbers from the pipeline's own reader
(the record path is not touched), encodes them with the SDK's OTLP encoder and writes them to
its file in the group directory. The process that holds the port does the same only while it
has company or a supervisor (so a lone process started any other way pays one directory
listing a second), and merges: its own numbers collected at request time, the other processes'
files, and the archive of ended ones. It also folds the files of ended processes into the
archive now and then. The encoder, the decoder and the merging code load when first needed
(with company or a supervisor), not at start-up.

When a run's last process ends, the run's numbers are deleted, unless the run has a
supervisor (:mod:`.supervisor`: uvicorn's reloader, a pre-fork master) that still runs: then
they stay for the next process it starts (a reload, a worker restarted), which continues from
them, so the totals never go down while the supervisor runs. A process started any other way
(from a shell, by an MCP client, by systemd) finds its group's ended numbers and clears them:
a new run starts from zero.

Nothing here can stop the host: file and decode errors are one warning each and the process
carries on (its OTLP export is a separate path and is unaffected); reading never waits on
another process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from otel_perf import _semconv as n
from otel_perf._log import logger, warn_once
from otel_perf._multiprocess import store
from otel_perf._multiprocess.group import process_start_ticks
from otel_perf._multiprocess.supervisor import Supervisor, current_supervisor

if TYPE_CHECKING:
    # The SDK's classes are only needed once there are numbers to share, and a process joins
    # its group before its SDK starts under ``otel-perf run`` (see otel_perf._metrics).
    from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics

#: How often each process hands its numbers over: the endpoint is at most this much behind.
INTERVAL_S: Final = 1.0
#: A running process whose file is older than this is treated as hung: its gauges leave the
#: sums (its counters stay), and it is reported once.
STALE_S: Final = 10.0
#: The most process files one merge reads; more are left out (with one warning).
MAX_PROCESSES: Final = 512
_INSTANCE_ID: Final = "service.instance.id"
#: How many sharing intervals between two compactions of ended processes into the archive.
COMPACT_EVERY: Final = 5


def token_digest(token: str | None) -> str | None:
    return None if token is None else hashlib.sha256(token.encode()).hexdigest()


class Seen(NamedTuple):
    """Another process's file as last read."""

    pid: int
    name: str
    data: MetricsData | None
    updated: float  # the file's modification time
    running: bool
    live: bool  # running and not stale


class Member:
    """This process in its group (see the module doc)."""

    def __init__(
        self,
        group: str,
        directory: Path,
        collect: Callable[[], MetricsData | None],
        *,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.group = group
        self.directory = directory
        self.pid = os.getpid()
        self.start_ticks = process_start_ticks(self.pid) or 0
        self.name = store.file_name(self.pid, self.start_ticks)
        self._collect = collect
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cache: dict[str, tuple[tuple[int, int, int], MetricsData | None]] = {}
        self._lock = threading.Lock()  # guards the cache and the last merge's bookkeeping
        self._publish_lock = threading.Lock()
        self._written: tuple[float, ...] | None = None  # fingerprint of the file's content
        self._write_ok = True
        self._ticks = 0
        self._closed = False
        self.holding = False
        #: Called on the sharing thread after each interval's work (the takeover check).
        self.on_tick: Callable[[], None] | None = None
        self.last_seen: list[Seen] = []
        self.last_archive: MetricsData | None = None
        self._others: tuple[object, MetricsData, object, object] | None = None
        #: The process that will start this server's next process should this one end, read
        #: when joining: while it runs, a lone process hands its numbers over too.
        self.supervisor: Supervisor | None = None

    # --- joining and leaving -----------------------------------------------------------------

    def join(self) -> None:
        """Enter the group: continue the run its processes left, or clear what a previous,
        fully ended run left; publish once."""
        self.supervisor = current_supervisor()
        with store.locked(self.directory):
            if not self._anyone_else():
                # Every process of the last run has ended. Their numbers are this run's only
                # when they were kept for this process's supervisor (a reload, a worker
                # restarted); otherwise this is a new run, from zero.
                kept_for = store.read_supervisor(self.directory)
                if self.supervisor is None or kept_for != self.supervisor:
                    store.clear_group(self.directory)
                    if self.supervisor is not None:
                        self._record_supervisor(self.supervisor)
            # An empty file says "running, nothing handed over yet"; the first hand-over (and
            # with it the OTLP encoder's import) happens on the sharing thread, not here.
            try:
                store.write_atomically(self.directory / self.name, b"")
            except OSError:
                self.publish()  # warns once, as every failing hand-over does
        store.sweep(self.directory.parent, keep=self.directory)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-perf-share", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sharing; hand over the final numbers; give up the holder's place."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        with store.locked(self.directory):
            if not self._anyone_else() and not self._kept_for_supervisor():
                # The last process of the run, and nobody will continue it.
                store.remove_group(self.directory)
                self.holding = False
                return
        # Others run on, or the supervisor starts the next process: hand everything over.
        self.publish()
        if self.holding:
            self.release()

    def _kept_for_supervisor(self) -> bool:
        """Whether the run's numbers stay for the next process of this one's supervisor."""
        kept_for = store.read_supervisor(self.directory)
        # Asked anew: the supervisor may have ended since this process joined.
        return kept_for is not None and kept_for == current_supervisor()

    def _record_supervisor(self, supervisor: Supervisor) -> None:
        try:
            store.write_supervisor(self.directory, supervisor)
        except OSError as exc:
            warn_once(
                "multiprocess-supervisor",
                "otel-perf: cannot record this server's supervisor (%s); when its last "
                "process ends, the next one starts from zero",
                exc.strerror or type(exc).__name__,
            )

    def _anyone_else(self) -> bool:
        others = [f for f in store.process_files(self.directory) if f.name != self.name]
        if any(store.is_alive(f.pid, f.start) for f in others):
            return True
        holder = self.live_holder()
        return holder is not None

    def abandon_after_fork(self) -> None:
        """In a forked child: the parent's sharing thread does not exist here; forget it."""
        self._closed = True
        self._thread = None

    # --- the sharing thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.tick()

    def tick(self) -> None:
        """One interval's work; never raises."""
        self._ticks += 1
        try:
            # A lone holder hands over only when someone may read it later: another process,
            # or the next process of its supervisor should this one be killed outright.
            if not self.holding or self.supervisor is not None or self._has_company():
                self.publish()
            if self.holding and self._ticks % COMPACT_EVERY == 0:
                self.compact()
            callback = self.on_tick
            if callback is not None:
                callback()
        except Exception as exc:
            warn_once(
                "multiprocess-tick",
                "otel-perf: sharing this process's numbers failed (%s); retrying each second",
                type(exc).__name__,
            )

    def _has_company(self) -> bool:
        return any(f.name != self.name for f in store.process_files(self.directory))

    def publish(
        self, collect: Callable[[], MetricsData | None] | None = None
    ) -> MetricsData | None:
        """Collect this process's cumulative numbers now and write them to its file.

        Collecting and writing happen under one lock, so a newer collection is never
        overwritten by an older one. Atomic, and never raises; returns what was collected.
        """
        data: MetricsData | None = None
        try:
            with self._publish_lock:
                data = (collect or self._collect)()
                if data is None:
                    return None
                path = self.directory / self.name
                mark = fingerprint(data)
                if mark == self._written and path.exists():
                    # Nothing recorded since: no encoding, only the heartbeat (the readers
                    # key their cache on the file's inode and size, which this keeps).
                    os.utime(path)
                else:
                    from otel_perf._multiprocess.codec import encode  # noqa: PLC0415 - see join

                    store.write_atomically(path, encode(data))
                    self._written = mark
        except Exception as exc:
            if self._write_ok:
                self._write_ok = False
                warn_once(
                    "multiprocess-write",
                    "otel-perf: cannot hand this process's numbers to the group's endpoint "
                    "(%s: %s); its OTLP export is unaffected; retrying each second",
                    type(exc).__name__,
                    getattr(exc, "strerror", None) or "error",
                )
            return data
        if not self._write_ok:
            self._write_ok = True
            logger.info("otel-perf: handing this process's numbers over works again")
        return data

    # --- reading the group -------------------------------------------------------------------

    def _load(self, name: str) -> tuple[MetricsData | None, float] | None:
        """A file's decoded data and mtime (cached while unchanged); ``None`` if unreadable."""
        path = self.directory / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError:
            return None
        # Every write is a rename of a new file (a new inode); a heartbeat only touches the
        # modification time, and must not cost a decode.
        key = (info.st_ino, info.st_size, info.st_dev)
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] == key:
            return cached[1], info.st_mtime
        from otel_perf._multiprocess.codec import BadMessage, decode  # noqa: PLC0415 - see join

        try:
            found = store.read_bytes(path)
            if found is None:
                return None
            # Empty: a process that joined and has handed nothing over yet.
            data: MetricsData | None = decode(found[0]) if found[0] else None
        except (OSError, BadMessage) as exc:
            warn_once(
                f"multiprocess-bad:{name}",
                "otel-perf: left a file of this server's group out of the endpoint (%s: %s)",
                name[:80],
                exc if isinstance(exc, BadMessage) else (exc.strerror or type(exc).__name__),
            )
            data = None
        with self._lock:
            self._cache[name] = (key, data)
        return data, info.st_mtime

    def others(self) -> tuple[list[Seen], MetricsData | None, frozenset[str]]:
        """The other processes' files, the archive, and the names the archive absorbed."""
        now = time.time()
        archive_loaded = self._load(store.ARCHIVE)
        archive = archive_loaded[0] if archive_loaded is not None else None
        absorbed = absorbed_names(archive)
        files = [
            f
            for f in store.process_files(self.directory)
            if f.name != self.name and f.name not in absorbed
        ]
        if len(files) > MAX_PROCESSES:
            warn_once(
                "multiprocess-too-many",
                "otel-perf: this server's group has %d processes' files; the endpoint merges "
                "the %d newest (every process still exports its own numbers over OTLP)",
                len(files),
                MAX_PROCESSES,
            )
            files.sort(key=lambda f: _mtime(self.directory / f.name), reverse=True)
            files = files[:MAX_PROCESSES]
        seen: list[Seen] = []
        for f in files:
            loaded = self._load(f.name)
            if loaded is None:
                continue
            data, updated = loaded
            running = store.is_alive(f.pid, f.start)
            stale = running and now - updated > STALE_S
            if stale:
                warn_once(
                    f"multiprocess-stale:{f.name}",
                    "otel-perf: process %d of this server has not handed its numbers over for "
                    "%.0f s (hung?); its sessions and requests in flight leave the sums",
                    f.pid,
                    now - updated,
                )
            seen.append(Seen(f.pid, f.name, data, updated, running, running and not stale))
        with self._lock:
            names = {s.name for s in seen} | {store.ARCHIVE}
            for name in list(self._cache):
                if name not in names:
                    del self._cache[name]
        return seen, archive, absorbed

    def merged(self, collect: Callable[[], MetricsData | None]) -> MetricsData | None:
        """This process's numbers, collected now, merged with the rest of the group's."""
        with store.locked(self.directory, shared=True):
            seen, archive, _ = self.others()
        self.last_seen = seen
        self.last_archive = archive
        if not seen and archive is None:
            return collect()
        # What this endpoint shows of its own process is on disk first (collected and written
        # under the hand-over lock): if this process dies, the one that takes the port over
        # starts from at least these totals.
        own = self.publish(collect)
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - see the imports

        resource = None
        if own is not None and own.resource_metrics:
            # The merged numbers are no one instance's: the resource loses its instance id.
            mine = own.resource_metrics[0].resource
            attributes = {k: v for k, v in mine.attributes.items() if k != _INSTANCE_ID}
            resource = Resource(attributes, mine.schema_url)
        from otel_perf._multiprocess.merge import Part, merge_parts  # noqa: PLC0415 - only with company

        return merge_parts(
            [Part(own, True), Part(self._others_merged(seen, archive), True)], resource
        )

    def _others_merged(self, seen: list[Seen], archive: MetricsData | None) -> MetricsData:
        """The other processes' data merged (gauges of live ones only), kept while unchanged.

        Their files change at most once a sharing interval, while the endpoint may answer many
        times in between: only this process's own numbers are merged afresh on every answer.
        """
        key = (id(archive), tuple((id(s.data), s.live) for s in seen))
        cached = self._others
        if cached is not None and cached[0] == key:
            return cached[1]
        from otel_perf._multiprocess.merge import Part, merge_parts  # noqa: PLC0415 - only with company

        parts = [Part(archive, False), *(Part(s.data, s.live) for s in seen)]
        merged = merge_parts(parts)
        # The key holds ids: the objects stay alive in the decode cache while it is valid.
        self._others = (key, merged, archive, [s.data for s in seen])
        return merged

    def live_processes(self) -> int:
        """This process and the others that are live, as of the last merge."""
        return 1 + sum(1 for s in self.last_seen if s.live)

    def rows(self) -> list[dict[str, Any]]:
        """The other processes' rows of the per-process breakdown, as of the last merge."""
        from otel_perf._multiprocess.rows import process_row  # noqa: PLC0415 - on request

        rows = [process_row(s.pid, s.data, live=s.live, updated=s.updated) for s in self.last_seen]
        if self.last_archive is not None:
            rows.append(process_row(None, self.last_archive, live=False))
        return rows

    def may_take_over(self, token: str | None) -> bool:
        """Whether this process may serve in place of the last holder: only with its token.

        A process configured without the token (or with another one) never takes over the
        port of a server that was given one; it warns once and keeps handing numbers over.
        """
        holder = store.read_holder(self.directory)
        if holder is None or holder.token == token_digest(token):
            return True
        warn_once(
            "multiprocess-token",
            "otel-perf: the process serving this server's metrics ended, but this one was "
            "configured with a different METRICS_AUTH_TOKEN, so it does not serve in its place",
        )
        return False

    # --- ended processes into the archive ----------------------------------------------------

    def compact(self) -> None:
        """Fold the files of ended processes into the archive, then delete them."""
        with store.locked(self.directory) as held:
            if not held:
                return
            seen, archive, absorbed = self.others()
            for gone in (s for s in seen if not s.running and s.data is None):
                store.remove(self.directory / gone.name)  # unreadable: nothing to keep
            ended = [s for s in seen if not s.running and s.data is not None]
            leftovers = [
                name
                for name in absorbed
                if (self.directory / name).exists() or name in {s.name for s in seen}
            ]
            for name in leftovers:  # absorbed before a holder died mid-compaction
                store.remove(self.directory / name)
            if not ended:
                return
            names = tuple(s.name for s in ended)
            from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - see the imports

            from otel_perf._multiprocess.merge import Part, merge_parts  # noqa: PLC0415

            merged = merge_parts(
                [Part(archive, False), *(Part(s.data, False) for s in ended)],
                Resource({store.ABSORBED_ATTRIBUTE: names}),
            )
            from otel_perf._multiprocess.codec import encode  # noqa: PLC0415 - see join

            store.write_atomically(self.directory / store.ARCHIVE, encode(merged))
            for name in names:
                store.remove(self.directory / name)

    # --- the port ----------------------------------------------------------------------------

    def live_holder(self) -> store.Holder | None:
        """The group's holder if it is another process that still runs."""
        holder = store.read_holder(self.directory)
        if holder is None or (holder.pid, holder.start) == (self.pid, self.start_ticks):
            return None
        if holder.pid == self.pid or not store.is_alive(holder.pid, holder.start):
            return None
        return holder

    def claim(self, host: str, port: int, token: str | None) -> None:
        """Record this process as the group's holder (call with the port bound)."""
        holder = store.Holder(self.pid, self.start_ticks, host, port, token_digest(token))
        try:
            store.write_holder(self.directory, holder)
        except OSError as exc:
            warn_once(
                "multiprocess-holder",
                "otel-perf: cannot record which process serves this server's metrics (%s)",
                exc.strerror or type(exc).__name__,
            )
        self.holding = True

    def release(self) -> None:
        """Give up the holder's place (the port is closed by the caller)."""
        self.holding = False
        with store.locked(self.directory):
            holder = store.read_holder(self.directory)
            if holder is not None and holder.pid == self.pid:
                store.remove(self.directory / store.HOLDER)

    def locked(self) -> contextlib.AbstractContextManager[bool]:
        return store.locked(self.directory)


def fingerprint(data: MetricsData) -> tuple[float, ...]:
    """What changes when anything is recorded: every point's count or value, in order.

    ``process.uptime`` is left out: it changes every time and says nothing recorded.
    """
    from opentelemetry.sdk.metrics.export import NumberDataPoint  # noqa: PLC0415

    marks: list[float] = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == n.PROCESS_UPTIME:
                    continue
                marks.append(len(metric.data.data_points))
                for point in metric.data.data_points:
                    # A histogram's count moves with every value recorded into it.
                    marks.append(point.value if isinstance(point, NumberDataPoint) else point.count)
    return tuple(marks)


def absorbed_names(archive: MetricsData | None) -> frozenset[str]:
    if archive is None or not archive.resource_metrics:
        return frozenset()
    first: ResourceMetrics = archive.resource_metrics[0]
    value = first.resource.attributes.get(store.ABSORBED_ATTRIBUTE)
    if isinstance(value, (tuple, list)):
        return frozenset(str(v) for v in value)
    return frozenset()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
