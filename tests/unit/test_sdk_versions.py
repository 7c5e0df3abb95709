"""Install advice never changes the user's SDK: which messages name which command."""

from __future__ import annotations

import pytest

from otel_perf._integrations import sdk_versions


@pytest.mark.parametrize(
    ("version", "expected"), [("1.30.0", 1), ("2.3.0", 2), ("10.0", 10), ("", None), (None, None)]
)
def test_major(version: str | None, expected: int | None) -> None:
    assert sdk_versions.major(version) == expected


def test_installed_versions_are_read_from_metadata() -> None:
    assert sdk_versions.installed_version("otel-perf") is not None
    assert sdk_versions.installed_version("no-such-distribution-otel-perf") is None
    assert sdk_versions.mcp_generation() in sdk_versions.MCP_GENERATIONS


def test_a_missing_sdk_gets_the_extra() -> None:
    message = sdk_versions.import_failure_message(
        "otel_perf.fastmcp",
        "no-such-distribution-otel-perf",
        "fastmcp",
        sdk_versions.FASTMCP_GENERATIONS,
        ImportError("No module named 'fastmcp'"),
    )
    assert "pip install 'otel-perf[fastmcp]'" in message


def test_an_unsupported_generation_gets_no_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an installed FastMCP 2.x: the extra (fastmcp>=3) would upgrade it, so no command at all
    monkeypatch.setattr(sdk_versions, "installed_version", lambda name: "2.12.0")
    message = sdk_versions.import_failure_message(
        "otel_perf.fastmcp", "fastmcp", "fastmcp", sdk_versions.FASTMCP_GENERATIONS, ImportError()
    )
    assert "pip install" not in message
    assert "fastmcp 2.12.0" in message
    assert "3.x and 4.x" in message
    assert "track_tool" in message
