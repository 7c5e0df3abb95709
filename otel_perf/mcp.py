"""Metrics for servers built with the official MCP Python SDK, 1.x or 2.x (``otel-perf[mcp]``).

>>> import otel_perf.mcp
>>> server = otel_perf.mcp.instrument(server)     # calling it again is a no-op

:func:`instrument` takes any server of the installed SDK generation and hooks into it:

- mcp 2.x (``mcp.server.MCPServer``, the low-level ``mcp.server.Server``): one
  ``ServerMiddleware`` in ``server.middleware``, see :mod:`otel_perf._integrations.mcp_v2`;
- mcp 1.x (``mcp.server.fastmcp.FastMCP``, the low-level ``mcp.server.lowlevel.Server``): the
  public ``Server.run()`` of each session and the handler maps, see
  :mod:`otel_perf._integrations.mcp_v1`;
- a ``fastmcp.FastMCP`` (FastMCP 3.x or 4.x) gets :class:`otel_perf.fastmcp.OtelPerfMiddleware`.

Both generations record the same things through one policy
(:mod:`otel_perf._integrations.mcp_policy`):

- every request and notification, timed into ``mcp.server.operation.duration`` with
  ``mcp.method.name`` (methods nobody serves fold into ``_OTHER``);
- ``tools/call`` per tool (``gen_ai.tool.name``) with the class of the exception the tool raised
  as ``error.type`` (``tool_error`` for an ``isError`` result with no exception), JSON-RPC
  errors that are the client's fault not counted as failures;
- requests in flight (``system_metrics.concurrent_requests``);
- handshake sessions (+1 after ``initialize``, -1 when the session ends);
- on mcp 2.x, messages the transport rejects before any middleware, under ``_OTHER`` with their
  JSON-RPC code (see :mod:`otel_perf._integrations.mcp_v2_transports`).

Importing this module does not change the SDK: without ``mcp`` it raises an ``ImportError``
naming the extra, whose requirement (``mcp>=1,<3``) keeps whichever generation is installed.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from otel_perf._integrations import sdk_versions

if TYPE_CHECKING:  # the mcp 2.x middleware class; see __getattr__ below
    from otel_perf._integrations.mcp_v2 import OtelPerfServerMiddleware

__all__ = ["GENERATION", "OtelPerfServerMiddleware", "instrument"]


def _load_hooks() -> tuple[int, ModuleType]:
    try:
        importlib.import_module("mcp")
    except ImportError as exc:
        raise ImportError(sdk_versions.missing_message("otel_perf.mcp", "mcp", "mcp", exc)) from exc
    generation = sdk_versions.mcp_generation()
    if generation == 1:
        return 1, importlib.import_module("otel_perf._integrations.mcp_v1")
    if generation in (2, None):  # None: importable but no metadata, e.g. a source checkout
        return 2, importlib.import_module("otel_perf._integrations.mcp_v2")
    raise ImportError(
        sdk_versions.unsupported_message("otel_perf.mcp", "mcp", sdk_versions.MCP_GENERATIONS)
        or f"otel_perf.mcp does not support mcp {generation}.x"
    )


#: The major version of the installed ``mcp`` SDK whose hooks :func:`instrument` uses (1 or 2).
GENERATION, _hooks = _load_hooks()


def _is_fastmcp(server: object) -> bool:
    # Checked through sys.modules: a FastMCP server exists only if fastmcp is already imported.
    fastmcp = sys.modules.get("fastmcp")
    server_class = getattr(fastmcp, "FastMCP", None)
    return isinstance(server_class, type) and isinstance(server, server_class)


def instrument(server: Any) -> Any:
    """Measure every request ``server`` handles; returns ``server``. Calling it again is a no-op.

    ``server`` is a server of the installed SDK: ``mcp.server.MCPServer`` or
    ``mcp.server.Server`` (mcp 2.x), ``mcp.server.fastmcp.FastMCP`` or
    ``mcp.server.lowlevel.Server`` (mcp 1.x), or a ``fastmcp.FastMCP`` of FastMCP 3.x / 4.x.
    """
    if _is_fastmcp(server):
        integration = importlib.import_module("otel_perf.fastmcp")
        return integration.instrument(server)
    return _hooks.instrument(server)


def __getattr__(name: str) -> Any:
    if name == "OtelPerfServerMiddleware":
        if GENERATION == 2:
            return _hooks.OtelPerfServerMiddleware
        raise AttributeError(
            "otel_perf.mcp.OtelPerfServerMiddleware is the mcp 2.x ServerMiddleware; mcp 1.x has "
            "no middleware, use otel_perf.mcp.instrument(server) there"
        )
    raise AttributeError(f"module 'otel_perf.mcp' has no attribute {name!r}")
