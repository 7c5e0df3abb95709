"""LLM call cost: token counts priced per call with genai-prices, checked against calc_price."""

from __future__ import annotations

import logging
import random
import sys
from decimal import Decimal
from typing import Any

import pytest

# genai-prices exists for Python 3.11+ only, and the dev extra installs it there: on 3.11+ a
# missing package is a broken environment, which must fail rather than skip.
if sys.version_info < (3, 11):
    pytest.skip("the cost extra needs Python 3.11+", allow_module_level=True)
import genai_prices

import otel_perf
from otel_perf import _cost
from otel_perf import _semconv as n
from otel_perf._http.prometheus import render

#: (provider, model): tiered prices (200k / 272k thresholds), a per-request fee, a flat price.
PRICED = (
    ("google", "gemini-2.5-pro"),
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-5.4"),
    ("perplexity", "sonar"),
    ("openai", "gpt-4o"),
)


def calls(seed: int, count: int) -> list[tuple[int, int]]:
    """(input, output) token counts, about half of them past the tier thresholds."""
    rng = random.Random(seed)
    return [
        (
            rng.choice([rng.randint(0, 8_000), rng.randint(150_000, 400_000), 200_000, 200_001]),
            rng.randint(0, 4_000),
        )
        for _ in range(count)
    ]


def reference(provider: str, model: str, usage: list[tuple[int, int]]) -> Decimal:
    """What genai-prices itself says those calls cost, one calc_price per call."""
    return sum(
        (
            genai_prices.calc_price(
                genai_prices.Usage(input_tokens=i, output_tokens=o), model, provider_id=provider
            ).total_price
            for i, o in usage
        ),
        Decimal(0),
    )


def providers() -> dict[str, Any]:
    document: dict[str, Any] = otel_perf.get_all_metrics()["provider_metrics"]
    return document


@pytest.mark.parametrize(("provider", "model"), PRICED)
def test_the_rule_is_exactly_calc_price_summed_over_calls(provider: str, model: str) -> None:
    rule = _cost.resolve_rule(genai_prices, provider, model)
    assert rule is not None
    usage = calls(sum(map(ord, model)), 300)
    assert rule.price_calls(usage) == reference(provider, model, usage)


def test_tiered_models_are_priced_per_call_not_from_token_totals() -> None:
    rule = _cost.resolve_rule(genai_prices, "google", "gemini-2.5-pro")
    assert rule is not None
    assert rule.starts == (200_000,)
    usage = [(150_000, 100), (150_000, 100)]  # each under the threshold, together above it
    per_call = reference("google", "gemini-2.5-pro", usage)
    from_totals = reference("google", "gemini-2.5-pro", [(300_000, 200)])
    assert per_call != from_totals
    assert rule.price_calls(usage) == per_call


def test_document_cost_per_model_and_provider_matches_calc_price() -> None:
    otel_perf.configure(json_enabled=False)
    expected: dict[tuple[str, str], Decimal] = {}
    for seed, (provider, model) in enumerate(PRICED):
        usage = calls(seed, 40)
        for i, o in usage:
            otel_perf.record_provider_call(
                provider, True, 50.0, model=model, input_tokens=i, output_tokens=o
            )
        expected[provider, model] = reference(provider, model, usage)
    document = providers()
    for (provider, model), cost in expected.items():
        assert document[provider]["models"][model]["cost_usd"] == round(float(cost), 6)
    openai = expected["openai", "gpt-5.4"] + expected["openai", "gpt-4o"]
    assert document["openai"]["cost_usd"] == pytest.approx(float(openai), abs=2e-6)

    # the cost is cumulative: more calls add to it
    otel_perf.record_provider_call(
        "openai", True, 50.0, model="gpt-4o", input_tokens=1_000_000, output_tokens=0
    )
    more = expected["openai", "gpt-4o"] + reference("openai", "gpt-4o", [(1_000_000, 0)])
    assert providers()["openai"]["models"]["gpt-4o"]["cost_usd"] == round(float(more), 6)


