"""Every environment variable otel-perf reads, set to garbage: at most one warning naming it,
the default used, and the host runs.

The variables are enumerated from the modules that read them, so a new one is fuzzed too.
Values that are unusual but unambiguous are accepted as what they say (``TRUE``, ``Delta``,
`` 42 ``); empty means unset for the ``OTEL_*`` variables, as the OTel specification says.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import otel_perf
from otel_perf._export import settings as _otlp_settings
from otel_perf._settings import _ENV_FIELDS, OTEL_SDK_DISABLED, Settings, load_settings
from tests.support.helpers import http_request

SETTINGS_DEFAULTS = Settings()
EXPORT_DEFAULTS = SETTINGS_DEFAULTS.export

# --- what each variable is ---------------------------------------------------------------------

BOOL, INT, ENUM, URL, FREE = "bool", "int", "enum", "url", "free"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: variable -> (kind, how to read the setting it controls, what the setting is by default,
#: and the valid range or values).
Variable = tuple[str, Callable[[Settings], Any], Any, Any]
VARIABLES: dict[str, Variable] = {}

_INT_RANGES = {
    "window_size": (1, 10_000_000),
    "json_port": (0, 65535),
    "max_tools": (1, 100_000),
    "max_providers": (1, 100_000),
    "max_models": (1, 100_000),
    "max_caches": (1, 100_000),
    "max_error_types": (1, 100_000),
}
for _field, (_names, _parse) in _ENV_FIELDS.items():
    for _name in _names:
        default = getattr(SETTINGS_DEFAULTS, _field)
        reader: Callable[[Settings], Any] = lambda s, f=_field: getattr(s, f)  # noqa: E731
        if isinstance(default, bool):
            VARIABLES[_name] = (BOOL, reader, default, None)
        elif _field in _INT_RANGES:
            VARIABLES[_name] = (INT, reader, default, _INT_RANGES[_field])
        else:
            VARIABLES[_name] = (FREE, reader, default, None)
VARIABLES[OTEL_SDK_DISABLED] = (BOOL, lambda s: not s.enabled, False, None)

_MS = (1, 2**31 - 1)
_EXPORT: dict[str, Variable] = {
    "OTEL_METRIC_EXPORT_INTERVAL": (INT, lambda s: s.export.interval_ms, 60_000, _MS),
    "OTEL_METRIC_EXPORT_TIMEOUT": (INT, lambda s: s.export.timeout_ms, 10_000, _MS),
    "OTEL_EXPORTER_OTLP_TIMEOUT": (INT, lambda s: s.export.timeout_ms, 10_000, _MS),
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": (INT, lambda s: s.export.timeout_ms, 10_000, _MS),
    "OTEL_EXPORTER_OTLP_PROTOCOL": (
        ENUM,
        lambda s: s.export.protocol,
        "http/protobuf",
        {"grpc", "http/protobuf"},
    ),
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": (
        ENUM,
        lambda s: s.export.protocol,
        "http/protobuf",
        {"grpc", "http/protobuf"},
    ),
    "OTEL_METRICS_EXPORTER": (
        ENUM,
        lambda s: (s.export.otlp, s.export.console),
        (False, False),
        {"otlp", "console", "prometheus", "none"},
    ),
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": (
        ENUM,
        lambda s: s.export.temporality,
        "cumulative",
        {"cumulative", "delta", "lowmemory"},
    ),
    "OTEL_EXPORTER_OTLP_ENDPOINT": (
        URL,
        lambda s: s.export.endpoint,
        EXPORT_DEFAULTS.endpoint,
        None,
    ),
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": (
        URL,
        lambda s: s.export.endpoint,
        EXPORT_DEFAULTS.endpoint,
        None,
    ),
}
VARIABLES.update(_EXPORT)
#: Read by load_settings outside the table above (free text, or checked where it is used):
#: fuzzed through configure(). XDG_RUNTIME_DIR is left out on purpose: garbage there sends the
#: endpoint registry to the temporary directory every user shares.
OUTSIDE_THE_TABLE = (
    "OTEL_METRICS_EXEMPLAR_FILTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_PERF_GROUP",
)


def test_every_variable_otel_perf_reads_is_fuzzed() -> None:
    exported = {name for name in _otlp_settings.__all__ if name.startswith("OTEL_")}
    assert exported <= set(VARIABLES)
    assert {name for names, _ in _ENV_FIELDS.values() for name in names} <= set(VARIABLES)


# --- garbage ---------------------------------------------------------------------------------

#: Invalid for every boolean, integer, enumerated and URL variable.
GARBAGE = [
    "-1",
    "-99999999999999999999",
    "99999999999999999999999",
    "9" * 5000,
    "1e309",
    "1e3",
    "10.5",
    "0x10",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "abc",
    "None",
    "null",
    "[]",
    "{}",
    "🔥",
    "\u202e42",
    "\u200b",
    "tRuE-ish",
    "yes please",
    "\x01\x02",
    "\x7f",
    "\x1b[31mred",
    "%s%s%n",
    "{0}",
    "$(reboot)",
    "'; DROP TABLE metrics; --",
    "é" * 300,
]
#: Numbers int() reads although they are unusual: accepted as the number, or refused with a
#: warning; either way not a crash.
LENIENT_INTS = ["+5", "1_000", "\uff11\uff12\uff13", "\u0663", " 42 "]  # fullwidth, Arabic-Indic
EMPTY = ["", "   ", "\t\x0b\x0c"]
#: Valid whatever their case.
BOOLS_IN_ANY_CASE = ["TRUE", "False", "yEs", "ON", "oFF"]


def _expected(kind: str, allowed: Any, raw: str) -> Any:
    """The value ``raw`` means when it is valid for ``kind``, else ``None``."""
    text = raw.strip()
    if kind == BOOL:
        return True if text.lower() in _TRUE else False if text.lower() in _FALSE else None
    if kind == INT:
        try:
            value = int(text)
        except ValueError:
            return None
        low, high = allowed
        return value if low <= value <= high else None
    return None


def _check(name: str, raw: str) -> tuple[Settings, list[str]]:
    """load_settings with ``name=raw`` alone: never raises, at most one warning, naming
    ``name``, and the default in force when it warns."""
    _, read, default, _ = VARIABLES[name]
    loaded, warnings = load_settings({name: raw})
    assert len(warnings) <= 1, warnings
    for warning in warnings:
        assert name in warning
        assert len(warning) < 400
        if name == "METRICS_AUTH_TOKEN":
            # Fails closed: no token and no endpoint; the value never reaches the log.
            assert loaded.auth_token is None
            assert loaded.json_enabled is False
            assert raw.strip() not in warning
        else:
            assert read(loaded) == default, (name, raw, read(loaded))
    return loaded, warnings


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_garbage_warns_once_and_the_default_is_used(name: str) -> None:
    kind, _, _, allowed = VARIABLES[name]
    for raw in GARBAGE:
        _, warnings = _check(name, raw)
        if kind == ENUM and raw.strip().lower() in allowed:
            assert warnings == []  # "None" is "none" in another case
        elif kind != FREE:
            assert len(warnings) == 1, (name, raw)


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_empty_values(name: str) -> None:
    _, read, default, _ = VARIABLES[name]
    for raw in EMPTY:
        loaded, warnings = _check(name, raw)
        if name.startswith("OTEL_") or name == "METRICS_AUTH_TOKEN":
            assert warnings == []  # empty means unset
            assert read(loaded) == default
        else:
            assert len(warnings) == 1  # an empty value is a mistake worth a word


@pytest.mark.parametrize("name", sorted(n for n, v in VARIABLES.items() if v[0] == INT))
def test_unusual_numbers(name: str) -> None:
    kind, read, _, allowed = VARIABLES[name]
    for raw in LENIENT_INTS:
        loaded, warnings = _check(name, raw)
        if not warnings:
            assert read(loaded) == _expected(kind, allowed, raw)
    low, high = allowed
    for raw, valid in (
        (str(low - 1), False),
        (str(low), True),
        (str(high), True),
        (str(high + 1), False),
    ):
        loaded, warnings = _check(name, raw)
        assert (not warnings) is valid, (name, raw)


@pytest.mark.parametrize("name", sorted(n for n, v in VARIABLES.items() if v[0] == BOOL))
def test_booleans_in_any_case(name: str) -> None:
    read = VARIABLES[name][1]
    for raw in BOOLS_IN_ANY_CASE:
        loaded, warnings = _check(name, raw)
        assert warnings == []
        meant = _expected(BOOL, None, raw)
        assert read(loaded) == meant


def test_enumerations_in_any_case() -> None:
    loaded, warnings = load_settings(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "GRPC",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": " Delta ",
            "OTEL_METRICS_EXPORTER": "Console",
        }
    )
    assert warnings == []
    assert loaded.export.protocol == "grpc"
    assert loaded.export.temporality == "delta"
    assert loaded.export.console is True


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=st.sampled_from(sorted(VARIABLES)), raw=_TEXT | st.sampled_from(GARBAGE))
def test_any_text_in_any_variable(name: str, raw: str) -> None:
    kind, read, _, allowed = VARIABLES[name]
    loaded, warnings = _check(name, raw)
    if not warnings and kind in (BOOL, INT) and raw.strip():
        assert read(loaded) == _expected(kind, allowed, raw), (name, raw)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    environ=st.dictionaries(
        st.sampled_from(sorted(VARIABLES)), _TEXT | st.sampled_from(GARBAGE), max_size=12
    )
)
def test_many_bad_variables_at_once(environ: dict[str, str]) -> None:
    _, warnings = load_settings(environ)
    # One warning per variable at most (two variables may name the same setting).
    for name in environ:
        assert sum(warning.startswith(name) for warning in warnings) <= 1


# --- the host runs ---------------------------------------------------------------------------

NASTY = ["abc\x01🔥", "-1", "9" * 300, "{0}%s", ""]


def _runs(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    """Configure from the environment, record, read: all must work. The warnings naming
    ``name`` are returned."""
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        caplog.clear()
        # Port 0 whatever the variable says: a test never binds a fixed port.
        metrics = otel_perf.configure(json_port=0)
        otel_perf.record_tool_call("t", True, 2.0)
        with otel_perf.track_tool("u"):
            pass
        document = otel_perf.get_all_metrics()
        json.dumps(document, allow_nan=False)
        if metrics.enabled:
            assert document["tool_metrics"]["t"]["total_calls"] == 1
        if metrics.url is not None:
            assert http_request(metrics.url, path="/health")[0] == 200
        otel_perf.shutdown()
    return [r.getMessage() for r in caplog.records if name in r.getMessage()]


@pytest.mark.parametrize("name", sorted(VARIABLES) + list(OUTSIDE_THE_TABLE))
def test_the_host_runs_with_garbage_in_each_variable(
    name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # No push export to a real collector while fuzzing (the endpoint variables still parse).
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    for raw in NASTY:
        monkeypatch.setenv(name, raw)
        warnings = _runs(caplog, name)
        assert len(warnings) <= 1, (name, raw, warnings)
        if name == "METRICS_AUTH_TOKEN":
            assert all(raw.strip() not in w for w in warnings if raw.strip())


#: Not read when the variable that wins over them is set too (and so not warned about).
SHADOWED = {
    "METRICS_JSON_ENABLED": "METRICS_JSON_ENDPOINT_ENABLED",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
}


def test_the_host_runs_with_every_variable_garbage_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in (*VARIABLES, *OUTSIDE_THE_TABLE):
        monkeypatch.setenv(name, "garbage\x01🔥")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        metrics = otel_perf.configure(json_port=0)
        otel_perf.record_tool_call("t", True, 2.0)
        assert otel_perf.get_all_metrics()["tool_metrics"]["t"]["total_calls"] == 1
    messages = [r.getMessage() for r in caplog.records]
    for name in (*VARIABLES, "OTEL_METRICS_EXEMPLAR_FILTER"):
        if VARIABLES.get(name, (ENUM,))[0] == FREE and name != "METRICS_JSON_HOST":
            continue
        if name in SHADOWED or name == "OTEL_METRICS_EXPORTER":  # the latter is "none" here
            continue
        assert sum(m.startswith(f"otel-perf: {name}") for m in messages) == 1, (name, messages)
    assert metrics.enabled  # every bad value fell back to its default: on


def test_infinite_and_nan_numbers_never_reach_the_settings() -> None:
    for raw in ("inf", "nan", "1e309", str(math.inf)):
        for name, (kind, read, default, _) in VARIABLES.items():
            if kind == INT:
                assert read(load_settings({name: raw})[0]) == default
