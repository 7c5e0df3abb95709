"""On the application's provider, the endpoint's JSON, Prometheus and history paths work as on
otel-perf's own, and show otel-perf's instruments only."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_perf
from tests.support.helpers import http_request


@pytest.fixture
def app_provider() -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    yield provider
    otel_perf.testing.reset()
    provider.shutdown()


def test_endpoint_paths_on_the_applications_provider(app_provider: MeterProvider) -> None:
    metrics = otel_perf.configure(meter_provider=app_provider, json_port=0)
    assert metrics.url is not None
    app_provider.get_meter("the.app").create_counter("app.orders").add(3)
    for i in range(10):
        otel_perf.record_tool_call("search", True, 5.0 + i)

    status, _headers, body = http_request(metrics.url, path="/metrics")
    assert status == 200
    assert json.loads(body)["tool_metrics"]["search"]["total_calls"] == 10

    status, _headers, body = http_request(metrics.url, path="/metrics/prometheus")
    assert status == 200
    text = body.decode()
    (count,) = [
        line
        for line in text.splitlines()
        if line.startswith("mcp_server_operation_duration_seconds_count{")
        and 'gen_ai_tool_name="search"' in line
    ]
    assert count.endswith(" 10.0")
    assert "app_orders" not in text  # the application's own metrics are its exporters' business

    assert metrics.history.sample() is not None
    status, _headers, body = http_request(metrics.url, path="/metrics/history")
    assert status == 200
