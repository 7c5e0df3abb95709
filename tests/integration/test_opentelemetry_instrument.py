"""Under the real ``opentelemetry-instrument`` (opentelemetry-distro), otel-perf's metrics reach
the distro's own OTLP exporter, exactly once, and otel-perf's JSON view still works.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_perf import _semconv as n
from tests.support.otlp_sinks import LoopbackGrpcSink, Recorder, iter_points, latest
from tests.support.servers import harness

INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")

APP = textwrap.dedent(
    """
    import json, logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    import otel_perf
    from opentelemetry import metrics

    for i in range(20):
        otel_perf.record_tool_call("search", True, 10.0 + i)
    otel_perf.record_tool_call("search", False, 50.0, "TimeoutError")
    running = otel_perf.configure()
    print(json.dumps({
        "same_provider": running.meter_provider is metrics.get_meter_provider(),
        "search": otel_perf.get_all_metrics()["tool_metrics"]["search"],
    }), flush=True)
    """
)


@pytest.fixture
def sink() -> Iterator[tuple[LoopbackGrpcSink, Recorder]]:
    handler = Recorder()
    grpc_sink = LoopbackGrpcSink(handler)
    grpc_sink.start()
    yield grpc_sink, handler
    grpc_sink.stop()


@pytest.mark.parametrize(
    "launcher",
    [[], [str(Path(sys.executable).with_name("otel-perf")), "run", "--log-level", "INFO", "--"]],
    ids=["in-code", "otel-perf-run"],
)
def test_metrics_reach_the_distros_exporter_once(
    sink: tuple[LoopbackGrpcSink, Recorder], tmp_path: Path, launcher: list[str]
) -> None:
    grpc_sink, handler = sink
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = harness.child_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_sink.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "distro-app",
            "METRICS_JSON_ENDPOINT_ENABLED": "false",
        }
    )
    ran = subprocess.run(
        [str(INSTRUMENT), *launcher, sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out["same_provider"] is True
    assert (out["search"]["total_calls"], out["search"]["failed_calls"]) == (21, 1)
    assert "recording through the application's global MeterProvider" in ran.stderr
    assert "not starting its own OTLP" in ran.stderr

    # The provider's shutdown at exit flushed its exporter: every point arrived by now.
    requests = handler.snapshot()
    received = latest(requests)
    counts = {
        attrs.get(n.ERROR_TYPE): point.count
        for attrs, point in received.series(n.MCP_SERVER_OPERATION_DURATION)
    }
    assert counts == {None: 20, "TimeoutError": 1}
    assert received.resource["service.name"] == "distro-app"
    # one exporter only, the distro's: nothing came from a pipeline of otel-perf's own
    resources = {
        resource.get("telemetry.distro.name") for resource, _m, _k, _p in iter_points(requests)
    }
    assert "otel-perf" not in resources
