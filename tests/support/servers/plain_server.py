"""An unmodified stdio MCP server: it never imports otel_perf.

    python tests/support/servers/plain_server.py KIND

KIND is ``mcpserver``, ``lowlevel`` or ``fastmcp`` (see ``apps.py``). The zero-code tests start
it through ``otel-perf run``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps

if __name__ == "__main__":
    kind = sys.argv[1]
    apps.run_stdio(kind, apps.build(kind))
