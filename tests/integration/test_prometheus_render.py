"""The Prometheus scrape path: the same data as the JSON view, promtool-clean, no window slices.

``promtool`` comes from the Debian ``prometheus`` package (``.ci/run`` installs it); these tests
fail, rather than skip, when it is missing.
"""

from __future__ import annotations

import math
import random
import subprocess
from collections.abc import Iterator

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

import otel_perf
from otel_perf import _semconv as n
from otel_perf._exphist import lower_bound
from otel_perf._http.prometheus import CLASSIC_BOUNDS, labels_of, le_label, metric_name, render
from tests.support.helpers import http_request, require_command

DURATION = "mcp_server_operation_duration_seconds"


def scrape(
    metrics: otel_perf.Metrics, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    assert metrics.url is not None
    return http_request(metrics.url + "/metrics/prometheus", method, headers)


def promtool_check_metrics(exposition: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [require_command("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )


def samples(exposition: bytes) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for family in text_string_to_metric_families(exposition.decode()):
        out.extend((s.name, s.labels, s.value) for s in family.samples)
    return out


def total(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for sample, got, value in found
        if sample == name and all(got.get(k) == v for k, v in labels.items())
    )


def workload() -> None:
    for i in range(40):
        ok = i % 4 != 0
        otel_perf.record_tool_call("search", ok, 1.0 + i, None if ok else "TimeoutError")
    otel_perf.record_tool_call("fetch", False, 250.0, "ConnectionError")
    otel_perf.record_provider_call(
        "anthropic", True, 900.0, model="claude", input_tokens=321, output_tokens=45
    )
    for _ in range(9):
        otel_perf.record_cache_hit("kv")
    otel_perf.record_cache_miss("kv")
    otel_perf.record_cache_eviction("kv")
    otel_perf.set_active_sessions(4)
    otel_perf.set_concurrent_requests(1)


# --- pure pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unit", "counter", "expected"),
    [
        ("mcp.server.operation.duration", "s", False, "mcp_server_operation_duration_seconds"),
        ("gen_ai.client.token.usage", "{token}", False, "gen_ai_client_token_usage"),
        ("cache.requests", "{request}", True, "cache_requests"),
        ("process.uptime", "s", False, "process_uptime_seconds"),
        ("http.server.request.body.size", "By", False, "http_server_request_body_size_bytes"),
        ("queue.latency", "ms", False, "queue_latency_milliseconds"),
        ("jobs.done_total", "1", True, "jobs_done"),
        ("rate", "By/s", False, "rate_bytes_per_seconds"),
        ("9lives..odd-name", None, False, "_9lives_odd_name"),
        ("already_seconds", "s", False, "already_seconds"),
    ],
)
def test_metric_names_follow_the_otel_to_prometheus_rules(
    name: str, unit: str | None, counter: bool, expected: str
) -> None:
    assert metric_name(name, unit, counter=counter) == expected


def test_le_values_are_written_as_go_writes_them() -> None:
    assert [le_label(b) for b in n.MCP_DURATION_BUCKETS[:7]] == [
        "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1",
    ]  # fmt: skip
    assert le_label(300.0) == "300"
    assert le_label(4.0**13) == "6.7108864e+07"
    assert le_label(math.inf) == "+Inf"


def test_labels_are_sanitized_and_colliding_keys_are_joined() -> None:
    labels = labels_of({"gen_ai.tool.name": "x", "a.b": "1", "a_b": "2", "flag": True, "7up": 3})
    assert labels == {
        "gen_ai_tool_name": "x",
        "a_b": "1;2",
        "flag": "true",
        "key_7up": "3",
    }


def test_nothing_collected_renders_nothing() -> None:
    assert render(None) == b""


# --- the route -----------------------------------------------------------------------------------


def test_the_scrape_path_reports_what_the_json_view_reports() -> None:
    metrics = otel_perf.configure()
    workload()
    status, headers, body = scrape(metrics)
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    document = otel_perf.get_all_metrics()
    found = samples(body)

    for name, tool in document["tool_metrics"].items():
        count = total(found, f"{DURATION}_count", gen_ai_tool_name=name)
        assert count == tool["total_calls"]
        for error, errors in tool["error_types"].items():
            assert total(found, f"{DURATION}_count", gen_ai_tool_name=name, error_type=error) == (
                errors
            )
        window_sum = total(found, f"{DURATION}_sum", gen_ai_tool_name=name)
        assert round(window_sum / count * 1000, 2) == tool["avg_latency_ms"]
    cache = document["cache_metrics"]["kv"]
    assert (
        total(found, "cache_requests_total", cache_name="kv", cache_result="hit") == cache["hits"]
    )
    assert total(found, "cache_requests_total", cache_result="miss") == cache["misses"]
    assert total(found, "cache_evictions_total", cache_name="kv") == cache["evictions"]
    provider = document["provider_metrics"]["anthropic"]
    assert total(found, "gen_ai_client_operation_duration_seconds_count") == provider["total_calls"]
    assert (
        total(found, "gen_ai_client_token_usage_sum", gen_ai_token_type="input")
        == (provider["input_tokens"])
    )
    system = document["system_metrics"]
    assert total(found, "mcp_server_active_sessions") == system["active_sessions"]
    assert total(found, "mcp_server_active_requests") == system["concurrent_requests"]
    assert total(found, "process_uptime_seconds") > 0
    (info,) = [labels for name, labels, _ in found if name == "target_info"]
    assert info["telemetry_distro_name"] == "otel-perf"
    assert all(
        labels["otel_scope_name"] == n.METER_NAME
        for name, labels, _ in found
        if name != "target_info"
    )

    # HEAD works and carries no body.
    status, _, head_body = scrape(metrics, "HEAD")
    assert (status, head_body) == (200, b"")


def test_promtool_check_metrics_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "promtool-check")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,odd-Key=a b")
    metrics = otel_perf.configure()
    workload()
    _, _, body = scrape(metrics)
    checked = promtool_check_metrics(body)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == b""
    # The check itself is live: a counter without _total and help is reported.
    bad = promtool_check_metrics(b"# TYPE x_milliseconds counter\nx_milliseconds 1\n")
    assert bad.returncode != 0
    assert b"_total" in bad.stdout + bad.stderr


def test_scrapes_close_no_json_view_window_slice() -> None:
    metrics = otel_perf.configure(window_size=10)
    pipeline = metrics.pipeline
    assert pipeline is not None
    for _ in range(10):
        otel_perf.record_tool_call("w", True, 1.0)
    for _ in range(3):
        assert scrape(metrics)[0] == 200
    assert len(pipeline.windows) == 0
    for _ in range(10):
        otel_perf.record_tool_call("w", True, 100.0)
    # One snapshot: its window is every call (no slice was closed by the scrapes).
    tool = otel_perf.get_all_metrics()["tool_metrics"]["w"]
    assert tool["min_latency_ms"] == 1.0
    assert tool["max_latency_ms"] == 100.0


def test_the_scrape_path_needs_the_token_when_one_is_set() -> None:
    metrics = otel_perf.configure(auth_token="s3cret-token")
    assert scrape(metrics)[0] == 401
    status, _, body = scrape(metrics, headers={"Authorization": "Bearer s3cret-token"})
    assert status == 200
    assert b"process_uptime_seconds" in body


# --- classic buckets from exponential histograms -------------------------------------------------


def _exact_le(values: list[float], bound: float) -> int:
    return sum(1 for v in values if v <= bound)


def _straddling(values: list[float], bound: float, scale: int) -> int:
    """Values in the exponential bucket that contains ``bound`` (the rendering's only doubt)."""
    index = math.ceil(math.log2(bound) * 2**scale) - 1
    low, high = lower_bound(index, scale), lower_bound(index + 1, scale)
    return sum(1 for v in values if low < v <= high)


def test_classic_buckets_are_exact_up_to_the_exponential_bucket_at_each_bound() -> None:
    metrics = otel_perf.configure()
    rng = random.Random(3)
    values = [rng.lognormvariate(math.log(0.08), 1.4) for _ in range(5000)]
    for value in values:
        otel_perf.record_tool_call("lognormal", True, value * 1000.0)
    pipeline = metrics.pipeline
    assert pipeline is not None
    data = pipeline.collect()
    assert data is not None
    (scale,) = {
        p.scale
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == n.MCP_SERVER_OPERATION_DURATION
        for p in m.data.data_points
    }
    found = samples(render(data))
    buckets = {
        labels["le"]: value
        for name, labels, value in found
        if name == f"{DURATION}_bucket" and labels["gen_ai_tool_name"] == "lognormal"
    }
    recorded = [v * 1000.0 / 1000.0 for v in values]
    previous = 0.0
    error = doubt = 0.0
    for bound in CLASSIC_BOUNDS[n.MCP_SERVER_OPERATION_DURATION]:
        got = buckets[le_label(bound)]
        assert got >= previous  # cumulative
        previous = got
        straddling = _straddling(recorded, bound, scale)
        assert abs(got - _exact_le(recorded, bound)) <= straddling
        error += abs(got - _exact_le(recorded, bound))
        doubt += straddling
    # Interpolating inside the straddling bucket does far better than counting it whole or not
    # at all (which would be off by about half of ``doubt``): measured 16 of 561 here.
    assert error <= 0.15 * doubt
    assert buckets["+Inf"] == len(values)
    assert total(found, f"{DURATION}_count", gen_ai_tool_name="lognormal") == len(values)
    assert total(found, f"{DURATION}_sum", gen_ai_tool_name="lognormal") == pytest.approx(
        math.fsum(recorded), rel=1e-9
    )


def test_values_away_from_the_bounds_give_exact_bucket_counts() -> None:
    otel_perf.configure()
    for latency_ms, times in ((4.0, 7), (150.0, 5), (3000.0, 2), (400_000.0, 1)):
        for _ in range(times):
            otel_perf.record_tool_call("steps", True, latency_ms)
    metrics = otel_perf.configure()
    _, _, body = scrape(metrics)
    buckets = {
        labels["le"]: value
        for name, labels, value in samples(body)
        if name == f"{DURATION}_bucket" and labels["gen_ai_tool_name"] == "steps"
    }
    assert buckets["0.01"] == 7
    assert buckets["0.1"] == 7
    assert buckets["0.2"] == 12
    assert buckets["2"] == 12
    assert buckets["5"] == 14
    assert buckets["300"] == 14
    assert buckets["+Inf"] == 15


def test_a_name_clash_keeps_the_first_metric_and_stays_valid() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("clash")
    meter.create_counter("jobs.done").add(3)

    def observe(_options: CallbackOptions) -> Iterator[Observation]:
        yield Observation(1.5)

    meter.create_observable_gauge("jobs_done", callbacks=[observe])
    exposition = render(reader.get_metrics_data())
    found = samples(exposition)
    assert total(found, "jobs_done_total") == 3
    assert [name for name, _, _ in found if name == "jobs_done"] == []
    assert promtool_check_metrics(exposition).returncode == 0
    provider.shutdown()
