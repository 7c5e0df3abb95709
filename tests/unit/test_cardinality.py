"""Overflow never changes the truth: past every cap, failures, successes and error types stay exact.

otel-perf folds names into ``_OTHER`` itself (``METRICS_MAX_TOOLS``, ``METRICS_MAX_PROVIDERS``,
``METRICS_MAX_MODELS`` per (provider, model) pair, ``METRICS_MAX_ERROR_TYPES``, ...), and the SDK's
per-instrument cardinality limits are sized from those caps, so the SDK's own overflow series
(which has no ``error.type`` and so reads as successes) is never used.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import otel_perf
from otel_perf import _semconv as n
from otel_perf._recorder import cardinality_limits
from otel_perf._settings import Settings


def sdk_points(metric_name: str) -> list[Any]:
    data = otel_perf.configure().pipeline.collect()
    assert data is not None
    return [
        point
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == metric_name
        for point in metric.data.data_points
    ]


def load(tools: int, error_types: int, record: str) -> None:
    recorder = otel_perf.configure().pipeline.recorder
    for t in range(tools):
        name = f"tool{t:04d}"
        for e in range(error_types):
            if record == "api":
                otel_perf.record_tool_call(name, False, 1.0, f"Error{e:02d}")
            else:
                recorder.record_mcp_tool(name, 0.001, f"Error{e:02d}", None, "pipe")
        if record == "api":
            otel_perf.record_tool_call(name, True, 1.0)
        else:
            recorder.record_mcp_tool(name, 0.001, None, None, "pipe")
        # a client mistake on every tool: counted, never a failure
        recorder.record_mcp_tool(name, 0.001, None, "-32602", "pipe")


@pytest.mark.parametrize("record", ["api", "integration"])
@pytest.mark.parametrize(("tools", "error_types"), [(520, 20), (400, 5)])
def test_counts_stay_exact_past_every_cap(tools: int, error_types: int, record: str) -> None:
    load(tools, error_types, record)
    document = otel_perf.get_all_metrics()
    metrics = document["tool_metrics"]
    kept = min(tools, 500)  # METRICS_MAX_TOOLS default
    folded = tools - kept
    assert len(metrics) == kept + (1 if folded else 0)
    for t in range(kept):
        entry = metrics[f"tool{t:04d}"]
        assert entry["failed_calls"] == error_types
        assert entry["successful_calls"] == 1
        assert entry["client_errors"] == 1
        assert entry["total_calls"] == error_types + 2
        assert entry["error_types"] == {f"Error{e:02d}": 1 for e in range(error_types)}
    if folded:
        other = metrics[n.OTHER]
        assert other["failed_calls"] == folded * error_types
        assert other["successful_calls"] == folded
        assert other["client_errors"] == folded
        assert other["error_types"] == {f"Error{e:02d}": folded for e in range(error_types)}
    assert sum(e["failed_calls"] for e in metrics.values()) == tools * error_types
    assert sum(e["successful_calls"] for e in metrics.values()) == tools
    assert document["system_metrics"]["total_requests"] == tools * (error_types + 2)
    points = sdk_points(n.MCP_SERVER_OPERATION_DURATION)
    assert not [p for p in points if p.attributes.get(n.SDK_OVERFLOW_ATTRIBUTE)]


def test_error_types_past_their_cap_fold_but_failures_stay_failures() -> None:
    otel_perf.configure(max_tools=3, max_error_types=4)
    for t in range(5):
        for e in range(10):
            otel_perf.record_tool_call(f"t{t}", False, 1.0, f"E{e}")
    metrics = otel_perf.get_all_metrics()["tool_metrics"]
    assert sum(e["failed_calls"] for e in metrics.values()) == 50
    assert sum(e["successful_calls"] for e in metrics.values()) == 0
    assert metrics["t0"]["error_types"] == {"E0": 1, "E1": 1, "E2": 1, "E3": 1, n.OTHER: 6}
    assert metrics[n.OTHER]["failed_calls"] == 20
    points = sdk_points(n.MCP_SERVER_OPERATION_DURATION)
    assert not [p for p in points if p.attributes.get(n.SDK_OVERFLOW_ATTRIBUTE)]


def test_limits_cover_every_series_the_caps_allow() -> None:
    settings = Settings(max_tools=500, max_error_types=50)
    limits = cardinality_limits(settings)
    # 501 tools x (success + 51 error types) is the old failure case; the limit is far above it
    assert limits[n.MCP_SERVER_OPERATION_DURATION] >= 501 * 52 * 3
    assert limits[n.CACHE_REQUESTS] == (settings.max_caches + 1) * 2
    bigger = cardinality_limits(Settings(max_tools=5000, max_error_types=50))
    assert bigger[n.MCP_SERVER_OPERATION_DURATION] > limits[n.MCP_SERVER_OPERATION_DURATION]
    # (200 pairs + unknown and _OTHER on 101 providers) x 18 operations x (success + 51 errors)
    assert limits[n.GEN_AI_CLIENT_OPERATION_DURATION] == (200 + 2 * 101) * 18 * 52
    assert limits[n.GEN_AI_CLIENT_TOKEN_USAGE] == (200 + 2 * 101) * 18 * 2


def instrument_lock(metrics: otel_perf.Metrics, name: str) -> Any:
    """The SDK's lock for instrument ``name``: what a collection holds while it reads the
    instrument's series, and what ``record`` takes to create a series."""
    assert metrics.meter_provider is not None
    consumer = metrics.meter_provider._measurement_consumer
    for storage in consumer._reader_storages.values():
        for instrument, matches in storage._instrument_view_instrument_matches.items():
            if instrument.name == name:
                return matches[0]._lock
    raise AssertionError(f"{name} has no storage yet")


