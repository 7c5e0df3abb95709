"""The deployment files: collector config, docker-compose stack, Prometheus config and alert
rules, Grafana provisioning and dashboard. No Docker engine is needed: the files are parsed and
cross-checked, and ``promtool`` (Debian ``prometheus``; installed by ``.ci/run``) validates the
Prometheus parts and runs the alert rules' unit tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

import otel_perf
from otel_perf._export.settings import load_export_settings
from otel_perf._http.prometheus import CLASSIC_BOUNDS, render
from tests.support.helpers import require_command
from tests.support.otlp_sinks import LoopbackHttpSink, Recorder, latest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
ALERTS = (
    "OtelPerfToolHighErrorRate",
    "OtelPerfToolLatencyP95High",
    "OtelPerfCacheHitRateCollapse",
    "OtelPerfTargetDown",
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_command("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def collector() -> Any:
    return load_yaml(ROOT / "collector-config.yaml")


@pytest.fixture(scope="module")
def compose() -> Any:
    return load_yaml(ROOT / "docker-compose.yml")


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port of a compose service's ``ports``."""
    out = {}
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        out[int(parts[-1])] = int(parts[-2])
    return out


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (relative to the compose file) of a service's volumes."""
    out = {}
    for entry in service.get("volumes", []):
        source, target = str(entry).split(":")[:2]
        out[target] = ROOT / source
    return out


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def flag(command: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
    return value


# --- collector-config.yaml -------------------------------------------------------------------


def test_every_pipeline_component_is_defined(collector: Any) -> None:
    service = collector["service"]
    for kind in ("receivers", "processors", "exporters"):
        for pipeline in service["pipelines"].values():
            for name in pipeline[kind]:
                assert name in collector[kind], f"{kind[:-1]} {name} is used but not defined"
    for name in service.get("extensions", []):
        assert name in collector["extensions"]
    metrics = service["pipelines"]["metrics"]
    assert metrics["receivers"] == ["otlp"]
    # memory_limiter first, batch last, as the collector's documentation recommends.
    assert metrics["processors"][0] == "memory_limiter"
    assert metrics["processors"][-1] == "batch"
    assert {"prometheus", "debug"} <= set(metrics["exporters"])


def test_otlp_receivers_listen_on_the_standard_ports(collector: Any) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert port_of(protocols["grpc"]["endpoint"]) == 4317
    assert port_of(protocols["http"]["endpoint"]) == 4318


def test_the_collector_converts_to_the_same_le_bounds_as_the_scrape_path(collector: Any) -> None:
    (transform,) = [k for k in collector["processors"] if k.startswith("transform")]
    statements = [
        statement
        for group in collector["processors"][transform]["metric_statements"]
        for statement in group["statements"]
    ]
    converted = {}
    for statement in statements:
        match = re.fullmatch(
            r'convert_exponential_histogram_to_histogram\("\w+", \[([^\]]+)\]\) '
            r'where metric\.name == "([^"]+)"',
            statement,
        )
        assert match, statement
        converted[match.group(2)] = tuple(float(b) for b in match.group(1).split(","))
    assert converted == dict(CLASSIC_BOUNDS)
    assert transform in collector["service"]["pipelines"]["metrics"]["processors"]


# --- docker-compose.yml --------------------------------------------------------------------------


def test_the_stack_has_its_services_and_every_mounted_file_exists(compose: Any) -> None:
    services = compose["services"]
    assert set(services) == {"collector", "prometheus", "grafana", "demo"}
    assert services["collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name, service in services.items():
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"
        for host in published(service).values():
            assert host > 0
        for entry in service.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), f"{name} publishes beyond loopback"
    build = services["demo"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_the_collector_reads_this_repository_config(compose: Any, collector: Any) -> None:
    service = compose["services"]["collector"]
    config_path = flag(service["command"], "--config")
    assert mounts(service)[config_path] == ROOT / "collector-config.yaml"
    ports = published(service)
    protocols = collector["receivers"]["otlp"]["protocols"]
    for protocol in ("grpc", "http"):
        assert port_of(protocols[protocol]["endpoint"]) in ports
    assert port_of(collector["exporters"]["prometheus"]["endpoint"]) in ports


def test_the_demo_sends_otlp_where_the_collector_listens(compose: Any, collector: Any) -> None:
    demo = compose["services"]["demo"]
    env = environment(demo)
    # Parse the demo's environment with otel-perf's own parser: what the app will really do.
    settings, warnings = load_export_settings(env)
    assert warnings == []
    assert settings.otlp
    url = urlsplit(settings.endpoint)
    assert url.hostname == "collector"
    protocols = collector["receivers"]["otlp"]["protocols"]
    if settings.protocol == "grpc":
        assert url.port == port_of(protocols["grpc"]["endpoint"])
    else:
        assert url.port == port_of(protocols["http"]["endpoint"])
        assert url.path == "/v1/metrics"
    assert "collector" in demo["depends_on"]
    assert env["OTEL_SERVICE_NAME"]
    # The demo's own endpoint is published on the port it serves.
    json_port = int(env["METRICS_JSON_PORT"])
    assert json_port in published(demo)
    dockerfile = (ROOT / demo["build"]["context"] / demo["build"]["dockerfile"]).read_text()
    assert f'"--port", "{json_port}"' in dockerfile


def test_the_demo_service_environment_really_pushes_otlp(compose: Any) -> None:
    """Run the demo with the compose service's environment, the collector swapped for a real
    OTLP receiver (oteltest) on 127.0.0.1."""
    demo_env = environment(compose["services"]["demo"])
    sink = LoopbackHttpSink(Recorder())
    sink.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "METRICS_"))}
        env.update(demo_env)
        url = urlsplit(demo_env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url._replace(netloc=f"127.0.0.1:{sink.port}").geturl()
        env.update(METRICS_JSON_HOST="127.0.0.1", METRICS_JSON_PORT="0")
        env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
        ran = subprocess.run(
            [sys.executable, "-m", "otel_perf", "demo", "--duration", "2", "--port", "0"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr.decode()[-2000:]
        assert isinstance(sink.listener, Recorder)
        received = latest(sink.listener.snapshot())
    finally:
        sink.stop()
    assert received.resource["service.name"] == demo_env["OTEL_SERVICE_NAME"]
    tools = {
        dict(attrs).get("gen_ai.tool.name")
        for name, attrs in received.points
        if name == "mcp.server.operation.duration"
    }
    assert len(tools - {None}) >= 3


def test_prometheus_scrapes_the_collector_ports(compose: Any, collector: Any) -> None:
    service = compose["services"]["prometheus"]
    config_file = flag(service["command"], "--config.file")
    config_dir, _, name = config_file.rpartition("/")
    assert mounts(service)[config_dir] == PROMETHEUS_DIR
    config = load_yaml(PROMETHEUS_DIR / name)
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    exporter_port = port_of(collector["exporters"]["prometheus"]["endpoint"])
    assert f"collector:{exporter_port}" in targets
    telemetry = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert f"collector:{telemetry['prometheus']['port']}" in targets
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file()


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(compose: Any) -> None:
    service = compose["services"]["grafana"]
    volumes = mounts(service)
    assert volumes["/etc/grafana/provisioning"] == GRAFANA_DIR / "provisioning"
    (datasource,) = load_yaml(GRAFANA_DIR / "provisioning/datasources/prometheus.yml")[
        "datasources"
    ]
    url = urlsplit(datasource["url"])
    prometheus = compose["services"]["prometheus"]
    listen = flag(prometheus["command"], "--web.listen-address")
    assert url.hostname == "prometheus"
    assert url.port == port_of(listen)
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning/dashboards/otel-perf.yml")["providers"]
    dashboards_dir = volumes[provider["options"]["path"]]
    assert dashboards_dir == GRAFANA_DIR / "dashboards"
    home = environment(service)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / Path(home).name).is_file()
    dashboard = json.loads((dashboards_dir / "otel-perf.json").read_text())
    uids = {
        source["uid"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
    }
    assert uids == {datasource["uid"]}


def test_the_readme_says_the_stack_was_not_run_here() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "no Docker engine" in readme


# --- Prometheus config and alert rules ----------------------------------------------------------


def test_promtool_accepts_the_prometheus_config_and_rules() -> None:
    checked = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_the_alert_rule_unit_tests_pass() -> None:
    ran = promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    rules = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names == set(ALERTS)
    tests = load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for name in ALERTS:
        assert any(c["alertname"] == name and c["exp_alerts"] for c in cases), name
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), name


@pytest.mark.parametrize("alert", ALERTS)
def test_the_unit_tests_catch_a_rule_that_never_fires(alert: str, tmp_path: Path) -> None:
    rules = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                rule["expr"] = "vector(1) > 2"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(PROMETHEUS_DIR / "alerts_test.yml", tmp_path / "alerts_test.yml")
    ran = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert ran.returncode != 0
    assert f"alertname: {alert}" in ran.stdout + ran.stderr


# --- the dashboard --------------------------------------------------------------------------------

_VARIABLES = {"$__rate_interval": "5m", "$job": ".*", "$tool": ".*", "$provider": ".*"}


def dashboard_exprs() -> dict[str, list[str]]:
    """Panel title -> PromQL expressions, Grafana variables substituted."""
    dashboard = json.loads((GRAFANA_DIR / "dashboards/otel-perf.json").read_text())
    out: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        exprs = []
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in _VARIABLES.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
        if exprs:
            out[panel["title"]] = exprs
    return out


def test_the_dashboard_has_the_panels_operators_need() -> None:
    exprs = dashboard_exprs()
    flat = " ".join(e for group in exprs.values() for e in group)
    tool_latency = " ".join(exprs["Tool latency p50 / p95 / p99"])
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in tool_latency
    assert "mcp_server_operation_duration_seconds_bucket" in tool_latency
    assert "rate(mcp_server_operation_duration_seconds_count" in " ".join(
        exprs["Tool request rate"]
    )
    error_rate = " ".join(exprs["Tool error rate"])
    assert 'error_type!=""' in error_rate
    assert 'rpc_response_status_code=""' in error_rate  # client mistakes are not served calls
    client = " ".join(exprs["Client mistakes by status code"])
    assert 'error_type="", rpc_response_status_code!=""' in client
    assert "mcp_server_session_duration_seconds_bucket" in " ".join(
        exprs["Session duration p50 / p95"]
    )
    assert 'cache_result="hit"' in " ".join(exprs["Cache hit rate"])
    provider = " ".join(exprs["Provider latency p50 / p95 / p99"])
    assert "gen_ai_client_operation_duration_seconds_bucket" in provider
    assert "histogram_quantile(0.99," in provider
    assert "mcp_server_active_sessions" in " ".join(exprs["Active sessions"])
    assert "mcp_server_active_requests" in " ".join(exprs["Concurrent requests"])
    assert "gen_ai_tool_name" in flat


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool has no "check expression"; recording rules are parsed with the full PromQL parser.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, expr in enumerate(e for group in dashboard_exprs().values() for e in group)
    ]
    (tmp_path / "dashboard.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    checked = promtool("check", "rules", str(tmp_path / "dashboard.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_and_alerts_use_only_metric_names_otel_perf_exposes() -> None:
    metrics = otel_perf.configure()
    otel_perf.record_tool_call("t", False, 5.0, "E")
    otel_perf.record_provider_call("p", True, 5.0, model="m", input_tokens=1, output_tokens=1)
    otel_perf.record_cache_hit("c")
    otel_perf.record_cache_eviction("c")
    pipeline = metrics.pipeline
    assert pipeline is not None
    pipeline.recorder.session_started()
    pipeline.recorder.session_finished(2.5, "tcp")  # what an MCP integration records
    exposed = set(re.findall(r"^([a-z_]+)\{", render(pipeline.collect()).decode(), re.M))
    rules = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    exprs = [e for group in dashboard_exprs().values() for e in group]
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"([a-z_][a-z0-9_]*)\{", expr)}
    assert used
    assert used <= exposed, used - exposed
