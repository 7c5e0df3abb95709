"""Installing otel-perf never changes the user's SDK (run where mcp 1.x is installed).

The wheel built from this checkout is resolved by pip in this environment, offline
(``--isolated --no-index``: only the wheel and what is already installed), for every install
command the README gives: the plain package and the ``mcp`` / ``fastmcp`` extras must install
otel-perf and nothing else, leaving mcp 1.x and FastMCP 3.x in place. An extra that required
mcp 2.x would make pip want mcp 2.x, which it cannot find offline: the resolution fails.
Every message naming an install command is right for this SDK: the demo's does not tell a 1.x
user to upgrade mcp.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from otel_perf._integrations import sdk_versions
from tests.support.servers import harness

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("otel_perf-*.whl")
    return built


@pytest.mark.parametrize("extras", ["", "[mcp]", "[fastmcp]", "[mcp,fastmcp]"])
def test_readme_install_commands_keep_the_sdk(wheel: Path, extras: str, tmp_path: Path) -> None:
    before = (sdk_versions.installed_version("mcp"), sdk_versions.installed_version("fastmcp"))
    assert sdk_versions.major(before[0]) == 1
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-index",
            "--find-links",
            str(wheel.parent),
            "--dry-run",
            "--report",
            str(report),
            f"{wheel}{extras}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installs = json.loads(report.read_text())["install"]
    assert [item["metadata"]["name"] for item in installs] == ["otel-perf"]
    after = (sdk_versions.installed_version("mcp"), sdk_versions.installed_version("fastmcp"))
    assert after == before


def test_demo_does_not_tell_a_1x_user_to_upgrade() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_perf", "demo"],
        env=harness.child_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "environment of its own" in result.stderr
    assert "python3 -m venv" in result.stderr
    assert f"mcp {sdk_versions.installed_version('mcp')}" in result.stderr