def test_unknown_models_and_providers_have_no_cost_never_a_guess() -> None:
    otel_perf.configure(json_enabled=False)
    otel_perf.record_provider_call(
        "openai", True, 50.0, model="gpt-4o", input_tokens=1000, output_tokens=10
    )
    otel_perf.record_provider_call(
        "openai", True, 50.0, model="my-finetune-xyz", input_tokens=1000, output_tokens=10
    )
    otel_perf.record_provider_call(
        "my-inhouse-llm", True, 50.0, model="gpt-4o", input_tokens=1000, output_tokens=10
    )
    otel_perf.record_provider_call("anthropic", True, 50.0, model="claude-sonnet-4-5")  # no tokens
    document = providers()
    assert document["openai"]["models"]["gpt-4o"]["cost_usd"] > 0
    assert document["openai"]["models"]["my-finetune-xyz"]["cost_usd"] is None
    assert document["openai"]["cost_usd"] is None  # a sum leaving a model out would be wrong
    assert document["my-inhouse-llm"]["cost_usd"] is None
    assert document["my-inhouse-llm"]["models"]["gpt-4o"]["cost_usd"] is None
    assert document["anthropic"]["cost_usd"] is None
    assert document["anthropic"]["models"]["claude-sonnet-4-5"]["cost_usd"] is None


def test_the_cost_counter_reaches_prometheus_with_a_documented_name() -> None:
    metrics = otel_perf.configure(json_enabled=False)
    otel_perf.record_provider_call(
        "openai", True, 50.0, model="gpt-4o", input_tokens=1_000_000, output_tokens=100_000
    )
    assert metrics.pipeline is not None
    data = metrics.pipeline.collect()
    (cost,) = [
        m
        for rm in data.resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == n.GEN_AI_CLIENT_COST
    ]
    assert cost.unit == "USD"
    assert cost.data.is_monotonic  # type: ignore[union-attr]
    text = render(data).decode()
    assert "# TYPE otel_perf_gen_ai_client_cost_usd_total counter" in text
    line = next(
        x for x in text.splitlines() if x.startswith("otel_perf_gen_ai_client_cost_usd_total{")
    )
    assert 'gen_ai_request_model="gpt-4o"' in line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(2.5 + 1.0)


def test_a_model_with_calls_past_the_buffer_has_no_cost_never_a_partial_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_cost, "MAX_PENDING_CALLS", 5)
    otel_perf.configure(json_enabled=False)
    for k in range(1, 4):
        otel_perf.record_provider_call(
            "openai", True, 5.0, model="gpt-4o", input_tokens=1000 * k, output_tokens=10
        )
    for k in range(1, 6):  # the buffer is full after two of these: three are left out
        otel_perf.record_provider_call(
            "google", True, 5.0, model="gemini-2.5-pro", input_tokens=1000 * k, output_tokens=10
        )
    with caplog.at_level(logging.WARNING, "otel_perf"):
        document = providers()
    expected = reference("openai", "gpt-4o", [(1000 * k, 10) for k in range(1, 4)])
    assert document["openai"]["models"]["gpt-4o"]["cost_usd"] == round(float(expected), 6)
    assert document["google"]["models"]["gemini-2.5-pro"]["cost_usd"] is None
    assert any("has no cost from now on" in r.getMessage() for r in caplog.records)
    # and it stays so: later calls cannot make a partial sum look whole
    otel_perf.record_provider_call(
        "google", True, 5.0, model="gemini-2.5-pro", input_tokens=10, output_tokens=10
    )
    assert providers()["google"]["cost_usd"] is None


def test_without_genai_prices_costs_are_null_with_one_info_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # as if not installed
    otel_perf.configure(json_enabled=False)
    otel_perf.record_provider_call(
        "openai", True, 5.0, model="gpt-4o", input_tokens=10, output_tokens=10
    )
    with caplog.at_level(logging.INFO, "otel_perf"):
        assert providers()["openai"]["cost_usd"] is None
        otel_perf.record_provider_call(
            "openai", True, 5.0, model="gpt-4o", input_tokens=10, output_tokens=10
        )
        assert providers()["openai"]["models"]["gpt-4o"]["cost_usd"] is None
    lines = [r.getMessage() for r in caplog.records if "genai-prices" in r.getMessage()]
    assert len(lines) == 1
    assert "otel-perf[cost]" in lines[0]


def test_track_provider_set_tokens_is_priced_too() -> None:
    otel_perf.configure(json_enabled=False)
    with otel_perf.track_provider("anthropic", model="claude-sonnet-4-5") as call:
        call.set_tokens(input_tokens=250_000, output_tokens=1_000)
    expected = reference("anthropic", "claude-sonnet-4-5", [(250_000, 1_000)])
    assert providers()["anthropic"]["cost_usd"] == round(float(expected), 6)
