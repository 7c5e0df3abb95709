"""All of otel-perf's process-wide state, with the one fork hook.

Nothing else in the package keeps module-level mutable state. This module only *holds* it: the
functions that change the configuration, the one reset among them, live in
:mod:`otel_perf._configure`. It imports nothing of otel-perf, not even for annotations, so every
other module may import it and the package's imports form no circle through it: what it holds
is typed by the protocols below, which say what this module and the record path call on it.

``current`` is what every record call dispatches to, chosen once per configuration rather than
checked per call:

- :data:`UNCONFIGURED` before the first ``configure()``: the stand-in whose methods configure
  from the environment, then forward (``otel_perf._configure.Unconfigured``, installed here
  when that module is imported, which every record path does first);
- a :class:`~otel_perf._recorder.Recorder` when enabled;
- ``None`` when disabled: the public functions test for it and return at once, doing no OTel
  work at all.

Locks are looked up here at every use (``_state.warned_lock``, never imported by name), because
the fork hook replaces them: another thread of the parent may have held one at the moment of
the fork, and no thread in the child would ever release it.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Protocol


class RecordTarget(Protocol):
    """What the public record functions call on :data:`current`.

    Both the recorder and the stand-in that configures on first use have these methods. A
    caller that needs more of the recorder narrows ``current`` with ``isinstance`` first.
    """

    def record_tool_call(
        self, tool_name: str, success: bool, latency_ms: float, error_type: str | None = None
    ) -> None: ...

    def record_cache_hit(self, cache_name: str) -> None: ...

    def record_cache_miss(self, cache_name: str) -> None: ...

    def record_cache_eviction(self, cache_name: str) -> None: ...

    def record_cache_size_rejection(self, cache_name: str) -> None: ...

    def set_active_sessions(self, count: int) -> None: ...

    def set_concurrent_requests(self, count: int) -> None: ...

    def record_provider_call(
        self,
        provider: str,
        success: bool,
        latency_ms: float,
        error_type: str | None,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        operation: str | None,
    ) -> None: ...


class Runtime(Protocol):
    """What the fork hook and the signal handlers call on the configured instance
    (:class:`otel_perf.Metrics`; ``otel_perf._configure`` narrows it to that class)."""

    def shutdown(self, timeout_s: float = 5.0) -> None: ...

    def flush(self) -> None: ...

    def abandon_after_fork(self) -> None: ...


class ForkAware(Protocol):
    """Something the fork hook must give new locks to (an observed ``lru_cache`` source)."""

    def after_fork(self) -> None: ...


# --- the configuration (changed by otel_perf._configure) ---------------------------------------

UNCONFIGURED: RecordTarget | None = None
"""The stand-in recorder that configures on first use (installed by otel_perf._configure)."""

current: RecordTarget | None = None
"""The record-call target: UNCONFIGURED, a Recorder, or None (disabled)."""

runtime: Runtime | None = None
"""The configured instance (settings, pipeline, endpoint), or ``None`` before configuring."""

lock = threading.RLock()
"""Guards changes to ``current`` and ``runtime``."""

atexit_registered = False
exiting = False
"""Set by the final export (atexit hook, or a signal): late record calls must not start a new
server; they are dropped, with one warning."""

multiprocessing_exit_pid = 0
"""The process whose final export is registered with multiprocessing's exit function."""

configure_overrides: dict[str, Any] = {}
"""The keyword settings of the ``configure()`` that made ``runtime``."""
inherited_overrides: dict[str, Any] | None = None
"""In a forked child: the parent's ``configure_overrides``, used by its implicit configuration
(so a token given in code is never lost by a pre-fork worker)."""

# --- signals (otel_perf._signals) ---------------------------------------------------------------

replaced_signal_handlers: dict[int, Any] = {}
"""Signal number -> the handler otel-perf's replaced (called, or restored, after its own)."""

# --- warn-once (otel_perf._log) ------------------------------------------------------------------

warned: set[str] = set()
"""Keys of the warnings already given in this process (a fixed set of categories)."""
# Reentrant: a signal handler may warn while the code it interrupted holds it.
warned_lock = threading.RLock()

# --- functools.lru_cache sources (otel_perf._integrations.lru_cache_sources) -----------------

lru_sources: list[ForkAware] = []
"""The observed functions' sources (``lru_cache_sources.Source``)."""
lru_sources_lock = threading.Lock()

# --- observable instruments on the application's MeterProvider (otel_perf._observables) -------

relays: weakref.WeakKeyDictionary[object, object] = weakref.WeakKeyDictionary()
"""Application provider -> the ``Relay`` its observable instruments call. Kept for the
provider's life and never reset: the SDK keeps the relay's callbacks for that long too."""
relays_lock = threading.Lock()

# --- the origin-compatible singleton (otel_perf._compat) ------------------------------------

compat_collector: object | None = None
"""The ``PerformanceMetricsCollector``, once made."""
compat_lock = threading.Lock()

# --- zero-code instrumentation and cache wrappers -------------------------------------------

instrumentation_installed = False
"""Whether ``otel-perf run``'s import hooks are in ``sys.meta_path`` (never undone)."""
instrumentation_lock = threading.Lock()

counting_classes: dict[type, type] = {}
"""cachetools class -> its eviction-counting subclass, made once per class (otel_perf.caches)."""


def _after_fork_in_child() -> None:
    """A forked child starts fresh, with new locks.

    The parent's counts are not the child's, and the endpoint and its threads stay with the
    parent (the child closes its copy of the listening socket). The child configures anew on
    its next record call, with the settings the parent's ``configure()`` was given, and joins
    the parent's server group (see :mod:`otel_perf._multiprocess`).
    """
    global lock, warned_lock, lru_sources_lock, compat_lock, instrumentation_lock, relays_lock
    global runtime, current, inherited_overrides
    lock = threading.RLock()
    warned_lock = threading.RLock()
    lru_sources_lock = threading.Lock()
    compat_lock = threading.Lock()
    instrumentation_lock = threading.Lock()
    relays_lock = threading.Lock()
    for source in lru_sources:
        source.after_fork()
    abandoned = runtime
    runtime = None
    current = UNCONFIGURED
    if abandoned is not None:
        # The child configures on its next record call, as the parent was configured.
        inherited_overrides = dict(configure_overrides)
        abandoned.abandon_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forget_remembered() -> None:
    """Forget the warnings given and the observed ``lru_cache`` functions (part of the reset)."""
    with warned_lock:
        warned.clear()
    with lru_sources_lock:
        lru_sources.clear()


__all__: list[str] = [
    "UNCONFIGURED",
    "ForkAware",
    "RecordTarget",
    "Runtime",
    "compat_collector",
    "compat_lock",
    "configure_overrides",
    "counting_classes",
    "current",
    "forget_remembered",
    "inherited_overrides",
    "instrumentation_installed",
    "instrumentation_lock",
    "lock",
    "lru_sources",
    "lru_sources_lock",
    "multiprocessing_exit_pid",
    "replaced_signal_handlers",
    "runtime",
    "warned",
    "warned_lock",
]
