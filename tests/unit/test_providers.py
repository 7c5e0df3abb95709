"""Provider metrics: track_provider / record_provider_call, and GenAI measurements recorded by
any other code through otel-perf's MeterProvider, all in the JSON view's provider_metrics."""

from __future__ import annotations

import asyncio

import pytest

import otel_perf
from otel_perf import _semconv as n


class RateLimitError(Exception):
    pass


def providers() -> dict[str, dict[str, object]]:
    document = otel_perf.get_all_metrics()
    result: dict[str, dict[str, object]] = document["provider_metrics"]
    return result


def test_track_provider_records_calls_errors_models_and_tokens() -> None:
    with otel_perf.track_provider("openai", model="gpt-4o") as call:
        call.set_tokens(input_tokens=120, output_tokens=40)
    with otel_perf.track_provider("openai", model="gpt-4o-mini") as call:
        call.set_tokens(input_tokens=10)
        call.set_tokens(output_tokens=5)
    with pytest.raises(RateLimitError), otel_perf.track_provider("openai", model="gpt-4o"):
        raise RateLimitError

    openai = providers()["openai"]
    assert (openai["total_calls"], openai["successful_calls"], openai["failed_calls"]) == (3, 2, 1)
    assert openai["error_types"] == {"RateLimitError": 1}
    assert (openai["input_tokens"], openai["output_tokens"]) == (130, 45)
    models = openai["models"]
    assert isinstance(models, dict)
    assert models["gpt-4o"]["total_calls"] == 2
    assert models["gpt-4o"]["error_types"] == {"RateLimitError": 1}
    assert (models["gpt-4o"]["input_tokens"], models["gpt-4o"]["output_tokens"]) == (120, 40)
    assert (models["gpt-4o-mini"]["input_tokens"], models["gpt-4o-mini"]["output_tokens"]) == (
        10,
        5,
    )


async def test_track_provider_async_and_cancellation() -> None:
    async with otel_perf.track_provider("anthropic", model="claude") as call:
        await asyncio.sleep(0.01)
        call.set_tokens(input_tokens=7, output_tokens=3)
    with pytest.raises(asyncio.CancelledError):
        async with otel_perf.track_provider("anthropic", model="claude"):
            raise asyncio.CancelledError
    anthropic = providers()["anthropic"]
    assert anthropic["error_types"] == {"CancelledError": 1}
    assert anthropic["max_latency_ms"] >= 10.0  # the sleep is inside the timed block


def test_record_provider_call_with_and_without_error_type() -> None:
    otel_perf.record_provider_call("local", True, 120.0, model="llama", input_tokens=5)
    otel_perf.record_provider_call("local", False, 80.0, model="llama")
    otel_perf.record_provider_call("local", False, 100.0, "Timeout", model="llama")
    local = providers()["local"]
    assert local["error_types"] == {"Timeout": 1, n.OTHER: 1}
    assert (local["min_latency_ms"], local["max_latency_ms"]) == (80.0, 120.0)
    assert (local["input_tokens"], local["output_tokens"]) == (5, 0)
    assert local["success_rate"] == 33.33


def test_measurements_from_any_meter_of_the_provider_appear() -> None:
    meter_provider = otel_perf.configure().meter_provider
    assert meter_provider is not None
    meter = meter_provider.get_meter("someone.elses.genai.instrumentation", "1.0")
    duration = meter.create_histogram(n.GEN_AI_CLIENT_OPERATION_DURATION, unit="s")
    tokens = meter.create_histogram(n.GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}")
    base = {
        n.GEN_AI_PROVIDER_NAME: "openai",
        n.GEN_AI_REQUEST_MODEL: "gpt-4o",
        n.GEN_AI_OPERATION_NAME: "chat",
    }
    duration.record(0.25, base)
    duration.record(1.5, {**base, n.ERROR_TYPE: "RateLimitError"})
    tokens.record(100, {**base, n.GEN_AI_TOKEN_TYPE: "input"})
    tokens.record(40, {**base, n.GEN_AI_TOKEN_TYPE: "output"})
    # and otel-perf's own recording of the same provider adds up with it
    otel_perf.record_provider_call("openai", True, 500.0, model="gpt-4o", output_tokens=2)

    openai = providers()["openai"]
    assert (openai["total_calls"], openai["failed_calls"]) == (3, 1)
    assert openai["error_types"] == {"RateLimitError": 1}
    assert (openai["input_tokens"], openai["output_tokens"]) == (100, 42)
    assert (openai["min_latency_ms"], openai["max_latency_ms"]) == (250.0, 1500.0)
    assert openai["min_latency_ms"] <= openai["p50_latency_ms"] <= openai["max_latency_ms"]
    assert openai["models"]["gpt-4o"]["total_calls"] == 3
    # provider calls are not tool calls
    assert otel_perf.get_all_metrics()["tool_metrics"] == {}
