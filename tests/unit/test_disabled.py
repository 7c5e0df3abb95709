"""PERFORMANCE_METRICS_ENABLED=false: no server, no export, and record calls do no OTel work."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

import otel_perf
from otel_perf import _state


@pytest.fixture(autouse=True)
def disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFORMANCE_METRICS_ENABLED", "false")


def test_disabled_means_no_server_no_provider_and_an_honest_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[Any] = []
    real_init = MeterProvider.__init__

    def counting_init(self: MeterProvider, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(MeterProvider, "__init__", counting_init)
    threads_before = {t.name for t in threading.enumerate()}
    metrics = otel_perf.configure()
    assert metrics.enabled is False
    assert metrics.url is None
    assert metrics.meter_provider is None
    assert _state.current is None
    otel_perf.record_tool_call("t", True, 1.0)
    otel_perf.record_cache_hit("c")
    otel_perf.record_provider_call("p", True, 1.0)
    with otel_perf.track_tool("t"), otel_perf.track_session():
        pass
    assert created == []  # no OTel work at all
    assert {t.name for t in threading.enumerate()} == threads_before
    document = otel_perf.get_all_metrics()
    assert document["enabled"] is False
    for section in ("tool_metrics", "cache_metrics", "system_metrics", "provider_metrics"):
        assert document[section] == {}
    assert otel_perf.get_collector().get_tool_metrics("t")["total_calls"] == 0
    assert otel_perf.get_collector().enabled is False


def test_decorated_functions_still_run_and_raise_when_disabled() -> None:
    @otel_perf.track_tool("t")
    def ok() -> int:
        return 7

    @otel_perf.track_tool("t")
    async def boom() -> None:
        raise ValueError("x")

    assert ok() == 7
    with pytest.raises(ValueError, match="x"):
        asyncio.run(boom())
    assert otel_perf.get_all_metrics()["tool_metrics"] == {}


def test_switching_on_later_takes_effect_for_existing_decorators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @otel_perf.track_tool("later")
    def work() -> None:
        return None

    work()
    monkeypatch.setenv("PERFORMANCE_METRICS_ENABLED", "true")
    otel_perf.configure()
    work()
    assert otel_perf.get_all_metrics()["tool_metrics"]["later"]["total_calls"] == 1
