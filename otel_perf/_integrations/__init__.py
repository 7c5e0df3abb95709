"""Private parts of the integrations: the MCP measurement policy shared by :mod:`otel_perf.mcp` and
:mod:`otel_perf.fastmcp`, ``functools.lru_cache`` sources for :mod:`otel_perf.caches`, and the
zero-code instrumentation behind ``otel-perf run``.
"""
