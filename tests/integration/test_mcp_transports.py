"""otel_perf.mcp on real mcp 2.x servers, real clients, three transports, both protocol eras.

Each case runs the same workload (see tests/support/servers/harness.py): successful, crashing and
isError tool calls, then four calls held in flight together; it checks the JSON view for
per-tool counts and error types, concurrent requests while the calls are held, and active
sessions during (1 for a legacy handshake session, 0 in the stateless 2026 era) and after
the client disconnects (0).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.servers import harness


@pytest.mark.parametrize("mode", harness.MODES)
@pytest.mark.parametrize("transport", harness.TRANSPORTS)
@pytest.mark.parametrize("kind", ["mcpserver", "lowlevel"])
async def test_workload_is_measured(kind: str, transport: str, mode: str, tmp_path: Path) -> None:
    async with harness.open_target(kind, transport, tmp_path) as target:
        await harness.run_scenario(target, mode, tmp_path)
