"""The hot path: OTel instruments and the per-series attribute dicts they are recorded with.

One :class:`Recorder` exists per pipeline. It creates every instrument once, at construction,
and caches the attribute dict of each (name, outcome) series the first time it is seen, so a
tracked tool call costs one dict lookup, one ``perf_counter()`` pair, two lock-free in-flight
counter steps, and exactly one SDK ``Histogram.record``. Sessions, in-flight requests and uptime
are plain integers read by observable instruments at collect time, never per call.

Nothing here raises into the caller: every public method catches ``Exception``, logs it once
per kind, and drops only the measurement it could not make sense of.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from otel_perf import _semconv as n
from otel_perf._cost import CostLedger
from otel_perf._guard import Drops
from otel_perf._handoff import MeasurementQueue
from otel_perf._log import warn_once
from otel_perf._sanitize import NameRegistry, PairRegistry
from otel_perf._settings import Settings

if TYPE_CHECKING:
    # The metrics API loads with attach(): a recorder queues before any of OpenTelemetry's
    # metrics code is needed (a stdio server's start-up; see otel_perf._metrics).
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

    from otel_perf._observables import Relay

Attrs = dict[str, str]

#: Bound on each table of cached MCP and provider attribute dicts (each cached one is a distinct,
#: unfolded series, so the caps already bound them; this only guards against a pathological mix).
_MAX_CACHED_SERIES: Final = 1 << 20

#: Durations above this (one day) are clamped to it: a larger value is certainly a caller bug,
#: and one absurd value would force the exponential histogram to a coarser scale.
MAX_DURATION_SECONDS: Final = 86_400.0

#: Gauges set by the host (``set_active_sessions``, ``set_concurrent_requests``) and token
#: counts are clamped to this (one billion): every value then fits every exporter's integer
#: type (OTLP int64, a float without rounding), so no export or collection can fail because
#: of what the host passed. ``2**63`` made every OTLP export fail; ``10**400`` made every
#: collection log a traceback.
MAX_COUNT_VALUE: Final = 1_000_000_000

#: Names whose raw form is cached for the fast path are at most this long; longer ones (or
#: non-strings) are resolved on every call, so hostile names cannot bloat the caches.
_CACHEABLE_NAME_LENGTH: Final = 256

#: GenAI operation names (chat, embeddings, ...) are few by nature; this caps hostile input.
_MAX_OPERATIONS: Final = 16

#: ``gen_ai.operation.name`` values a provider series can carry: the capped names, ``chat`` (the
#: default when none is given, which takes no slot) and ``_OTHER``.
OPERATION_VALUES: Final = _MAX_OPERATIONS + 2

#: MCP method names (``tools/list``, ``initialize``, custom ones) are few by nature too; the
#: integrations already fold unknown methods into ``_OTHER``, this caps whatever is left.
MAX_METHODS: Final = 64

#: Distinct ``rpc.response.status_code`` values kept (the five client-mistake codes, ``-32603``
#: and the few a server raises itself); a tool raising ever-new codes folds into ``_OTHER``.
MAX_STATUS_CODES: Final = 16

#: ``network.transport`` values: absent, ``pipe``, ``tcp`` (never taken from the client).
TRANSPORT_VALUES: Final = 3


def warn_dropped(kind: str, exc: BaseException) -> None:
    """Warn once per kind that a measurement was dropped (never raises into the host)."""
    warn_once(
        f"drop:{kind}",
        "otel-perf: a %s measurement was dropped because of bad input (%s); "
        "further ones are dropped silently",
        kind,
        type(exc).__name__,
    )


def clean_seconds(seconds: float, kind: str) -> float | None:
    """A recordable duration: negative -> 0, above a day -> a day, NaN -> ``None`` (dropped)."""
    if 0.0 <= seconds <= MAX_DURATION_SECONDS:
        return seconds
    if math.isnan(seconds):
        warn_once(
            f"nan:{kind}", "otel-perf: NaN %s latency dropped (the call is not counted)", kind
        )
        return None
    if seconds < 0.0:
        warn_once(f"neg:{kind}", "otel-perf: negative %s latency clamped to 0", kind)
        return 0.0
    warn_once(f"huge:{kind}", "otel-perf: %s latency above one day clamped to one day", kind)
    return MAX_DURATION_SECONDS


class _Instrument(NamedTuple):
    """One synchronous SDK instrument of a recorder: a histogram (``record``) or a counter
    (``add``)."""

    histogram: bool
    name: str
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None


#: The synchronous instruments, in the order of ``Recorder._deferred`` (each record call is
#: bound to its instrument by ``Recorder.attach``).
_INSTRUMENTS: Final = (
    _Instrument(
        True,
        n.MCP_SERVER_OPERATION_DURATION,
        n.UNIT_SECONDS,
        "Duration of MCP requests handled by the server",
        n.MCP_DURATION_BUCKETS,
    ),
    _Instrument(
        True,
        n.GEN_AI_CLIENT_OPERATION_DURATION,
        n.UNIT_SECONDS,
        "Duration of GenAI (LLM provider) client operations",
    ),
    _Instrument(
        True,
        n.GEN_AI_CLIENT_TOKEN_USAGE,
        n.UNIT_TOKENS,
        "Tokens used by GenAI client operations",
        n.TOKEN_USAGE_BUCKETS,
    ),
    _Instrument(
        True,
        n.MCP_SERVER_SESSION_DURATION,
        n.UNIT_SECONDS,
        "Duration of MCP handshake sessions, recorded when each ends",
        n.MCP_DURATION_BUCKETS,
    ),
    _Instrument(False, n.CACHE_REQUESTS, n.UNIT_REQUESTS, "Cache lookups by result"),
    _Instrument(False, n.CACHE_EVICTIONS, n.UNIT_EVICTIONS, "Entries evicted from a cache"),
    _Instrument(
        False,
        n.CACHE_SIZE_REJECTIONS,
        n.UNIT_REJECTIONS,
        "Values refused by a cache because they were too large",
    ),
)


def _cacheable(raw: object) -> bool:
    return type(raw) is str and len(raw) <= _CACHEABLE_NAME_LENGTH


class Recorder:
    """Owns the instruments of one MeterProvider and records into them."""

    def __init__(self, settings: Settings) -> None:
        """A recorder that queues every measurement; :meth:`attach` gives it SDK instruments.

        Until then nothing of the SDK is needed (nor imported): record calls queue, and the
        queue is handed over once it is attached (see :meth:`otel_perf._metrics.Metrics`,
        which lets a stdio server answer its first handshake before the SDK loads).
        """
        self.start_time = time.time()
        self._start_monotonic = time.monotonic()
        #: Measurements dropped rather than recorded into a forked parent's pipeline.
        self.drops = Drops()
        #: What record calls queued and the SDK has not been given yet (see otel_perf._handoff).
        self.queue = MeasurementQueue()
        #: The relay of the observable instruments, once attached (see otel_perf._observables).
        self.relay: Relay | None = None
        #: Token counts per (provider, model), priced when collected.
        self.costs = CostLedger()
        #: The SDK instruments themselves (for checking the application's Views against).
        self._sdk_instruments: tuple[object, ...] = ()

        # Record calls queue their measurement; the SDK gets the queue in batches, before every
        # collection and off the request path (see otel_perf._handoff).
        queue = self.queue
        drops = self.drops

        def unattached(_value: Any, _attributes: Any = None, _context: Any = None) -> None:
            # Only reached through a queue retired before it was ever attached: a record call
            # racing a shutdown that came before the SDK started, or after a failed start.
            drops.drop("recorded while otel-perf's SDK was not running")

        self._deferred = [queue.sink(unattached, drops) for _ in _INSTRUMENTS]
        (
            self._tool_duration,
            self._provider_duration,
            self._token_usage,
            self._session_duration,
            self._cache_requests,
            self._cache_evictions,
            self._cache_rejections,
        ) = self._deferred

        self._tools = NameRegistry("tool", settings.max_tools)
        self._providers = NameRegistry("provider", settings.max_providers)
        #: Models are kept per (provider, model) pair: the document has an entry per pair.
        self._models = PairRegistry("model", settings.max_models)
        self._caches = NameRegistry("cache", settings.max_caches)
        self._error_types = NameRegistry("error type", settings.max_error_types)
        self._operations = NameRegistry("operation", _MAX_OPERATIONS)
        self._methods = NameRegistry("MCP method", MAX_METHODS)
        self._status_codes = NameRegistry("JSON-RPC status code", MAX_STATUS_CODES)
        #: MCP integration series: (method or tool, error, status, transport) -> attributes.
        self._mcp_tool_attrs: dict[tuple[object, object, object, object], Attrs] = {}
        self._mcp_request_attrs: dict[tuple[object, object, object, object], Attrs] = {}
        self._session_attrs: dict[object, Attrs] = {}

        # Attribute dicts, built once per series and never mutated afterwards.
        self._tool_ok: dict[object, Attrs] = {}
        self._tool_failed: dict[tuple[object, object], Attrs] = {}
        #: Provider duration and token series the SDK has, by their raw (provider, model,
        #: operation, error or token type): recorded straight into the SDK.
        self._provider_attrs: dict[tuple[object, ...], Attrs] = {}
        self._token_attrs: dict[tuple[object, ...], Attrs] = {}
        self._cache_hit: dict[object, Attrs] = {}
        self._cache_miss: dict[object, Attrs] = {}
        self._cache_evicted: dict[object, Attrs] = {}
        self._cache_rejected: dict[object, Attrs] = {}
        #: The hot path of ``track_tool`` reads these two directly, saving a Python call (1-2 %
        #: of a tracked call): successful tool series by exact ``str`` name, and the histogram
        #: they go to. Read-only outside this class; see :meth:`tool_finished`.
        self.ok_tool_series = self._tool_ok
        self.tool_duration = self._tool_duration

        # In-flight requests are two ever-growing counters whose difference is the number
        # running. ``next()`` on an ``itertools.count`` is a single C call, atomic under the GIL
        # (CPython's threading module numbers its threads the same way), so starting and
        # finishing a request takes no lock; two lock round trips per call cost several times
        # more, a measurable share of a tracked call (see benchmarks/RESULTS.md).
        self._started = itertools.count()
        self._finished = itertools.count()
        self._read_lock = threading.Lock()
        #: Count one request as started / finished (bound C methods: no Python frame).
        self.request_started: Callable[[], int] = self._started.__next__
        self.request_finished: Callable[[], int] = self._finished.__next__
        # Sessions are counted the same way, so no lock is taken (a signal handler that opens a
        # session while the interrupted code was opening one must not wait on it).
        self._sessions_started = itertools.count()
        self._sessions_finished = itertools.count()
        self._manual_requests = 0
        self._manual_sessions = 0

    def attach(self, meter: Meter, relay: Relay | None = None) -> None:
        """Create the SDK instruments on ``meter`` and hand them what was queued so far.

        ``relay``: the one observable instruments go through (on the application's provider
        they outlive this recorder; see otel_perf._observables). Called once.
        """
        from otel_perf._observables import Relay  # noqa: PLC0415 - see the imports

        instruments: list[object] = []
        for deferred, spec in zip(self._deferred, _INSTRUMENTS, strict=True):
            if spec.histogram:
                histogram = meter.create_histogram(
                    spec.name,
                    unit=spec.unit,
                    description=spec.description,
                    explicit_bucket_boundaries_advisory=spec.buckets,
                )
                deferred.call = histogram.record
                instruments.append(histogram)
            else:
                counter = meter.create_counter(
                    spec.name, unit=spec.unit, description=spec.description
                )
                deferred.call = counter.add
                instruments.append(counter)
        self._sdk_instruments = tuple(instruments)
        self.relay = relay = relay if relay is not None else Relay()
        # Last: on the application's provider its own reader may collect at any moment, and the
        # callbacks read what the lines above set up.
        self._observe(meter, relay)
        self.queue.attach()

    def _observe(self, meter: Meter, relay: Relay) -> None:
        """The observable instruments: sessions, requests in flight, uptime, LLM cost."""
        relay.observe(
            meter,
            "up_down_counter",
            n.ACTIVE_SESSIONS,
            self._observe_sessions,
            owner=self,
            unit=n.UNIT_SESSIONS,
            description="MCP sessions currently open",
        )
        relay.observe(
            meter,
            "up_down_counter",
            n.ACTIVE_REQUESTS,
            self._observe_requests,
            owner=self,
            unit=n.UNIT_REQUESTS,
            description="Requests (tool calls) currently in flight",
        )
        relay.observe(
            meter,
            "gauge",
            n.PROCESS_UPTIME,
            self._observe_uptime,
            owner=self,
            unit=n.UNIT_SECONDS,
            description="Seconds since otel-perf started recording",
        )
        relay.observe(
            meter,
            "counter",
            n.GEN_AI_CLIENT_COST,
            self.costs.observe,
            owner=self,
            unit=n.UNIT_USD,
            description="What LLM calls cost, from their token counts and genai-prices",
        )

    def instruments(self) -> tuple[object, ...]:
        """The synchronous SDK instruments (for checking the application's Views against)."""
        return self._sdk_instruments

    # --- observable callbacks (run at collect time only) -------------------------------------

    def _observe_sessions(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - loaded by attach()

        # Every collection of the provider runs this before it reads the synchronous
        # instruments: the queued measurements reach the SDK in time for it (otel_perf._handoff).
        self.queue.flush()
        return (Observation(self.open_sessions + self._manual_sessions),)

    def _observe_requests(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - loaded by attach()

        return (Observation(self.in_flight + self._manual_requests),)

    def _observe_uptime(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - loaded by attach()

        return (Observation(time.monotonic() - self._start_monotonic),)

    # --- attribute resolution (slow path, first sight of a series) ---------------------------

    def tool_attrs(self, raw_name: object, raw_error: object | None) -> Attrs:
        """The attribute dict of a tool series; ``raw_error=None`` means success.

        Cached dicts come from the tables :meth:`_remember_tool` fills once the SDK has the
        series; others are built here (names resolved, and folded into ``_OTHER`` at the cap).
        """
        if raw_error is None:
            attrs = self._tool_ok.get(raw_name) if _cacheable(raw_name) else None
            if attrs is None:
                attrs = {
                    n.MCP_METHOD_NAME: n.METHOD_TOOLS_CALL,
                    n.GEN_AI_OPERATION_NAME: n.OPERATION_EXECUTE_TOOL,
                    n.GEN_AI_TOOL_NAME: self._tools.resolve(raw_name),
                }
            return attrs
        attrs = None
        if _cacheable(raw_name) and _cacheable(raw_error):
            attrs = self._tool_failed.get((raw_name, raw_error))
        if attrs is None:
            attrs = {
                n.MCP_METHOD_NAME: n.METHOD_TOOLS_CALL,
                n.GEN_AI_OPERATION_NAME: n.OPERATION_EXECUTE_TOOL,
                n.GEN_AI_TOOL_NAME: self._tools.resolve(raw_name),
                n.ERROR_TYPE: self._error_types.resolve(raw_error),
            }
        return attrs

    def _remember_tool(self, raw_name: object, raw_error: object | None, attrs: Attrs) -> None:
        """Cache ``attrs`` for the fast paths, if nothing in it was folded or truncated."""
        if not _cacheable(raw_name) or attrs[n.GEN_AI_TOOL_NAME] != raw_name:
            return
        if raw_error is None:
            self._tool_ok[raw_name] = attrs
        elif _cacheable(raw_error) and attrs[n.ERROR_TYPE] == raw_error:
            self._tool_failed[(raw_name, raw_error)] = attrs

    # --- the hand-off to the SDK -----------------------------------------------------------

    def flush(self) -> int:
        """Hand the SDK every queued measurement now; returns how many."""
        return self.queue.flush()

    def close(self) -> None:
        """This recorder is retired: the SDK gets what is queued, and later calls at once."""
        self.queue.close()

    def _count(
        self,
        instrument: Any,
        table: dict[object, Attrs],
        raw_name: object,
        result: str | None,
        amount: int,
    ) -> None:
        """Add ``amount`` to a cache counter series, building its attributes the first time."""
        attrs = table.get(raw_name) if _cacheable(raw_name) else None
        if attrs is not None:
            instrument.add(amount, attrs)
            return
        name = self._caches.resolve(raw_name)
        attrs = {n.CACHE_NAME: name}
        if result is not None:
            attrs[n.CACHE_RESULT] = result
        instrument.add(amount, attrs)
        if _cacheable(raw_name) and name == raw_name:
            table[raw_name] = attrs

    def _provider_labels(
        self, raw_provider: object, raw_model: object, operation: object, raw_error: object | None
    ) -> Attrs:
        """The attributes of a provider series (names resolved, folded into ``_OTHER`` at
        their caps)."""
        provider = self._providers.resolve(raw_provider)
        attrs = {
            n.GEN_AI_OPERATION_NAME: (
                self._operations.resolve(operation) if operation else n.OPERATION_CHAT
            ),
            n.GEN_AI_PROVIDER_NAME: provider,
            n.GEN_AI_REQUEST_MODEL: (
                self._models.resolve(provider, raw_model) if raw_model is not None else n.UNKNOWN
            ),
        }
        if raw_error is not None:
            attrs[n.ERROR_TYPE] = self._error_types.resolve(raw_error)
        return attrs

    def _record_provider_series(
        self,
        instrument: Any,
        table: dict[tuple[object, ...], Attrs],
        key: tuple[object, ...],
        value: float,
        extra: tuple[str, str] | None = None,
    ) -> Attrs:
        """Record ``value`` into the provider series ``key`` (provider, model, operation, error
        or ``None``, then the token type for tokens); returns its attributes.

        A cached series is one dict lookup and one record. A new one is cached if nothing in it
        was folded (hostile names cannot grow the table). Either way the record only queues
        (otel_perf._handoff), so it never waits for a running collection.
        """
        cacheable = all(part is None or _cacheable(part) for part in key)
        attrs = table.get(key) if cacheable else None
        if attrs is not None:
            instrument.record(value, attrs)
            return attrs
        attrs = self._provider_labels(*key[:4])
        if extra is not None:
            attrs[extra[0]] = extra[1]
        instrument.record(value, attrs)
        if cacheable and _unfolded(key, attrs) and len(table) < _MAX_CACHED_SERIES:
            table[key] = attrs
        return attrs

    # --- tools ---------------------------------------------------------------------------------

    def record_tool_seconds(self, name: object, seconds: float, error_type: object | None) -> None:
        """Record one finished tool call; ``error_type=None`` means it succeeded."""
        try:
            value = clean_seconds(seconds, "tool")
            if value is None:
                return
            attrs = self.tool_attrs(name, error_type)
            self._tool_duration.record(value, attrs)
            self._remember_tool(name, error_type, attrs)
        except Exception as exc:
            warn_dropped("tool", exc)

    def record_tool_call(
        self, tool_name: object, success: object, latency_ms: float, error_type: object = None
    ) -> None:
        """The origin's call: one finished tool call with its latency in milliseconds."""
        try:
            if success:
                seconds = float(latency_ms) / 1000.0
                # Fast path (a tool seen before, a sane latency): the work of
                # record_tool_seconds without its three nested Python calls.
                if type(tool_name) is str and 0.0 <= seconds <= MAX_DURATION_SECONDS:
                    attrs = self._tool_ok.get(tool_name)
                    if attrs is not None:
                        self._tool_duration.record(seconds, attrs)
                        return
                self.record_tool_seconds(tool_name, seconds, None)
                return
            error = n.OTHER if error_type is None else error_type
            self.record_tool_seconds(tool_name, float(latency_ms) / 1000.0, error)
        except Exception as exc:
            warn_dropped("tool", exc)

    def tool_finished(self, name: object, seconds: float, error_type: object | None) -> None:
        """A tracked tool call ended: one request fewer in flight, and its duration recorded.

        The common case (a successful call of a tool seen before) is one dict lookup and one
        SDK record; anything else goes through :meth:`record_tool_seconds`.
        """
        self.request_finished()
        if error_type is None and type(name) is str and 0.0 <= seconds <= MAX_DURATION_SECONDS:
            attrs = self._tool_ok.get(name)  # only exact ``str`` names are ever cached
            if attrs is not None:
                try:
                    self._tool_duration.record(seconds, attrs)
                except Exception as exc:
                    warn_dropped("tool", exc)
                return
        self.record_tool_seconds(name, seconds, error_type)

    # --- MCP integrations ----------------------------------------------------------------------

    def record_mcp_tool(
        self,
        name: object,
        seconds: float,
        error_type: object | None,
        status_code: object | None,
        transport: str | None,
    ) -> None:
        """Record one ``tools/call`` seen by an MCP integration.

        ``error_type`` set: the server failed. ``status_code`` without ``error_type``: the
        client's mistake (see :mod:`otel_perf._integrations.mcp_policy`). Both ``None``: success.
        The attribute dict of each series is built once and reused: after the first call of a
        series this is one tuple, one dict lookup and one SDK record.
        """
        try:
            key = (name, error_type, status_code, transport)
            attrs = self._mcp_tool_attrs.get(key)
            if attrs is not None and 0.0 <= seconds <= MAX_DURATION_SECONDS:
                self._tool_duration.record(seconds, attrs)
                return
            self._record_mcp_new(key, n.METHOD_TOOLS_CALL, self._mcp_tool_attrs, seconds)
        except Exception as exc:
            warn_dropped("tool", exc)

    def record_mcp_request(
        self,
        method: object,
        seconds: float,
        error_type: object | None,
        status_code: object | None,
        transport: str | None,
    ) -> None:
        """Record one MCP request or notification other than ``tools/call``; see
        :meth:`record_mcp_tool` for the meaning of the arguments."""
        try:
            key = (method, error_type, status_code, transport)
            attrs = self._mcp_request_attrs.get(key)
            if attrs is not None and 0.0 <= seconds <= MAX_DURATION_SECONDS:
                self._tool_duration.record(seconds, attrs)
                return
            self._record_mcp_new(key, None, self._mcp_request_attrs, seconds)
        except Exception as exc:
            warn_dropped("request", exc)

    def _record_mcp_new(
        self,
        key: tuple[object, object, object, object],
        tool_call: str | None,
        table: dict[tuple[object, object, object, object], Attrs],
        seconds: float,
    ) -> None:
        """The slow path of the MCP records: an odd duration, or a series not cached yet."""
        attrs = table.get(key)
        cacheable = False
        if attrs is None:
            attrs, cacheable = self._mcp_series(key, tool_call)
        value = clean_seconds(seconds, "tool" if tool_call else "request")
        if value is None:
            return
        self._tool_duration.record(value, attrs)
        if cacheable and len(table) < _MAX_CACHED_SERIES:
            table[key] = attrs

    def _mcp_series(
        self, key: tuple[object, object, object, object], tool_call: str | None
    ) -> tuple[Attrs, bool]:
        """The attributes of one MCP series, and whether they may be cached under ``key``
        (nothing was folded into ``_OTHER`` or truncated)."""
        raw_name, raw_error, raw_status, transport = key
        attrs: Attrs
        if tool_call is not None:
            name = self._tools.resolve(raw_name)
            attrs = {
                n.MCP_METHOD_NAME: tool_call,
                n.GEN_AI_OPERATION_NAME: n.OPERATION_EXECUTE_TOOL,
                n.GEN_AI_TOOL_NAME: name,
            }
        else:
            name = self._methods.resolve(raw_name)
            attrs = {n.MCP_METHOD_NAME: name}
        folded = name != raw_name
        if raw_error is not None:
            error = self._error_types.resolve(raw_error)
            attrs[n.ERROR_TYPE] = error
            folded = folded or error != raw_error
        if raw_status is not None:
            status = self._status_codes.resolve(raw_status)
            attrs[n.RPC_RESPONSE_STATUS_CODE] = status
            folded = folded or status != raw_status
        if transport is not None:
            attrs[n.NETWORK_TRANSPORT] = str(transport)
        cacheable = not folded and all(part is None or _cacheable(part) for part in key)
        return attrs, cacheable

    # --- providers -----------------------------------------------------------------------------

    def record_provider_seconds(
        self,
        provider: object,
        seconds: float,
        error_type: object | None,
        model: object = None,
        input_tokens: object = None,
        output_tokens: object = None,
        operation: object = None,
    ) -> None:
        try:
            value = clean_seconds(seconds, "provider")
            if value is not None:
                key = (provider, model, operation, error_type)
                self._record_provider_series(
                    self._provider_duration, self._provider_attrs, key, value
                )
            if input_tokens is not None or output_tokens is not None:
                ins, names = self._record_tokens(
                    provider, model, operation, input_tokens, n.TOKEN_INPUT
                )
                outs, out_names = self._record_tokens(
                    provider, model, operation, output_tokens, n.TOKEN_OUTPUT
                )
                names = names or out_names
                if (ins or outs) and names is not None:  # priced at collect time (otel_perf._cost)
                    self.costs.add(
                        names[n.GEN_AI_PROVIDER_NAME], names[n.GEN_AI_REQUEST_MODEL], ins, outs
                    )
        except Exception as exc:
            warn_dropped("provider", exc)

    def record_provider_call(
        self,
        provider: object,
        success: object,
        latency_ms: float,
        error_type: object = None,
        model: object = None,
        input_tokens: object = None,
        output_tokens: object = None,
        operation: object = None,
    ) -> None:
        """One finished provider call with its latency in milliseconds."""
        try:
            error = None if success else (n.OTHER if error_type is None else error_type)
            seconds = float(latency_ms) / 1000.0
        except Exception as exc:
            warn_dropped("provider", exc)
            return
        self.record_provider_seconds(
            provider, seconds, error, model, input_tokens, output_tokens, operation
        )

    def _record_tokens(
        self, provider: object, model: object, operation: object, tokens: object, token_type: str
    ) -> tuple[int, Attrs | None]:
        """Record a token count; returns it (0 when absent or dropped) and the series' attributes
        (``None`` when nothing was recorded)."""
        if tokens is None:
            return 0, None
        count: int = int(tokens)  # type: ignore[call-overload]
        if count < 0:
            warn_once("neg:tokens", "otel-perf: negative token count dropped")
            return 0, None
        if count > MAX_COUNT_VALUE:
            warn_once("huge:tokens", "otel-perf: token count above %d clamped", MAX_COUNT_VALUE)
            count = MAX_COUNT_VALUE
        key = (provider, model, operation, None, token_type)
        attrs = self._record_provider_series(
            self._token_usage, self._token_attrs, key, count, (n.GEN_AI_TOKEN_TYPE, token_type)
        )
        return count, attrs

    # --- caches --------------------------------------------------------------------------------

    def record_cache_hit(self, cache_name: object) -> None:
        try:
            # Fast path (a cache seen before): one lookup and the queued add, without
            # _count's nested calls. Only exact ``str`` names are ever cached.
            if type(cache_name) is str:
                attrs = self._cache_hit.get(cache_name)
                if attrs is not None:
                    self._cache_requests.add(1, attrs)
                    return
            self._count(self._cache_requests, self._cache_hit, cache_name, n.CACHE_HIT, 1)
        except Exception as exc:
            warn_dropped("cache", exc)

    def record_cache_miss(self, cache_name: object) -> None:
        try:
            if type(cache_name) is str:  # the fast path, as in record_cache_hit
                attrs = self._cache_miss.get(cache_name)
                if attrs is not None:
                    self._cache_requests.add(1, attrs)
                    return
            self._count(self._cache_requests, self._cache_miss, cache_name, n.CACHE_MISS, 1)
        except Exception as exc:
            warn_dropped("cache", exc)

    def record_cache_eviction(self, cache_name: object, count: int = 1) -> None:
        try:
            if type(count) is not int or not 0 <= count <= MAX_COUNT_VALUE:
                count = _gauge_value(count, "cache evictions") or 0
            self._count(self._cache_evictions, self._cache_evicted, cache_name, None, count)
        except Exception as exc:
            warn_dropped("cache", exc)

    def record_cache_size_rejection(self, cache_name: object) -> None:
        try:
            self._count(self._cache_rejections, self._cache_rejected, cache_name, None, 1)
        except Exception as exc:
            warn_dropped("cache", exc)

    # --- system --------------------------------------------------------------------------------

    def session_started(self) -> None:
        next(self._sessions_started)

    def session_finished(self, seconds: float | None = None, transport: str | None = None) -> None:
        """One session ended; with ``seconds``, its duration goes to
        ``mcp.server.session.duration`` (with ``network.transport`` when known)."""
        next(self._sessions_finished)
        if seconds is None:
            return
        try:
            attrs = self._session_attrs.get(transport)
            if attrs is None:
                attrs = {} if transport is None else {n.NETWORK_TRANSPORT: str(transport)}
                if len(self._session_attrs) < TRANSPORT_VALUES:
                    self._session_attrs[transport] = attrs
            value = clean_seconds(seconds, "session")
            if value is not None:
                self._session_duration.record(value, attrs)
        except Exception as exc:
            warn_dropped("session", exc)

    @property
    def open_sessions(self) -> int:
        """Sessions started by ``track_session`` and not yet finished."""
        with self._read_lock:
            finished = next(self._sessions_finished)
            started = next(self._sessions_started)
        return started - finished

    def abandon_after_fork(self) -> None:
        """In a forked child: this recorder is the parent's; record nothing more into it.

        Another thread of the parent may have held any of the SDK's locks at the fork, and no
        thread in the child will release them, so every measurement is dropped (and counted)
        instead; the child configures a pipeline of its own on its next record call. The
        locks of this recorder itself are replaced for the same reason.
        """
        self.queue.discard()  # the parent's queue: the parent hands it to the SDK itself
        for deferred in self._deferred:
            deferred.abandon()
        self._read_lock = threading.Lock()
        for registry in (
            self._tools,
            self._providers,
            self._models,
            self._caches,
            self._error_types,
            self._operations,
            self._methods,
            self._status_codes,
        ):
            registry.after_fork()

    def set_active_sessions(self, count: object) -> None:
        value = _gauge_value(count, "active sessions")
        if value is not None:
            self._manual_sessions = value

    def set_concurrent_requests(self, count: object) -> None:
        value = _gauge_value(count, "concurrent requests")
        if value is not None:
            self._manual_requests = value

    @property
    def in_flight(self) -> int:
        """Requests started and not yet finished."""
        with self._read_lock:
            # Each read advances both counters by one, which cancels out. The finished count is
            # read first, so a request that starts and ends in between cannot make this negative.
            finished = next(self._finished)
            started = next(self._started)
        return max(started - finished, 0)


def cardinality_limits(settings: Settings) -> dict[str, int]:
    """The SDK's per-instrument cardinality limit for each instrument, sized from the caps.

    For the MCP, session and cache instruments each limit is the largest number of distinct
    attribute sets the recorder can produce, given ``METRICS_MAX_*`` and the fixed caps above:
    every bounded name folds into ``_OTHER`` *before* the SDK would overflow, so the SDK's
    overflow series (which has no ``error.type``, and would turn failures into successes) is
    never used. The SDK only allocates a series when it is recorded, so a large limit costs
    nothing by itself.
    """
    errors = settings.max_error_types + 1  # + _OTHER
    statuses = MAX_STATUS_CODES + 1
    # per tool or method: success, failure (error type x (no code | a code)), client mistake (code)
    outcomes = 1 + errors * (statuses + 1) + statuses
    tools = settings.max_tools + 1
    methods = MAX_METHODS + 1
    mcp = (tools + methods) * outcomes * TRANSPORT_VALUES
    # the origin API's tool series (no status code, no transport) share the instrument
    mcp += tools * (1 + errors)
    # Provider series: (provider, model) pairs x operations x (success | an error type), and x
    # the two token types for tokens. Models are capped per pair (METRICS_MAX_MODELS), and each
    # provider, "_OTHER" included, may add two models that take no slot ("unknown" for a call
    # without a model, "_OTHER" past the cap): the product stays bounded by the caps.
    pairs = settings.max_models + 2 * (settings.max_providers + 1)
    provider_series = pairs * OPERATION_VALUES
    caches = settings.max_caches + 1
    return {
        n.MCP_SERVER_OPERATION_DURATION: mcp,
        n.GEN_AI_CLIENT_OPERATION_DURATION: provider_series * (1 + errors),
        n.GEN_AI_CLIENT_TOKEN_USAGE: provider_series * 2,
        n.CACHE_REQUESTS: caches * 2,
        n.CACHE_EVICTIONS: caches,
        n.CACHE_SIZE_REJECTIONS: caches,
        n.MCP_SERVER_SESSION_DURATION: TRANSPORT_VALUES,
    }


def _unfolded(key: tuple[object, ...], attrs: Attrs) -> bool:
    """Whether the provider series ``key`` (exact ``str`` parts or ``None``, see ``_cacheable``)
    kept every name as given: neither folded into ``_OTHER`` nor changed by sanitising."""
    provider, model, operation, error = key[:4]
    return (
        attrs[n.GEN_AI_PROVIDER_NAME] == provider
        and (model is None or attrs[n.GEN_AI_REQUEST_MODEL] == model)
        and (not operation or attrs[n.GEN_AI_OPERATION_NAME] == operation)
        and (error is None or attrs[n.ERROR_TYPE] == error)
    )


def _gauge_value(count: object, what: str) -> int | None:
    try:
        value: int = int(count)  # type: ignore[call-overload]
    except Exception:
        warn_once(f"gauge:{what}", "otel-perf: ignoring a non-integer %s value", what)
        return None
    if value < 0:
        warn_once(f"gauge-neg:{what}", "otel-perf: negative %s clamped to 0", what)
        return 0
    if value > MAX_COUNT_VALUE:
        warn_once(f"gauge-huge:{what}", "otel-perf: %s above %d clamped", what, MAX_COUNT_VALUE)
        return MAX_COUNT_VALUE
    return value


__all__ = [
    "MAX_COUNT_VALUE",
    "MAX_DURATION_SECONDS",
    "MAX_METHODS",
    "MAX_STATUS_CODES",
    "OPERATION_VALUES",
    "TRANSPORT_VALUES",
    "Recorder",
    "cardinality_limits",
    "clean_seconds",
    "warn_dropped",
]
