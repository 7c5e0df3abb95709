"""Several otel-perf configurations alive at once, so they can be timed in interleaved rounds.

``otel_perf.configure()`` keeps one process-wide instance and replaces it when the settings
change. To compare, say, OTLP on and off side by side, the harness builds each configuration's
:class:`otel_perf.Metrics` directly (reading the environment given, exactly as ``configure()``
would) and points otel-perf's dispatch (``_state.current``/``_state.runtime``) at one of them
before each timed loop. That is the only private state the harness touches; the smoke test
fails if it stops working.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from otel_perf import _configure, _state
from otel_perf._metrics import Metrics
from otel_perf._settings import load_settings

#: Variables otel-perf or the OTel SDK read; cleared so the caller's shell cannot skew a run.
PREFIXES = ("PERFORMANCE_METRICS_", "METRICS_", "OTEL_")


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with otel-perf/OTel variables replaced by ``values`` while inside."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build(env: Mapping[str, str], **overrides: Any) -> Metrics:
    """A fresh :class:`Metrics` configured from ``env`` (and ``overrides``), like ``configure``."""
    merged = {"METRICS_JSON_PORT": "0", **env}
    with environment(merged):
        settings, warnings = load_settings(os.environ, overrides)
        if warnings:
            raise ValueError(f"benchmark configuration is invalid: {warnings}")
        return Metrics(settings)


def activate(metrics: Metrics | None) -> None:
    """Make ``metrics`` the instance every public otel-perf function uses."""
    _state.runtime = metrics
    _state.current = metrics.recorder if metrics is not None else _state.UNCONFIGURED


def release(*instances: Metrics) -> None:
    """Shut the given instances down and leave otel-perf unconfigured."""
    activate(None)
    for metrics in instances:
        metrics.shutdown(timeout_s=5.0)
    _configure.shutdown()
