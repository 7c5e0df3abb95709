"""``otel-perf run``'s deferred SDK: the recorder queues alone until the SDK starts.

The launcher configures before the program runs, and a stdio server's first handshake waits for
it; so there the SDK starts after the first measurement (otel_perf._metrics). What must hold:
nothing recorded before the start is lost or counted twice, whatever starts it (the delay, a
read, a full queue), and nothing that does not need the numbers starts it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

import otel_perf
from otel_perf import _configure, _handoff, _metrics, _state
from otel_perf._recorder import Recorder


def _started_within(metrics: _metrics.Metrics, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if metrics.sdk_started:
            return True
        time.sleep(0.005)
    return metrics.sdk_started


def _configure_deferred(**overrides: object) -> _metrics.Metrics:
    """The launcher's configuration, with the endpoint off unless asked for."""
    overrides.setdefault("json_enabled", False)
    return _configure._configure(None, dict(overrides), defer_sdk=True)


def test_records_before_the_sdk_starts_are_all_counted_once_it_has() -> None:
    metrics = _configure_deferred()
    assert not metrics.sdk_started
    assert isinstance(metrics.recorder, Recorder)
    assert metrics.recorder.queue.attached is False
    for _ in range(3):
        otel_perf.record_tool_call("search", True, 12.0)
    otel_perf.record_tool_call("search", False, 30.0, "TimeoutError")
    otel_perf.record_cache_hit("pages")
    otel_perf.record_cache_miss("pages")
    with otel_perf.track_session():
        pass
    assert _started_within(metrics, 5.0), "the SDK did not start after the first measurement"
    document = otel_perf.get_all_metrics()
    search = document["tool_metrics"]["search"]
    assert search["total_calls"] == 4
    assert search["failed_calls"] == 1
    assert search["error_types"] == {"TimeoutError": 1}
    pages = document["cache_metrics"]["pages"]
    assert (pages["hits"], pages["misses"]) == (1, 1)
    # The recorder the record calls hold is the one the pipeline adopted: nothing was copied.
    assert metrics.pipeline is not None
    assert metrics.pipeline.recorder is metrics.recorder
    assert metrics.recorder.drops.count == 0


def test_the_sdk_starts_a_moment_after_the_first_measurement_not_at_once() -> None:
    metrics = _configure_deferred()
    assert not _started_within(metrics, 0.2), "the SDK started with nothing recorded"
    otel_perf.record_tool_call("t", True, 1.0)
    # The request the measurement belongs to answers meanwhile.
    assert not metrics.sdk_started
    assert _started_within(metrics, 5.0)


def test_reading_the_metrics_starts_the_sdk_at_once_with_everything_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_metrics, "SDK_START_DELAY_S", 60.0)  # only the read can start it
    metrics = _configure_deferred()
    otel_perf.record_tool_call("t", True, 5.0)
    otel_perf.record_tool_call("t", True, 7.0)
    assert not metrics.sdk_started
    assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 2
    assert metrics.sdk_started


def test_a_full_queue_starts_the_sdk_on_the_recording_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The queue's memory stays bounded while the SDK has not started: at HARD_LIMIT the record
    # call starts it and hands the queue over itself.
    monkeypatch.setattr(_metrics, "SDK_START_DELAY_S", 60.0)
    metrics = _configure_deferred()
    recorder = metrics.recorder
    assert recorder is not None
    for _ in range(_handoff.HARD_LIMIT + 10):
        otel_perf.record_cache_hit("c")
    assert metrics.sdk_started
    assert len(recorder.queue) < _handoff.HARD_LIMIT
    assert otel_perf.get_all_metrics()["cache_metrics"]["c"]["hits"] == _handoff.HARD_LIMIT + 10


def test_a_health_check_does_not_start_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_metrics, "SDK_START_DELAY_S", 60.0)
    metrics = _configure_deferred(json_enabled=True)
    otel_perf.record_tool_call("t", True, 5.0)
    with urllib.request.urlopen(f"{metrics.url}/health", timeout=10) as answer:  # noqa: S310
        health = json.loads(answer.read())
    assert health["enabled"] is True
    assert health["dropped_measurements"] == 0
    assert not metrics.sdk_started


def test_a_shutdown_with_nobody_to_hand_over_to_does_not_start_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_metrics, "SDK_START_DELAY_S", 60.0)
    metrics = _configure_deferred()  # no endpoint: no group to hand the numbers over to
    otel_perf.record_tool_call("t", True, 5.0)
    recorder = metrics.recorder
    assert recorder is not None
    otel_perf.shutdown()
    assert not metrics.sdk_started
    # Nothing would ever read what waited (no exporter, no other process): let go, not
    # reported as dropped.
    assert recorder.drops.count == 0


def test_a_shutdown_hands_what_was_recorded_over_to_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the endpoint on, the process belongs to its server's group, whose archive keeps the
    # numbers for the process that serves next (a reload): the last hand-over needs the SDK.
    monkeypatch.setattr(_metrics, "SDK_START_DELAY_S", 60.0)
    metrics = _configure_deferred(json_enabled=True)
    otel_perf.record_tool_call("t", True, 5.0)
    otel_perf.shutdown()
    assert metrics.sdk_started


def test_the_sdk_is_not_deferred_when_an_exporter_wants_it_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    metrics = _configure_deferred()
    assert metrics.sdk_started


def test_configure_keeps_its_sdk_at_once() -> None:
    # Only the launcher defers: configure() callers get a started pipeline, as documented.
    metrics = otel_perf.configure(json_enabled=False)
    assert metrics.sdk_started
    assert _state.current is metrics.recorder


def test_a_failed_start_turns_metrics_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from otel_perf import _pipeline

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("no SDK today")

    metrics = _configure_deferred()
    monkeypatch.setattr(_pipeline, "Pipeline", refuse)
    otel_perf.record_tool_call("t", True, 5.0)
    assert metrics.pipeline is None
    assert not metrics.enabled
    said = [r.getMessage() for r in caplog.records if "the OpenTelemetry SDK" in r.getMessage()]
    assert said == [
        "otel-perf: starting the OpenTelemetry SDK failed (RuntimeError); metrics are off"
    ]
    otel_perf.record_tool_call("t", True, 5.0)  # never raises into the host


def test_the_launcher_configures_without_loading_the_sdk() -> None:
    # In a fresh interpreter: configuring as the launcher does (endpoint on) loads neither the
    # SDK nor the metrics API; the first measurement, a moment later, does.
    script = (
        "import sys, time\n"
        "from otel_perf._configure import configure_for_launcher\n"
        "metrics = configure_for_launcher()\n"
        "print(metrics.url is not None, any(m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.metrics')) for m in sys.modules))\n"
        "import otel_perf\n"
        "otel_perf.record_tool_call('t', True, 1.0)\n"
        "deadline = time.monotonic() + 10\n"
        "while not metrics.sdk_started and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print('opentelemetry.sdk.metrics' in sys.modules, "
        "otel_perf.get_all_metrics()['tool_metrics']['t']['total_calls'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "False", "True", "1"], done.stderr
