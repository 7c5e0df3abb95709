"""Helpers for testing code that uses otel-perf.

>>> import otel_perf, otel_perf.testing
>>> otel_perf.record_tool_call("search", True, 12.5)
>>> otel_perf.testing.reset()   # shut down and forget everything, as in a new process

With pytest, use the fixture (it resets before and after each test that requests it)::

    from otel_perf.testing import clean_otel_perf  # noqa: F401 - a fixture, used by name

    def test_search(clean_otel_perf): ...
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

from otel_perf import _configure

__all__ = ["clean_otel_perf", "reset"]


def reset() -> None:
    """Shut otel-perf down and forget all of its process-wide state.

    The running instance stops (its endpoint closes, a final export runs where one is set up),
    the next record call configures afresh from the environment, warnings given once are given
    again, and ``functools.lru_cache`` functions registered with
    :func:`otel_perf.caches.observe_lru_cache` are forgotten. An application ``MeterProvider``
    otel-perf recorded through keeps the observable instruments otel-perf created on it (the
    SDK cannot remove them); they report nothing until otel-perf records through it again.
    """
    _configure.reset()


if importlib.util.find_spec("pytest") is not None:  # the fixture needs pytest; reset() does not
    import pytest

    @pytest.fixture
    def clean_otel_perf() -> Iterator[None]:
        """Reset otel-perf before and after the test."""
        reset()
        yield
        reset()
