"""Whether this process's stdout carries a protocol (a stdio MCP server) rather than output.

On a stdio MCP server stdout *is* the JSON-RPC channel: one stray line there breaks the client.
otel-perf treats stdout as the protocol pipe, and so never writes to it (the console exporter
goes to stderr; ``network.transport`` is ``pipe``), when either

- the process runs under ``otel-perf run`` (its import hooks are installed), or
- stdin and stdout are both pipes or sockets, which is how an MCP client launches a stdio
  server. A terminal, a file, or ``/dev/null`` on either side means stdout is for output.

The answer is taken from file descriptors 0 and 1, so a test harness that swaps
``sys.stdout`` does not change it.
"""

from __future__ import annotations

import os
import stat

from otel_perf import _state


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:  # closed or invalid descriptor
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def stdout_is_protocol_pipe() -> bool:
    """Whether stdout is (or may be) a protocol channel; see the module docstring."""
    if _state.instrumentation_installed:
        return True
    return _is_pipe(0) and _is_pipe(1)


__all__ = ["stdout_is_protocol_pipe"]
