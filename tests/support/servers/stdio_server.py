"""A stdio MCP server child that serves its own otel-perf metrics.

    python tests/support/servers/stdio_server.py KIND

KIND is ``mcpserver``, ``lowlevel`` or ``fastmcp`` (see ``apps.py``). The child configures
otel-perf from its environment (the test sets ``METRICS_JSON_PORT=0``), instruments the server,
writes the endpoint's base URL to the file named by ``OTEL_PERF_TEST_URL_FILE`` and serves MCP on
stdin/stdout. When the client closes the pipe it writes its final document to
``<url file>.final.json`` (the endpoint is gone with the process, so "after" is read there).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps

import otel_perf


def main() -> None:
    kind = sys.argv[1]
    url_file = Path(os.environ["OTEL_PERF_TEST_URL_FILE"])
    metrics = otel_perf.configure()
    server = apps.build(kind)
    integration = "otel_perf.fastmcp" if kind == "fastmcp" else "otel_perf.mcp"
    importlib.import_module(integration).instrument(server)
    partial = url_file.with_suffix(".tmp")
    partial.write_text(str(metrics.url))
    partial.replace(url_file)  # atomic: the test never reads half a URL
    apps.run_stdio(kind, server)
    final = otel_perf.get_all_metrics()
    Path(f"{url_file}.final.json").write_text(json.dumps(final))


if __name__ == "__main__":
    main()
