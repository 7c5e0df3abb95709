"""An MCPServer over streamable HTTP for multi-process servers (uvicorn --workers, gunicorn).

Tools: ``pid()`` returns the worker's process id (so a test knows the spread), ``ok(x)``
returns ``x``. Stateless HTTP: any worker can answer any request.
With OTEL_PERF_TEST_INSTRUMENT=1 the module instruments the server itself; otherwise it is
left to ``otel-perf run``.
"""

import logging
import os
import sys

from mcp.server import MCPServer

# WARNING, not CRITICAL: MCPServer sets the root logger's level, and the tests read
# otel-perf's warnings from the server's output: one plain line each (Rich would wrap them).
server = MCPServer("otel-perf-multiprocess", log_level="WARNING")
logging.getLogger().handlers = [logging.StreamHandler(sys.stderr)]


@server.tool()
async def pid() -> int:
    return os.getpid()


@server.tool()
async def ok(x: int) -> int:
    return x


if os.environ.get("OTEL_PERF_TEST_INSTRUMENT") == "1":
    import otel_perf.mcp

    otel_perf.mcp.instrument(server)

app = server.streamable_http_app(stateless_http=True)
