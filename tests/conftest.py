"""Shared fixtures: every test starts from a clean otel-perf with no ports of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import otel_perf.testing

_OUR_PREFIXES = ("PERFORMANCE_METRICS_", "METRICS_", "OTEL_")


@pytest.fixture(autouse=True)
def clean_otel_perf(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reset global state, clear our environment variables, and default to port 0."""
    for name in list(os.environ):
        if name.startswith(_OUR_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("METRICS_JSON_PORT", "0")
    otel_perf.testing.reset()
    yield
    otel_perf.testing.reset()