def test_a_record_creating_a_series_never_waits_for_a_running_collection() -> None:
    """While a collection holds the instruments' locks, records that create new series (tools,
    MCP requests, caches, providers and tokens) return at once and are counted at the next
    collection."""
    metrics = otel_perf.configure(json_enabled=False)
    pipeline = metrics.pipeline
    assert pipeline is not None
    recorder = pipeline.recorder
    otel_perf.record_tool_call("first", True, 1.0)
    otel_perf.record_cache_hit("first")
    otel_perf.record_provider_call("first", True, 1.0, model="m", input_tokens=1)
    recorder.flush()  # the SDK has them: the instruments' storage exists now
    locks = [
        instrument_lock(metrics, name)
        for name in (
            n.MCP_SERVER_OPERATION_DURATION,
            n.CACHE_REQUESTS,
            n.GEN_AI_CLIENT_OPERATION_DURATION,
            n.GEN_AI_CLIENT_TOKEN_USAGE,
        )
    ]

    def record_new_series() -> None:
        for t in range(200):
            recorder.record_mcp_tool(f"new{t}", 0.01, "ValueError", None, "tcp")
            otel_perf.record_tool_call(f"api{t}", True, 1.0)
            otel_perf.record_cache_miss(f"cache{t % 50}")
            otel_perf.record_provider_call(
                f"llm{t % 20}", t % 2 == 0, 1.0, "TimeoutError", model=f"m{t}", output_tokens=2
            )

    recorder.flush()  # what the reader does before collecting ...
    with locks[0], locks[1], locks[2], locks[3]:  # ... what the SDK holds while reading
        worker = threading.Thread(target=record_new_series)
        worker.start()
        worker.join(10)
        finished = not worker.is_alive()
    worker.join(10)
    assert finished, "a record call waited for the collection"
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert all(tools[f"new{t}"]["error_types"] == {"ValueError": 1} for t in range(200))
    assert all(tools[f"api{t}"]["successful_calls"] == 1 for t in range(200))
    caches = otel_perf.get_all_metrics()["cache_metrics"]
    assert all(caches[f"cache{c}"]["misses"] == 4 for c in range(50))
    providers = otel_perf.get_all_metrics()["provider_metrics"]
    for p in range(20):
        entry = providers[f"llm{p}"]
        assert (entry["total_calls"], entry["output_tokens"]) == (10, 20)
        assert entry["error_types"] == ({"TimeoutError": 10} if p % 2 else {})


