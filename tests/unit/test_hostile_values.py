"""Hostile values from the host never reach a terminal, an export or an exception message raw:
names are cleaned of every invisible or control character, counts are bounded so export and
collection cannot fail, and the token never appears in an error."""

from __future__ import annotations

import json
import threading
import time

import pytest
from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics

import otel_perf
from otel_perf._cli.fetch import clean
from otel_perf._configure import get_runtime
from otel_perf._http.prometheus import render
from otel_perf._http.reuse import Reuse
from otel_perf._http.server import Alerts
from otel_perf._recorder import MAX_COUNT_VALUE
from otel_perf._sanitize import clean_text, sanitize

INVISIBLE = {
    "C0 escape": "\x1b[2J",
    "C1 NEL": "\x85",
    "C1 CSI": "\x9b31m",
    "bidi override": "\u202e",
    "bidi isolate": "\u2066",
    "left-to-right mark": "\u200e",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "lone surrogate": "\ud800",
    "unassigned": "\U000e0080",
}


@pytest.mark.parametrize("raw", INVISIBLE.values(), ids=list(INVISIBLE))
def test_names_lose_every_invisible_or_control_character(raw: str) -> None:
    name = sanitize(f"tool{raw}x")
    assert name.isprintable()
    assert name.startswith("tool?")
    assert name.endswith("x")
    name.encode("utf-8")  # strict: no surrogate left


def test_cleaned_names_reach_json_and_prometheus_clean() -> None:
    otel_perf.configure(json_enabled=False)
    for raw in INVISIBLE.values():
        otel_perf.record_tool_call(f"t{raw}", True, 1.0)
        otel_perf.record_provider_call(f"p{raw}", True, 1.0, model=f"m{raw}")
    document = otel_perf.get_all_metrics()
    text = json.dumps(document, ensure_ascii=False)
    pipeline = get_runtime().pipeline
    assert pipeline is not None
    exposition = render(pipeline.collect()).decode("utf-8")
    for raw in INVISIBLE.values():
        if raw != "\x1b[2J":
            assert raw not in text, repr(raw)
            assert raw not in exposition, repr(raw)
    assert "\x1b" not in text
    assert "\x1b" not in exposition


def test_spaces_other_than_ascii_become_spaces() -> None:
    assert clean_text("a\u00a0b\u3000c") == "a b c"


def test_what_the_terminal_tools_print_is_cleaned() -> None:
    hostile = {"tool_metrics": {"t\x1b]0;pwned\x07": {"x": ["\u202eevil", 1, None, 2.5]}}}
    cleaned = clean(hostile)
    text = json.dumps(cleaned, ensure_ascii=False)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\u202e" not in text
    assert cleaned["tool_metrics"]["t?]0;pwned?"]["x"] == ["?evil", 1, None, 2.5]


def test_huge_gauges_and_token_counts_export_and_collect() -> None:
    otel_perf.configure(json_enabled=False)
    otel_perf.set_active_sessions(2**63)
    otel_perf.set_concurrent_requests(10**400)
    otel_perf.record_provider_call("p", True, 1.0, input_tokens=2**70)
    pipeline = get_runtime().pipeline
    assert pipeline is not None
    data = pipeline.collect()
    assert data is not None
    encode_metrics(data).SerializeToString()  # the OTLP encoding: int64 everywhere
    system = otel_perf.get_all_metrics()["system_metrics"]
    assert system["active_sessions"] == MAX_COUNT_VALUE
    assert system["concurrent_requests"] == MAX_COUNT_VALUE


def test_huge_eviction_counts_are_clamped() -> None:
    otel_perf.configure(json_enabled=False)
    recorder = get_runtime().recorder
    assert recorder is not None
    recorder.record_cache_eviction("c", 10**400)
    recorder.record_cache_eviction("c", -3)
    pipeline = get_runtime().pipeline
    assert pipeline is not None
    data = pipeline.collect()
    assert data is not None
    encode_metrics(data).SerializeToString()
    assert otel_perf.get_all_metrics()["cache_metrics"]["c"]["evictions"] == MAX_COUNT_VALUE


@pytest.mark.parametrize("token", ["sekrit token", "sekrit\x00", "s\u00e9krit"])
def test_an_invalid_token_never_appears_in_the_error(token: str) -> None:
    with pytest.raises(ValueError, match="invalid value") as caught:
        otel_perf.configure(auth_token=token)
    assert "krit" not in str(caught.value)
    assert "<hidden>" in str(caught.value)


def test_alerts_log_one_line_per_kind_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    alerts = Alerts(interval_s=60.0, clock=lambda: now[0])
    for _ in range(1000):
        alerts.note("host", "refused")
        alerts.note("slow", "cut off")
    now[0] = 61.0
    alerts.note("host", "refused")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "1000 time(s)" in lines[2]  # 999 held back, then this one


def test_concurrent_requests_share_one_result() -> None:
    made = []
    gate = threading.Event()

    def produce() -> int:
        made.append(1)
        gate.wait(5)
        return len(made)

    reuse: Reuse[int] = Reuse(produce, factor=0.0)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(reuse.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # all eight are asking now
    gate.set()
    for thread in threads:
        thread.join(10)
    assert results == [1] * 8
    assert len(made) == 1
