"""Shared fixtures: every test starts from a clean otel-perf with no ports of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import otel_perf.testing

_OUR_PREFIXES = ("PERFORMANCE_METRICS_", "METRICS_", "OTEL_")


@pytest.fixture(autouse=True)
def clean_otel_perf(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Reset global state, clear our environment variables, and default to port 0.

    The endpoint registry (otel_perf._http.registry) goes to a directory of this test run's
    own, so ``otel-perf top`` without a URL never finds another run's endpoints.
    """
    for name in list(os.environ):
        if name.startswith(_OUR_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("METRICS_JSON_PORT", "0")
    runtime = tmp_path_factory.getbasetemp() / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    otel_perf.testing.reset()
    yield
    otel_perf.testing.reset()