def test_made_up_names_folded_first_do_not_take_a_real_tools_place() -> None:
    pipeline = otel_perf.configure(max_tools=2).pipeline
    assert pipeline is not None
    recorder = pipeline.recorder
    recorder.record_mcp_tool(n.OTHER, 0.001, None, "-32602", "tcp")  # a flood came first
    for name in ("real1", "real2"):
        recorder.record_mcp_tool(name, 0.001, None, None, "tcp")
    tools = otel_perf.get_all_metrics()["tool_metrics"]
    assert tools["real1"]["successful_calls"] == 1
    assert tools["real2"]["successful_calls"] == 1
    assert tools[n.OTHER]["client_errors"] == 1


def load_providers(providers: int, models: int, error_types: int) -> None:
    """Every (provider, model) pair fails once with each error type, succeeds once, uses tokens."""
    for p in range(providers):
        provider = f"prov{p:03d}"
        for m in range(models):
            model = f"{provider}-model{m}"
            for e in range(error_types):
                operation = "chat" if e % 2 else "embeddings"
                otel_perf.record_provider_call(
                    provider, False, 2.0, f"Error{e:02d}", model=model, operation=operation
                )
            otel_perf.record_provider_call(
                provider, True, 1.0, model=model, input_tokens=3, output_tokens=5
            )


@pytest.mark.parametrize(
    ("providers", "models", "error_types"),
    # past the provider cap (100), the pair cap (200) and the error-type cap (50); and one
    # load under every cap whose series alone are more than the SDK's old 2,000-series limit
    [(120, 3, 60), (100, 2, 20)],
)
def test_provider_counts_stay_exact_past_every_cap(
    providers: int, models: int, error_types: int
) -> None:
    load_providers(providers, models, error_types)
    document = otel_perf.get_all_metrics()
    metrics = document["provider_metrics"]
    kept_providers = min(providers, 100)  # METRICS_MAX_PROVIDERS default
    kept_types = min(error_types, 50)  # METRICS_MAX_ERROR_TYPES default
    calls = models * (error_types + 1)
    assert len(metrics) == kept_providers + (1 if providers > kept_providers else 0)
    expected_types = {f"Error{e:02d}": models for e in range(kept_types)}
    if error_types > kept_types:
        expected_types[n.OTHER] = models * (error_types - kept_types)
    pairs_left = 200  # METRICS_MAX_MODELS: distinct (provider, model) pairs
    for p in range(kept_providers):
        entry = metrics[f"prov{p:03d}"]
        assert (entry["total_calls"], entry["failed_calls"]) == (calls, models * error_types)
        assert entry["successful_calls"] == models
        assert entry["error_types"] == expected_types
        assert (entry["input_tokens"], entry["output_tokens"]) == (3 * models, 5 * models)
        kept_models = min(models, pairs_left)
        pairs_left -= kept_models
        expected_models = {f"prov{p:03d}-model{m}" for m in range(kept_models)}
        if kept_models < models:
            expected_models.add(n.OTHER)
        assert set(entry["models"]) == expected_models
        for m in range(kept_models):
            model = entry["models"][f"prov{p:03d}-model{m}"]
            assert (model["total_calls"], model["failed_calls"]) == (error_types + 1, error_types)
            assert model["input_tokens"] == 3
        if kept_models < models:
            folded = entry["models"][n.OTHER]
            assert folded["failed_calls"] == (models - kept_models) * error_types
            assert folded["successful_calls"] == models - kept_models
    if providers > kept_providers:
        other = metrics[n.OTHER]
        folded_providers = providers - kept_providers
        assert other["failed_calls"] == folded_providers * models * error_types
        assert other["successful_calls"] == folded_providers * models
        assert other["error_types"] == {k: v * folded_providers for k, v in expected_types.items()}
    assert sum(e["failed_calls"] for e in metrics.values()) == providers * models * error_types
    assert sum(e["successful_calls"] for e in metrics.values()) == providers * models
    assert sum(e["input_tokens"] for e in metrics.values()) == providers * models * 3
    for name in (n.GEN_AI_CLIENT_OPERATION_DURATION, n.GEN_AI_CLIENT_TOKEN_USAGE):
        points = sdk_points(name)
        assert not [p for p in points if p.attributes.get(n.SDK_OVERFLOW_ATTRIBUTE)], name
