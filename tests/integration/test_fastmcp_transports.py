"""otel_perf.fastmcp on real FastMCP 4.x servers and clients: three transports, both eras.

The same workload and checks as tests/integration/test_mcp_transports.py (see
tests/support/servers/harness.py),
driven by ``fastmcp.Client``: in-process, a stdio child serving its own metrics, and
streamable HTTP under uvicorn.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.servers import harness


@pytest.mark.parametrize("mode", harness.MODES)
@pytest.mark.parametrize("transport", harness.TRANSPORTS)
async def test_workload_is_measured(transport: str, mode: str, tmp_path: Path) -> None:
    async with harness.open_target("fastmcp", transport, tmp_path) as target:
        await harness.run_scenario(target, mode, tmp_path)
