"""Every metric name, unit, attribute key and bucket setting otel-perf uses, in one place.

Names follow the OpenTelemetry semantic conventions where one exists:

- MCP (semconv v1.39, "Development"): ``mcp.server.operation.duration`` with
  ``mcp.method.name``, ``gen_ai.tool.name`` and ``gen_ai.operation.name="execute_tool"`` (on
  ``tools/call``), ``error.type``, ``rpc.response.status_code`` and ``network.transport``; and
  ``mcp.server.session.duration`` (one value per handshake session when it ends).
- GenAI client: ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` with
  ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.operation.name``,
  ``gen_ai.token.type``.
- ``process.uptime`` (gauge, seconds).

The string values are copied here rather than imported from
``opentelemetry.semconv._incubating``, which is private and deprecated.

Caches, active sessions and in-flight requests have no convention yet; the names below are
otel-perf's own, modelled on Micrometer's ``cache.gets{result}`` and on
``http.server.active_requests``.
"""

from __future__ import annotations

from typing import Final

METER_NAME: Final = "otel_perf"

# --- instruments -------------------------------------------------------------------------------

MCP_SERVER_OPERATION_DURATION: Final = "mcp.server.operation.duration"
GEN_AI_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
CACHE_REQUESTS: Final = "cache.requests"
CACHE_EVICTIONS: Final = "cache.evictions"
CACHE_SIZE_REJECTIONS: Final = "cache.size_rejections"
ACTIVE_SESSIONS: Final = "mcp.server.active_sessions"
ACTIVE_REQUESTS: Final = "mcp.server.active_requests"
PROCESS_UPTIME: Final = "process.uptime"
MCP_SERVER_SESSION_DURATION: Final = "mcp.server.session.duration"
#: No convention exists for what an LLM call costs, so this one is otel-perf's own: a
#: cumulative counter in US dollars per provider and model (Prometheus:
#: ``otel_perf_gen_ai_client_cost_usd_total``), computed from the reported token counts.
GEN_AI_CLIENT_COST: Final = "otel_perf.gen_ai.client.cost"

UNIT_SECONDS: Final = "s"
UNIT_TOKENS: Final = "{token}"
UNIT_REQUESTS: Final = "{request}"
UNIT_SESSIONS: Final = "{session}"
UNIT_EVICTIONS: Final = "{eviction}"
UNIT_REJECTIONS: Final = "{rejection}"
UNIT_USD: Final = "USD"

# --- attribute keys ----------------------------------------------------------------------------

MCP_METHOD_NAME: Final = "mcp.method.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"
CACHE_NAME: Final = "cache.name"
CACHE_RESULT: Final = "cache.result"
#: The JSON-RPC error code of an error answer, as a string (``"-32602"``); on every request
#: answered with a JSON-RPC error, and on client mistakes however the SDK answered them.
RPC_RESPONSE_STATUS_CODE: Final = "rpc.response.status_code"
#: ``"pipe"`` (stdio) or ``"tcp"`` (HTTP), when known.
NETWORK_TRANSPORT: Final = "network.transport"

# --- attribute values --------------------------------------------------------------------------

METHOD_TOOLS_CALL: Final = "tools/call"
#: ``gen_ai.operation.name`` of every ``tools/call`` series.
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
OPERATION_CHAT: Final = "chat"
CACHE_HIT: Final = "hit"
CACHE_MISS: Final = "miss"
TOKEN_INPUT: Final = "input"
TOKEN_OUTPUT: Final = "output"

#: ``error.type`` of a failure whose cause is unknown, and the value every bounded name (tool,
#: provider, model, cache, error type) folds into once its cap is reached. ``_OTHER`` is the
#: semantic conventions' own fallback value for ``error.type``.
OTHER: Final = "_OTHER"

#: Name used for a missing, empty or unprintable tool/provider/cache name.
UNKNOWN: Final = "unknown"

#: The SDK's attribute on the point that holds measurements beyond its cardinality limit.
SDK_OVERFLOW_ATTRIBUTE: Final = "otel.metric.overflow"

# --- buckets -----------------------------------------------------------------------------------

#: Exponential histogram size for durations. 160 buckets settle at scale 3-4 for realistic
#: latency ranges (4-9 % wide buckets); log-linear interpolation inside a bucket then keeps
#: percentile error under 1 % (see docs and tests/unit/test_percentiles.py).
EXPONENTIAL_MAX_SIZE: Final = 160
EXPONENTIAL_MAX_SCALE: Final = 20

#: Explicit bucket advice from the MCP convention, used when an exporter asks for explicit buckets.
MCP_DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

#: Explicit bucket advice from the GenAI convention for ``gen_ai.client.operation.duration``
#: (0.01 s doubling to 81.92 s).
GEN_AI_DURATION_BUCKETS: Final = tuple(round(0.01 * 2**i, 2) for i in range(14))

#: Token-usage bucket advice from the GenAI convention (powers of 4).
TOKEN_USAGE_BUCKETS: Final = tuple(float(4**i) for i in range(14))
