"""What ``import otel_perf`` does in a fresh interpreter: nothing but define the API."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_environment_is_read_at_configure_not_import() -> None:
    script = textwrap.dedent(
        """
        import os
        os.environ["METRICS_WINDOW_SIZE"] = "11"
        import otel_perf
        from otel_perf import _state
        assert _state.runtime is None, "configured at import"
        os.environ["METRICS_WINDOW_SIZE"] = "22"
        os.environ["METRICS_JSON_PORT"] = "0"
        print(otel_perf.configure().settings.window_size)
        otel_perf.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICS_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "22"


def test_import_otel_perf_loads_no_cli_demo_or_endpoint_code() -> None:
    script = textwrap.dedent(
        """
        import sys
        import otel_perf, otel_perf.caches
        loaded = sorted(m for m in sys.modules if m.startswith("otel_perf"))
        print("\\n".join(loaded))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICS_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    loaded = result.stdout.split()
    assert "otel_perf" in loaded
    # The CLI and the demo, the HTTP endpoint and the MCP integrations load only when used.
    edges = ("otel_perf._cli", "otel_perf._http", "otel_perf.mcp", "otel_perf.fastmcp")
    assert [m for m in loaded if m.startswith(edges)] == []


def test_cli_version_and_help() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "otel_perf", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.startswith("otel-perf ")


def _modules_after(statement: str) -> set[str]:
    script = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICS_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


def test_import_otel_perf_loads_only_what_recording_needs() -> None:
    # Start-up counts for stdio servers, which MCP clients spawn on demand: nothing that only
    # the version lookup, the push exporters, Prometheus rendering or the HTTP server need.
    loaded = _modules_after("import otel_perf")
    unwanted = (
        "importlib.metadata",  # ~36 ms for a version string
        "opentelemetry.sdk",  # loaded by the first configure(), explicit or implicit
        "otel_perf._export.forwarder",
        "otel_perf._export.delta",
        "opentelemetry.exporter",
        "prometheus_client",
        "http.server",
        "otel_perf._cli",
        "otel_perf._http",
    )
    assert sorted(m for m in loaded if m.startswith(unwanted)) == []


def test_the_version_is_the_packaged_one_without_package_metadata() -> None:
    from importlib.metadata import version

    import otel_perf

    assert otel_perf.__version__ == version("otel-perf")


def test_configuring_loads_no_exporter_or_prometheus_code() -> None:
    # The endpoint runs (port 0); Prometheus rendering loads with the first scrape, the
    # document code with the first snapshot or history sample.
    loaded = _modules_after(
        "import os\nos.environ['METRICS_JSON_PORT'] = '0'\n"
        "import otel_perf\nassert otel_perf.configure().url\notel_perf.shutdown()"
    )
    assert "otel_perf._http.server" in loaded
    unwanted = (
        "prometheus_client",
        "otel_perf._http.prometheus",
        "otel_perf._export.forwarder",
        "opentelemetry.exporter",
        "otel_perf._document",
        "otel_perf._extract",
    )
    assert sorted(m for m in loaded if m.startswith(unwanted)) == []


def test_the_endpoint_names_prometheus_content_type_as_prometheus_client_does() -> None:
    from otel_perf._http import prometheus, routes

    assert routes.PROMETHEUS_CONTENT_TYPE == prometheus.CONTENT_TYPE
