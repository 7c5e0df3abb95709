"""The mcp 1.x suite runs only where mcp 1.x is installed: .venv-mcp1 and .venv-mcp126.

``python3 dev.py test`` builds those environments and runs this directory in each (see
dev.py). The main environment has mcp 2.x, which cannot import these servers, so there this
directory is not collected; it is never skipped test by test.
"""

from __future__ import annotations

import pytest

from otel_perf._integrations import sdk_versions

if sdk_versions.mcp_generation() != 1:
    collect_ignore_glob = ["test_*.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # mcp 1.26's FastMCP settings model triggers this warning in newer pydantic-settings when a
    # server is built; it is the SDK's, about its own model, and says nothing about otel-perf.
    sdk_warnings = ["ignore:Field 'lifespan' has an incomplete definition"]
    version = tuple(int(p) for p in (sdk_versions.installed_version("mcp") or "0").split(".")[:2])
    if version < (1, 30):
        # mcp 1.26's streamable-HTTP transport leaves memory streams unclosed when a session
        # ends (a plain uninstrumented server does it too; fixed by 1.30), which pytest reports
        # as unraisable ResourceWarnings after the test.
        sdk_warnings.append(
            "ignore:Exception ignored in. <function MemoryObjectReceiveStream.__del__"
            ":pytest.PytestUnraisableExceptionWarning"
        )
    for item in items:
        for warning in sdk_warnings:
            item.add_marker(pytest.mark.filterwarnings(warning))
