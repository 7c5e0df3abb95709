"""A real Prometheus server scrapes /metrics/prometheus and answers with the expected values.

Prometheus comes from the Debian ``prometheus`` package (``.ci/run`` installs it); it runs on
127.0.0.1 with its own config and data directory and is stopped at the end. The test fails,
rather than skips, when the binary is missing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import otel_perf
from tests.integration.test_deploy import dashboard_exprs
from tests.support.helpers import require_command

TOKEN = "scrape-token-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, tmp_path: Path, target_port: int) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "otel-perf",
                    "metrics_path": "/metrics/prometheus",
                    "authorization": {"credentials": TOKEN},
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        # Found first: a missing binary must fail here, before a log file is opened and leaked
        # (an unclosed file is a ResourceWarning, an error in whichever later test sees it).
        binary = require_command("prometheus")
        self.log = (tmp_path / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
        except OSError:
            return []  # not up yet
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values(self, expr: str, by: str | None = None) -> dict[str, float]:
        """Value of label ``by`` (or "" when not given) of each series -> its value."""
        out = {}
        for series in self.query(expr):
            key = series["metric"].get(by, "") if by else ""
            out[key] = float(series["value"][1])
        return out

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Prometheus, otel_perf.Metrics]]:
    metrics = otel_perf.configure(auth_token=TOKEN)
    assert metrics.port is not None
    server = Prometheus(tmp_path, metrics.port)
    try:
        yield server, metrics
    finally:
        server.stop()


def poll(predicate: Any, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return bool(predicate())


def test_prometheus_scrapes_the_same_numbers_as_the_json_view(
    prometheus: tuple[Prometheus, otel_perf.Metrics],
) -> None:
    server, _ = prometheus
    for i in range(60):
        ok = i % 6 != 0
        otel_perf.record_tool_call("search", ok, 3.0 + i % 20, None if ok else "TimeoutError")
    for _ in range(7):
        otel_perf.record_tool_call("summarize", True, 400.0)
    otel_perf.record_provider_call(
        "openai", True, 700.0, model="gpt-4o", input_tokens=150, output_tokens=30
    )
    for _ in range(8):
        otel_perf.record_cache_hit("kv")
    for _ in range(2):
        otel_perf.record_cache_miss("kv")
    otel_perf.set_active_sessions(5)
    document = otel_perf.get_all_metrics()

    per_tool = "sum by (gen_ai_tool_name) (mcp_server_operation_duration_seconds_count)"
    want = {name: float(t["total_calls"]) for name, t in document["tool_metrics"].items()}
    assert poll(lambda: server.values(per_tool, "gen_ai_tool_name") == want), (
        server.values(per_tool, "gen_ai_tool_name"),
        want,
    )

    assert server.values('up{job="otel-perf"}', "job") == {"otel-perf": 1.0}
    errors = server.values(
        'sum by (error_type) (mcp_server_operation_duration_seconds_count{error_type!=""})',
        "error_type",
    )
    assert errors == {"TimeoutError": float(document["tool_metrics"]["search"]["failed_calls"])}
    cache = document["cache_metrics"]["kv"]
    assert server.values("sum by (cache_result) (cache_requests_total)", "cache_result") == {
        "hit": float(cache["hits"]),
        "miss": float(cache["misses"]),
    }
    tokens = server.values(
        "sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum)", "gen_ai_token_type"
    )
    provider = document["provider_metrics"]["openai"]
    assert tokens == {
        "input": float(provider["input_tokens"]),
        "output": float(provider["output_tokens"]),
    }
    assert server.values("sum(mcp_server_active_sessions)") == {"": 5.0}
    # Classic buckets: all 7 summarize calls took 0.4 s, so they are in le=0.5, not le=0.2.
    buckets = server.values(
        'sum by (le) (mcp_server_operation_duration_seconds_bucket{gen_ai_tool_name="summarize",'
        ' le=~"0.2|0.5"})',
        "le",
    )
    assert buckets == {"0.2": 0.0, "0.5": 7.0}
    (info,) = server.query("target_info")
    assert info["metric"]["telemetry_distro_name"] == "otel-perf"


def test_the_dashboard_queries_answer_on_live_traffic(
    prometheus: tuple[Prometheus, otel_perf.Metrics],
) -> None:
    server, metrics = prometheus
    assert metrics.pipeline is not None
    recorder = metrics.pipeline.recorder
    stop = threading.Event()

    def traffic() -> None:
        # Every call takes 30 ms: in (0.02, 0.05], so the percentiles must land there too.
        while not stop.is_set():
            otel_perf.record_tool_call("live", True, 30.0)
            otel_perf.record_tool_call("live", False, 30.0, "TimeoutError")
            # what the MCP integrations add: a client mistake, and a session that ended
            recorder.record_mcp_tool("live", 0.03, None, "-32602", "tcp")
            recorder.session_started()
            recorder.session_finished(0.03, "tcp")
            otel_perf.record_provider_call("anthropic", True, 30.0, input_tokens=5)
            otel_perf.record_provider_call("anthropic", False, 30.0, "RateLimitError")
            otel_perf.record_cache_hit("live_cache")
            otel_perf.record_cache_miss("live_cache")
            otel_perf.record_cache_eviction("live_cache")
            time.sleep(0.02)

    otel_perf.set_active_sessions(2)
    otel_perf.set_concurrent_requests(1)
    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        exprs = dashboard_exprs()
        flat = [
            (title, e.replace("[5m]", "[10s]")) for title, group in exprs.items() for e in group
        ]
        assert poll(lambda: all(server.query(e) for _, e in flat), timeout_s=40), [
            title for title, e in flat if not server.query(e)
        ]
        latency = server.values(
            flat_expr(exprs, "Tool latency p50 / p95 / p99", 0), "gen_ai_tool_name"
        )
        assert 0.02 < latency["live"] <= 0.05
        error_rate = server.values(flat_expr(exprs, "Tool error rate", 0), "gen_ai_tool_name")
        assert 0.4 < error_rate["live"] < 0.6
        hit_rate = server.values(flat_expr(exprs, "Cache hit rate", 0), "cache_name")
        assert 0.4 < hit_rate["live_cache"] < 0.6
        provider = server.values(
            flat_expr(exprs, "Provider latency p50 / p95 / p99", 2), "gen_ai_provider_name"
        )
        assert 0.02 < provider["anthropic"] <= 0.05
        sessions = server.values(flat_expr(exprs, "Active sessions", 0), "job")
        assert sessions == {"otel-perf": 2.0}
        requests = server.values(flat_expr(exprs, "Concurrent requests", 0), "job")
        assert requests == {"otel-perf": 1.0}
    finally:
        stop.set()
        thread.join(5)


def flat_expr(exprs: dict[str, list[str]], title: str, index: int) -> str:
    return exprs[title][index].replace("[5m]", "[10s]")
