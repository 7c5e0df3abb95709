"""Hostile input to the recording API: every call returns, and each case has its documented
outcome (README, "Bad input"): dropped with a one-time warning, clamped, renamed, or folded
into ``_OTHER``. Memory and the JSON document stay bounded and valid.

The flood test prints a ``[reliability]`` line with its figures.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import otel_perf
from otel_perf._recorder import MAX_COUNT_VALUE, MAX_DURATION_SECONDS
from otel_perf._sanitize import MAX_NAME_LENGTH
from tests.support.helpers import http_request

DAY_MS = MAX_DURATION_SECONDS * 1000.0
#: The documented ceiling of the JSON document with the default caps (docs/reliability.md).
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def vm_rss() -> int:
    """Resident memory of this process, in bytes (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def document() -> dict[str, Any]:
    """The current document, checked to be strict JSON (no NaN or infinity anywhere)."""
    doc = otel_perf.get_all_metrics()
    return json.loads(json.dumps(doc, allow_nan=False))  # type: ignore[no-any-return]


class BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("hostile __str__")


class NotAStr:
    def __str__(self) -> Any:
        return 42  # noqa: PLE0307 - the point of the test


class BadHashStr(str):
    __slots__ = ()

    def __hash__(self) -> int:
        raise RuntimeError("hostile __hash__")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("hostile __eq__")


class BadBool:
    def __bool__(self) -> bool:
        raise RuntimeError("hostile __bool__")


class BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("hostile __float__")


# --- latencies -------------------------------------------------------------------------------

#: latency given -> latency recorded in ms, or None when the call is dropped.
LATENCIES: list[tuple[object, float | None]] = [
    (math.nan, None),
    (-math.nan, None),
    (math.inf, DAY_MS),
    (-math.inf, 0.0),
    (-5.0, 0.0),
    (-1e300, 0.0),
    (1e300, DAY_MS),
    (DAY_MS + 1.0, DAY_MS),
    (10**400, None),  # float() overflows: not a number otel-perf can record
    (Decimal("NaN"), None),
    (Decimal("1e999"), DAY_MS),
    (Fraction(1, 3), 1 / 3),
    (True, 1.0),
    ("12.5", 12.5),  # float() accepts it, so it is a latency
    ("abc", None),
    ("", None),
    (None, None),
    (object(), None),
    ([], None),
    (1 + 2j, None),
    (BadFloat(), None),
]


@pytest.mark.parametrize(("given", "recorded"), LATENCIES, ids=[repr(g)[:20] for g, _ in LATENCIES])
def test_bad_latencies(given: object, recorded: float | None) -> None:
    otel_perf.record_tool_call("tool", True, given)  # type: ignore[arg-type]
    otel_perf.record_provider_call("prov", False, given, "E")  # type: ignore[arg-type]
    otel_perf.get_collector().record_tool_call("tool", True, given)  # type: ignore[arg-type]
    doc = document()
    if recorded is None:
        assert doc["tool_metrics"] == {}
        assert doc["provider_metrics"] == {}
        return
    tool = doc["tool_metrics"]["tool"]
    assert tool["total_calls"] == 2
    assert tool["max_latency_ms"] == pytest.approx(round(recorded, 2), rel=1e-6)
    assert tool["min_latency_ms"] == pytest.approx(round(recorded, 2), rel=1e-6)
    provider = doc["provider_metrics"]["prov"]
    assert provider["failed_calls"] == 1
    assert provider["max_latency_ms"] == pytest.approx(round(recorded, 2), rel=1e-6)


def test_each_kind_of_bad_latency_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        for _ in range(50):
            otel_perf.record_tool_call("t", True, math.nan)
            otel_perf.record_tool_call("t", True, -1.0)
            otel_perf.record_tool_call("t", True, 1e12)
            otel_perf.record_tool_call("t", True, "abc")  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages
    assert sum("NaN" in m for m in messages) == 1
    assert sum("negative" in m for m in messages) == 1
    assert sum("above one day" in m for m in messages) == 1
    assert sum("dropped because of bad input" in m for m in messages) == 1
    assert document()["tool_metrics"]["t"]["total_calls"] == 100  # clamped ones count


# --- names -----------------------------------------------------------------------------------

#: name given -> name recorded.
NAMES: list[tuple[object, str]] = [
    (None, "unknown"),
    ("", "unknown"),
    (42, "42"),
    (3.5, "3.5"),
    (b"raw", "b'raw'"),
    (("a", 1), "('a', 1)"),
    (BrokenStr(), "unknown"),
    (NotAStr(), "unknown"),
    (BadHashStr("hashless"), "hashless"),
    ("tab\there\nnew\x00nul\x1besc\x7fdel", "tab?here?new?nul?esc?del"),
    ("\r\n", "??"),
    ("lone \ud800 surrogate", "lone ? surrogate"),
    ("x" * 1_000_000, "x" * MAX_NAME_LENGTH),
    ("é" * 300, "é" * MAX_NAME_LENGTH),
    ("名前ツール", "名前ツール"),
    ('"><script>alert(1)</script>', '"><script>alert(1)</script>'),
]


@pytest.mark.parametrize(("given", "recorded"), NAMES, ids=[repr(g)[:20] for g, _ in NAMES])
def test_bad_names(given: object, recorded: str) -> None:
    otel_perf.record_tool_call(given, True, 1.0)  # type: ignore[arg-type]
    otel_perf.record_tool_call("t", False, 1.0, given)  # type: ignore[arg-type]
    otel_perf.record_provider_call(given, True, 1.0, model=given)  # type: ignore[arg-type]
    otel_perf.record_cache_hit(given)  # type: ignore[arg-type]
    otel_perf.record_cache_miss(given)  # type: ignore[arg-type]
    otel_perf.record_cache_eviction(given)  # type: ignore[arg-type]
    otel_perf.record_cache_size_rejection(given)  # type: ignore[arg-type]
    with otel_perf.track_tool(given):  # type: ignore[arg-type]
        pass
    with otel_perf.track_provider(given, model=given):  # type: ignore[arg-type]
        pass
    doc = document()
    assert doc["tool_metrics"][recorded]["total_calls"] == 2
    # A failure without an error type is counted under "_OTHER".
    error = "_OTHER" if given is None else recorded
    assert doc["tool_metrics"]["t"]["error_types"] == {error: 1}
    provider = doc["provider_metrics"][recorded]
    assert provider["total_calls"] == 2
    assert list(provider["models"]) == [recorded]
    cache = doc["cache_metrics"][recorded]
    assert (cache["hits"], cache["misses"], cache["evictions"], cache["size_rejections"]) == (
        1,
        1,
        1,
        1,
    )
    # The other views of the same data take the name too.
    url = otel_perf.configure().url
    assert url is not None
    status, _, body = http_request(url, path="/metrics/prometheus")
    assert status == 200
    body.decode("utf-8")


def test_a_success_flag_that_cannot_be_read_drops_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        otel_perf.record_tool_call("t", BadBool(), 1.0)  # type: ignore[arg-type]
        otel_perf.record_provider_call("p", BadBool(), 1.0)  # type: ignore[arg-type]
    assert document()["tool_metrics"] == {}
    assert len(caplog.records) == 2  # one per kind


@pytest.mark.parametrize(
    ("tokens", "recorded"),
    [
        (-5, None),
        (math.nan, None),
        (math.inf, None),
        ("many", None),
        (object(), None),
        (10**400, MAX_COUNT_VALUE),  # clamped: it made every collection log a traceback
        (2.9, 2),
        ("7", 7),
        (2**63, MAX_COUNT_VALUE),  # clamped: it made every OTLP export fail
    ],
    ids=repr,
)
def test_bad_token_counts_drop_only_the_tokens(tokens: object, recorded: int | None) -> None:
    otel_perf.record_provider_call("p", True, 3.0, model="m", input_tokens=tokens)  # type: ignore[arg-type]
    provider = document()["provider_metrics"]["p"]
    assert provider["total_calls"] == 1  # the call itself is always counted
    assert provider["input_tokens"] == (0 if recorded is None else recorded)


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        (-5, 0),
        (None, 0),
        ("x", 0),
        (math.nan, 0),
        (math.inf, 0),
        (7.9, 7),
        ("12", 12),
        (MAX_COUNT_VALUE, MAX_COUNT_VALUE),
        (2**63, MAX_COUNT_VALUE),  # every OTLP export failed until the value went back
        (10**400, MAX_COUNT_VALUE),  # every collection logged a traceback
    ],
    ids=repr,
)
def test_bad_gauge_values(given: object, recorded: int) -> None:
    otel_perf.set_active_sessions(given)  # type: ignore[arg-type]
    otel_perf.set_concurrent_requests(given)  # type: ignore[arg-type]
    system = document()["system_metrics"]
    assert system["active_sessions"] == recorded
    assert system["concurrent_requests"] == recorded


