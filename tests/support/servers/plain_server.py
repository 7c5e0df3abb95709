"""An unmodified stdio MCP server: it never imports otel_perf.

    python tests/support/servers/plain_server.py KIND

KIND is ``mcpserver``, ``lowlevel`` or ``fastmcp`` (see ``apps.py``). The zero-code tests start
it through ``otel-perf run``. With ``PLAIN_SERVER_SDK_FILE`` set, it writes there, as it starts
serving, whether OpenTelemetry's metrics SDK is loaded yet.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps

if __name__ == "__main__":
    kind = sys.argv[1]
    server = apps.build(kind)
    sdk_file = os.environ.get("PLAIN_SERVER_SDK_FILE")
    if sdk_file:
        Path(sdk_file).write_text(str("opentelemetry.sdk.metrics" in sys.modules))
    apps.run_stdio(kind, server)
