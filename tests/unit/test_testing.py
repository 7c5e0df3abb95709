"""otel_perf.testing: the public reset and its pytest fixture."""

from __future__ import annotations

import functools
import logging

import pytest

import otel_perf
import otel_perf.caches
from otel_perf import _configure, _state
from otel_perf.testing import clean_otel_perf, reset

__all__ = ["clean_otel_perf"]  # a fixture: pytest finds it here by name


def test_reset_forgets_the_instance_the_warnings_and_the_observed_caches(
    caplog: pytest.LogCaptureFixture,
) -> None:
    otel_perf.record_tool_call("t", True, 1.0)
    otel_perf.caches.observe_lru_cache(functools.lru_cache(maxsize=4)(abs), "lru")
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        otel_perf.record_tool_call("t", True, float("nan"))  # warns once
        otel_perf.record_tool_call("t", True, float("nan"))
    assert len(caplog.records) == 1
    assert _state.runtime is not None
    assert _state.lru_sources

    reset()

    assert _state.runtime is None
    assert _state.current is _state.UNCONFIGURED
    assert isinstance(_state.current, _configure.Unconfigured)  # configures on first use
    assert not _state.lru_sources
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        otel_perf.record_tool_call("t", True, float("nan"))  # the same warning, given again
    assert len(caplog.records) == 1
    assert "t" not in otel_perf.get_all_metrics()["tool_metrics"]  # counts started over


def test_the_fixture_hands_each_test_a_fresh_otel_perf(clean_otel_perf: None) -> None:
    assert _state.runtime is None
    otel_perf.record_tool_call("fresh", True, 1.0)
    assert otel_perf.get_all_metrics()["tool_metrics"]["fresh"]["total_calls"] == 1