def test_the_callers_exception_propagates_unchanged_whatever_the_name() -> None:
    class Boom(Exception):
        pass

    error = Boom("the caller's own")

    @otel_perf.track_tool(BrokenStr())  # type: ignore[arg-type]
    def decorated() -> None:
        raise error

    with pytest.raises(Boom) as caught:
        decorated()
    assert caught.value is error
    with pytest.raises(Boom) as caught, otel_perf.track_tool("x" * 1_000_000):
        raise error
    assert caught.value is error
    tools = document()["tool_metrics"]
    assert tools["unknown"]["error_types"] == {"Boom": 1}
    assert tools["x" * MAX_NAME_LENGTH]["error_types"] == {"Boom": 1}


# --- floods ----------------------------------------------------------------------------------


@pytest.fixture
def quiet_caps(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        yield caplog


def _all_error_types(doc: dict[str, Any]) -> set[str]:
    return {error for tool in doc["tool_metrics"].values() for error in tool["error_types"]}


def test_100_000_distinct_tool_names_and_error_types_stay_bounded(
    quiet_caps: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    distinct = 100_000
    warm_up = 2_000  # by then every cap is full

    def flood(start: int, stop: int) -> None:
        for i in range(start, stop):
            otel_perf.record_tool_call(f"tool-{i}", i % 4 != 0, float(i % 500), f"Error{i}")

    flood(0, warm_up)
    document()
    rss_after_warm_up = vm_rss()
    started = time.perf_counter()
    flood(warm_up, distinct)
    seconds = time.perf_counter() - started
    doc = document()
    growth = vm_rss() - rss_after_warm_up

    tools = doc["tool_metrics"]
    assert len(tools) <= 500 + 1  # METRICS_MAX_TOOLS kept, the rest in one entry
    assert "_OTHER" in tools
    assert sum(tool["total_calls"] for tool in tools.values()) == distinct  # nothing lost
    assert sum(tool["failed_calls"] for tool in tools.values()) == distinct // 4
    assert len(_all_error_types(doc)) <= 50 + 1
    body = json.dumps(doc, allow_nan=False)
    assert len(body) < MAX_DOCUMENT_BYTES
    assert growth < 16 * 1024 * 1024, growth
    # One warning per capped kind, not one per name.
    capped = [r for r in quiet_caps.records if "distinct" in r.getMessage()]
    assert len(capped) == 2
    with capsys.disabled():
        print(
            f"\n[reliability] bad input: {distinct} distinct tool names and {distinct} distinct "
            f"error types in {seconds:.1f}s: {len(tools)} tool entries, "
            f"{len(_all_error_types(doc))} error types, totals exact, document "
            f"{len(body) / 1024:.0f} KiB, RSS growth after warm-up {growth / 1024 / 1024:.1f} MiB"
        )


def test_the_worst_case_document_stays_under_its_bound(
    quiet_caps: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every cap full, every name at its maximum length, every series limit reached."""
    pad = MAX_NAME_LENGTH - 4
    errors = [f"{j:03d}" + "E" * pad for j in range(60)]
    for i in range(520):
        name = f"{i:03d}" + "t" * pad
        otel_perf.record_tool_call(name, True, 1.0)
        for j in range(60):  # every tool fails with every error type (past their cap)
            otel_perf.record_tool_call(name, False, float(j), errors[(i + j) % 60])
    # Providers: 110 (100 kept + _OTHER); the 200 (provider, model) pairs of METRICS_MAX_MODELS
    # taken two per provider; then on every provider a model past that cap (_OTHER) and calls
    # without a model (unknown): 402 model entries, each failing with every error type.
    for k in range(4):  # model k of every provider in turn, so each holds two of the pairs
        for i in range(110):
            provider = f"{i:03d}" + "p" * pad
            model = None if k == 3 else f"{i:03d}{k}" + "m" * (pad - 1)
            otel_perf.record_provider_call(provider, True, 3.0, model=model, input_tokens=5)
            for j in range(60):
                otel_perf.record_provider_call(
                    provider, False, 3.0, errors[j], model=model, output_tokens=7
                )
    for i in range(120):
        cache: Callable[[str], None]
        for cache in (
            otel_perf.record_cache_hit,
            otel_perf.record_cache_miss,
            otel_perf.record_cache_eviction,
            otel_perf.record_cache_size_rejection,
        ):
            cache(f"{i:03d}" + "c" * pad)
    doc = document()
    size = len(json.dumps(doc, allow_nan=False))
    assert len(doc["cache_metrics"]) <= 100 + 1
    assert len(doc["provider_metrics"]) == 100 + 1
    models = [m for entry in doc["provider_metrics"].values() for m in entry["models"].values()]
    assert len(models) == 200 + 2 * (100 + 1)
    assert all(len(m["error_types"]) == 50 + 1 for m in models)
    assert size < MAX_DOCUMENT_BYTES
    with capsys.disabled():
        print(f"\n[reliability] worst-case JSON document with default caps: {size / 1024:.0f} KiB")
