"""Settings: one frozen dataclass, parsed from the environment by a pure function.

The environment is read when ``configure()`` runs, never at import. A bad value never raises:
it produces one warning naming the variable and the default used, and the default applies.
Keyword overrides passed to ``configure()`` are programming, not configuration, so a bad
override raises ``TypeError``/``ValueError`` at once.

Every environment variable otel-perf reads is read here (the push-export ones in
``otel_perf._export.settings``), by functions that take the environment as an argument; the
rest of the package hands them ``os.environ`` and uses the values they return
(``tests/unit/test_environment_reads.py`` reads the package's source to keep it so). Two kinds:

- **settings** change what ``configure()`` builds. :func:`load_settings` reads them into
  :class:`Settings`, and ``configure()`` compares the whole object: any change restarts
  otel-perf with the new values, and nothing reads a setting from the environment later.
- **the launcher's instructions** to the program ``otel-perf run`` starts
  (``OTEL_PERF_LOG_LEVEL``, ``OTEL_PERF_URL_FILE``) act once, at bootstrap, before the first
  ``configure()``, and change nothing it builds: :func:`log_level` and :func:`url_file` read
  them, and ``configure()`` does not compare them. ``OTEL_PERF_BOOTSTRAPPED`` is no
  configuration at all but a marker the bootstrap leaves for the processes it starts
  (otel_perf._integrations.autoinstrument). The command line reads :func:`runtime_dir` and
  :func:`client_token` for ``otel-perf top``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from otel_perf._export.settings import ExportSettings, load_export_settings, shorten
from otel_perf._integrations.bootstrap_paths import (
    LOG_LEVEL_ENV,
    RESOURCE_ATTRIBUTES_ENV,
    SERVICE_NAME_ENV,
    URL_FILE_ENV,
)

PERFORMANCE_METRICS_ENABLED: Final = "PERFORMANCE_METRICS_ENABLED"
"""``true``/``false`` (also 1/0, yes/no, on/off). Default ``true``. ``false`` turns every record
call into a near-free no-op and starts no server and no export."""

METRICS_WINDOW_SIZE: Final = "METRICS_WINDOW_SIZE"
"""Integer >= 1. Default ``1000``. Calls covered by the latency window of each tool/provider."""

METRICS_JSON_ENDPOINT_ENABLED: Final = "METRICS_JSON_ENDPOINT_ENABLED"
"""Boolean. Default ``true``. Serve the HTTP endpoint (``/metrics``, ``/health``)."""

METRICS_JSON_ENABLED: Final = "METRICS_JSON_ENABLED"
"""Alias of ``METRICS_JSON_ENDPOINT_ENABLED`` (the origin script's name); the latter wins."""

METRICS_JSON_HOST: Final = "METRICS_JSON_HOST"
"""Bind address. Default ``127.0.0.1``. Anything wider is an explicit choice."""

METRICS_JSON_PORT: Final = "METRICS_JSON_PORT"
"""Integer 0-65535. Default ``9109``. ``0`` lets the OS pick a free port."""

METRICS_CORS_ORIGINS: Final = "METRICS_CORS_ORIGINS"
"""Comma-separated list of web origins whose pages may read the endpoint (CORS), matched
exactly. Unset: pages on this machine only (``http(s)://localhost``, ``127.0.0.1`` or
``[::1]``, any port). ``*`` lets any web page read it (logged as a warning)."""

METRICS_ALLOWED_HOSTS: Final = "METRICS_ALLOWED_HOSTS"
"""Comma-separated host names the endpoint answers to besides ``localhost``, ``127.0.0.1``,
``[::1]`` and the bind address (``METRICS_JSON_HOST``); a request naming another host in its
``Host`` header gets 421 (this is what stops DNS rebinding). Default empty."""

METRICS_AUTH_TOKEN: Final = "METRICS_AUTH_TOKEN"
"""Unset by default. When set, every path but ``/health`` needs
``Authorization: Bearer <token>``. Printable ASCII without spaces; an invalid token keeps the
endpoint off (fail closed) and is never written to the log."""

METRICS_MAX_TOOLS: Final = "METRICS_MAX_TOOLS"
"""Integer >= 1. Default ``500``. Distinct tool names kept; later ones fold into ``_OTHER``."""

METRICS_MAX_PROVIDERS: Final = "METRICS_MAX_PROVIDERS"
"""Integer >= 1. Default ``100``. Distinct provider names kept; later ones fold into ``_OTHER``."""

METRICS_MAX_MODELS: Final = "METRICS_MAX_MODELS"
"""Integer >= 1. Default ``200``. Distinct (provider, model) pairs kept; a provider's later models
fold into ``_OTHER`` (the document has an entry per pair, so this bounds it)."""

METRICS_MAX_CACHES: Final = "METRICS_MAX_CACHES"
"""Integer >= 1. Default ``100``. Distinct cache names kept; later ones fold into ``_OTHER``."""

METRICS_MAX_ERROR_TYPES: Final = "METRICS_MAX_ERROR_TYPES"
"""Integer >= 1. Default ``50``. Distinct error types kept (process-wide); later ones fold
into ``_OTHER``."""

METRICS_HISTOGRAM_BUCKETS: Final = "METRICS_HISTOGRAM_BUCKETS"
"""Integer 20-2048. Default ``160``. Buckets of each duration histogram series. More buckets
mean finer percentiles where few calls are counted (p99 of a 1,000-call window: about 2.4 %
error at 160, about 1 % at 640) for more memory and collection time per series."""

METRICS_USE_GLOBAL_METER_PROVIDER: Final = "METRICS_USE_GLOBAL_METER_PROVIDER"
"""Boolean. Default ``true``. When the application has already set an OpenTelemetry SDK
``MeterProvider`` as the global one (its own setup, ``opentelemetry-instrument``, logfire, ...),
otel-perf records through it, so the application's exporters carry otel-perf's metrics.
``false`` makes otel-perf build its own provider regardless."""

OTEL_PERF_GROUP: Final = "OTEL_PERF_GROUP"
"""Which processes are one server (see otel_perf._multiprocess.group): a name (letters, digits,
``.``, ``_``, ``-``, at most 64), ``off`` for none, or unset: derived from the parent process
and the command line when the endpoint joins its group, then written into ``os.environ`` for
the processes this one starts (and carried in the running instance's settings, so the next
``configure()`` does not take that write for a change)."""

XDG_RUNTIME_DIR: Final = "XDG_RUNTIME_DIR"
"""The user's runtime directory (set by the login session on Linux). Each running endpoint
leaves a small entry under ``$XDG_RUNTIME_DIR/otel-perf-<uid>/endpoints`` (without it, the same
under the temporary directory) so ``otel-perf top`` / ``snapshot`` can find it without a URL,
and the processes of one server share their numbers under ``otel-perf-<uid>/<group>-<port>``.
Used when it is an existing absolute directory, else the temporary directory is."""

OTEL_SERVICE_NAME: Final = SERVICE_NAME_ENV
"""The OTel spec's service name, ``service.name`` of the resource (over the one in
``OTEL_RESOURCE_ATTRIBUTES``). ``otel-perf run`` sets it to the program's name when neither it
nor ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` is set."""

OTEL_RESOURCE_ATTRIBUTES: Final = RESOURCE_ATTRIBUTES_ENV
"""The OTel spec's resource attributes: ``key=value`` pairs separated by commas, values
percent-decoded, read as the OTel SDK reads them.

The resource is built from these two settings (otel_perf._pipeline.build_resource) once per
configuration. The SDK's own detectors still run when it is built (``service.instance.id``,
``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS``); its environment detector reads the same two variables
at that moment, and the values compared by ``configure()`` win over it."""

OTEL_PERF_LOG_LEVEL: Final = LOG_LEVEL_ENV
"""A launcher's instruction: a logging level name (``DEBUG``, ``INFO``, ``WARNING``, ...).
Unset by default. Set by ``otel-perf run --log-level``: the started program then writes
otel-perf's own messages of that level and above to stderr (never stdout, which a stdio
server's protocol uses)."""

OTEL_PERF_URL_FILE: Final = URL_FILE_ENV
"""A launcher's instruction: set by ``otel-perf run --url-file``, the file the started program
writes its endpoint's base URL to once it serves.

The launcher's variables are defined in the leaf module otel_perf._integrations.bootstrap_paths,
which ``otel-perf run`` loads on a stdio server's path to its first handshake; they are listed
here with the others."""

OTEL_SDK_DISABLED: Final = "OTEL_SDK_DISABLED"
"""The OTel spec's master switch: ``true`` disables otel-perf like
``PERFORMANCE_METRICS_ENABLED=false`` (the SDK would otherwise hand out no-op meters)."""

OTEL_METRICS_EXEMPLAR_FILTER: Final = "OTEL_METRICS_EXEMPLAR_FILTER"
"""``trace_based`` (default), ``always_on`` or ``always_off``, case and surrounding spaces
ignored; empty means unset. Which measurements the SDK keeps exemplars of."""

EXEMPLAR_FILTERS: Final = ("always_on", "always_off", "trace_based")

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_MAX_WINDOW: Final = 10_000_000
_MAX_CAP: Final = 100_000
_MIN_BUCKETS: Final = 20
_MAX_BUCKETS: Final = 2048


@dataclass(frozen=True)
class Settings:
    """Everything otel-perf is configured by. Build it with :func:`load_settings`."""

    enabled: bool = True
    window_size: int = 1000
    json_enabled: bool = True
    json_host: str = "127.0.0.1"
    json_port: int = 9109
    #: ``()``: local pages only (see METRICS_CORS_ORIGINS).
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    auth_token: str | None = None
    max_tools: int = 500
    max_providers: int = 100
    max_models: int = 200
    max_caches: int = 100
    max_error_types: int = 50
    histogram_buckets: int = 160
    #: Record through the application's global SDK MeterProvider when it has set one.
    use_global_meter_provider: bool = True
    #: ``OTEL_METRICS_EXEMPLAR_FILTER``, one of :data:`EXEMPLAR_FILTERS`.
    exemplar_filter: str = "trace_based"
    #: Push export (OTLP, console) from the standard ``OTEL_*`` variables; see _export.settings.
    export: ExportSettings = dataclasses.field(default_factory=ExportSettings)
    #: ``OTEL_PERF_GROUP`` as set (``None``: unset), or the group this process derived and
    #: wrote into the environment (see :data:`OTEL_PERF_GROUP`).
    group: str | None = None
    #: ``XDG_RUNTIME_DIR`` as set (``None``: unset); whether it is usable is decided on use.
    runtime_dir: str | None = None
    #: ``OTEL_SERVICE_NAME`` (``None``: unset).
    service_name: str | None = None
    #: ``OTEL_RESOURCE_ATTRIBUTES`` as (key, value) pairs, in order.
    resource_attributes: tuple[tuple[str, str], ...] = ()


def parse_bool(raw: str) -> bool:
    """Parse a boolean environment value; raise ``ValueError`` for anything else."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected true/false")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        text = raw.strip()
        # ASCII digits only: int() would also take "1_000", "+5" and other scripts' digits.
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"expected a whole number in {low}..{high}")
        value = int(text[:20])
        if len(text) > 20 or not low <= value <= high:
            raise ValueError(f"outside {low}..{high}")
        return value

    return parse


def _host(raw: str) -> str:
    value = raw.strip()
    if not value or any(ch.isspace() for ch in value) or len(value) > 253:
        raise ValueError("not a host name or address")
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        ipaddress.ip_address(value)
    except ValueError:
        # A host name: letters, digits, dots and dashes only.
        if not all(ch.isalnum() or ch in ".-" for ch in value) or not value.isascii():
            raise ValueError("not a host name or address") from None
    return value


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not origins:
        raise ValueError("empty origin list")
    for origin in origins:
        if origin != "*" and not origin.isascii():
            raise ValueError(f"origin is not ASCII: {origin[:80]!r}")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in origin):
            raise ValueError(f"bad origin {origin[:80]!r}")
    return origins


def _host_names(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise ValueError("empty host list")
    for name in names:
        _host(name)
    return names


def _token(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not value.isascii() or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        raise ValueError("token must be printable ASCII without spaces")
    return value


_window = _int_in(1, _MAX_WINDOW)
_port = _int_in(0, 65535)
_cap = _int_in(1, _MAX_CAP)
_buckets = _int_in(_MIN_BUCKETS, _MAX_BUCKETS)

# field name -> (environment variable(s), parser). The first variable set wins.
_ENV_FIELDS: Final[dict[str, tuple[tuple[str, ...], Callable[[str], Any]]]] = {
    "enabled": ((PERFORMANCE_METRICS_ENABLED,), parse_bool),
    "window_size": ((METRICS_WINDOW_SIZE,), _window),
    "json_enabled": ((METRICS_JSON_ENDPOINT_ENABLED, METRICS_JSON_ENABLED), parse_bool),
    "json_host": ((METRICS_JSON_HOST,), _host),
    "json_port": ((METRICS_JSON_PORT,), _port),
    "cors_origins": ((METRICS_CORS_ORIGINS,), _origins),
    "allowed_hosts": ((METRICS_ALLOWED_HOSTS,), _host_names),
    "auth_token": ((METRICS_AUTH_TOKEN,), _token),
    "max_tools": ((METRICS_MAX_TOOLS,), _cap),
    "max_providers": ((METRICS_MAX_PROVIDERS,), _cap),
    "max_models": ((METRICS_MAX_MODELS,), _cap),
    "max_caches": ((METRICS_MAX_CACHES,), _cap),
    "max_error_types": ((METRICS_MAX_ERROR_TYPES,), _cap),
    "histogram_buckets": ((METRICS_HISTOGRAM_BUCKETS,), _buckets),
    "use_global_meter_provider": ((METRICS_USE_GLOBAL_METER_PROVIDER,), parse_bool),
}

# Validators for keyword overrides: same rules, but typed values instead of strings.
_OVERRIDE_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "enabled": lambda v: isinstance(v, bool),
    "window_size": lambda v: _is_int(v) and 1 <= v <= _MAX_WINDOW,
    "json_enabled": lambda v: isinstance(v, bool),
    "json_host": lambda v: isinstance(v, str) and _valid(_host, v),
    "json_port": lambda v: _is_int(v) and 0 <= v <= 65535,
    "cors_origins": lambda v: (
        isinstance(v, (tuple, list))
        and bool(v)
        and all(isinstance(o, str) for o in v)
        and _valid(_origins, ",".join(v))
    ),
    "allowed_hosts": lambda v: (
        isinstance(v, (tuple, list))
        and all(isinstance(h, str) for h in v)
        and (not v or _valid(_host_names, ",".join(v)))
    ),
    "auth_token": lambda v: v is None or (isinstance(v, str) and _valid(_token, v)),
    "max_tools": lambda v: _is_int(v) and 1 <= v <= _MAX_CAP,
    "max_providers": lambda v: _is_int(v) and 1 <= v <= _MAX_CAP,
    "max_models": lambda v: _is_int(v) and 1 <= v <= _MAX_CAP,
    "max_caches": lambda v: _is_int(v) and 1 <= v <= _MAX_CAP,
    "max_error_types": lambda v: _is_int(v) and 1 <= v <= _MAX_CAP,
    "histogram_buckets": lambda v: _is_int(v) and _MIN_BUCKETS <= v <= _MAX_BUCKETS,
    "use_global_meter_provider": lambda v: isinstance(v, bool),
    "exemplar_filter": lambda v: v in EXEMPLAR_FILTERS,
    "export": lambda v: isinstance(v, ExportSettings),
}


def _text(raw: str | None) -> str | None:
    """A free-text variable: ``None`` when unset or blank (as the OTel spec reads empty)."""
    return raw.strip() if raw is not None and raw.strip() else None


def log_level(environ: Mapping[str, str]) -> int | None:
    """``OTEL_PERF_LOG_LEVEL`` as a ``logging`` level number; ``None`` if unset or unknown."""
    raw = environ.get(OTEL_PERF_LOG_LEVEL, "").strip().upper()
    value = logging.getLevelName(raw) if raw else None
    return value if isinstance(value, int) else None


def url_file(environ: Mapping[str, str]) -> str | None:
    """``OTEL_PERF_URL_FILE``: where the bootstrapped program writes its endpoint's URL."""
    return _text(environ.get(OTEL_PERF_URL_FILE))


def runtime_dir(environ: Mapping[str, str]) -> str | None:
    """``XDG_RUNTIME_DIR``, for :attr:`Settings.runtime_dir` and ``otel-perf top``."""
    return _text(environ.get(XDG_RUNTIME_DIR))


def client_token(environ: Mapping[str, str]) -> str | None:
    """``METRICS_AUTH_TOKEN`` as ``otel-perf top``/``snapshot`` send it when no ``--token`` is
    given: the endpoint's own token, which the server side checks through :func:`load_settings`."""
    return _text(environ.get(METRICS_AUTH_TOKEN))


def resource_attributes(raw: str | None) -> tuple[tuple[str, str], ...]:
    """``OTEL_RESOURCE_ATTRIBUTES`` as the OTel SDK reads it: comma-separated ``key=value``
    items, keys and values stripped, values percent-decoded.

    An item without ``=`` is left out without a word here: the SDK's own environment detector,
    which runs when the resource is built, logs each one, and one warning is enough.
    """
    pairs = []
    for item in (raw or "").split(","):
        key, equals, value = item.partition("=")
        if equals:
            pairs.append((key.strip(), unquote(value.strip())))
    return tuple(pairs)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid(parse: Callable[[str], object], value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def load_settings(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> tuple[Settings, list[str]]:
    """Build :class:`Settings` from ``environ`` and keyword ``overrides``.

    Returns the settings and the warnings to log (one per bad variable). Pure: it reads only its
    arguments. Overrides win over the environment; an unknown or invalid override raises.

    >>> load_settings({"METRICS_WINDOW_SIZE": "abc"})[1][0][:40]
    "METRICS_WINDOW_SIZE='abc' is invalid (in"
    """
    defaults = Settings()
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for field, (names, parse) in _ENV_FIELDS.items():
        for name in names:
            raw = environ.get(name)
            if raw is None:
                continue
            try:
                values[field] = parse(raw)
            except ValueError as exc:
                if field == "auth_token":
                    # Fail closed, and never echo a secret into the logs: serving without the
                    # token the user meant to set would expose what they meant to protect.
                    values["json_enabled"] = False
                    warnings.append(
                        f"{name} is invalid ({exc}); the metrics endpoint stays off rather than "
                        "serve without it (recording continues)"
                    )
                else:
                    default = getattr(defaults, field)
                    warnings.append(
                        f"{name}={shorten(raw)!r} is invalid ({exc}); using the default {default!r}"
                    )
            break  # the first variable that is set decides, valid or not

    sdk_disabled = environ.get(OTEL_SDK_DISABLED)
    if sdk_disabled is not None and sdk_disabled.strip():  # empty means unset (OTel spec)
        try:
            if parse_bool(sdk_disabled):
                values["enabled"] = False
        except ValueError:
            warnings.append(
                f"{OTEL_SDK_DISABLED}={shorten(sdk_disabled)!r} is invalid; using the default False"
            )

    exemplar = environ.get(OTEL_METRICS_EXEMPLAR_FILTER, "")
    if exemplar.strip():  # empty means unset (OTel spec)
        # The SDK accepts only the exact lower-case names and raises for anything else, which
        # would fail the host's first record call; here case and spaces do not matter.
        chosen = exemplar.strip().lower()
        if chosen in EXEMPLAR_FILTERS:
            values["exemplar_filter"] = chosen
        else:
            warnings.append(
                f"{OTEL_METRICS_EXEMPLAR_FILTER}={shorten(exemplar)!r} is invalid; "
                f"using the default {defaults.exemplar_filter!r}"
            )

    values["export"], export_warnings = load_export_settings(environ)
    warnings.extend(export_warnings)

    # Free text, checked where it is used (the group by otel_perf._multiprocess.group, the
    # runtime directory on use, the resource by the SDK); empty means unset.
    values["group"] = _text(environ.get(OTEL_PERF_GROUP))
    values["runtime_dir"] = runtime_dir(environ)
    values["service_name"] = _text(environ.get(OTEL_SERVICE_NAME))
    values["resource_attributes"] = resource_attributes(environ.get(OTEL_RESOURCE_ATTRIBUTES))

    for field, value in (overrides or {}).items():
        check = _OVERRIDE_CHECKS.get(field)
        if check is None:
            known = ", ".join(sorted(_OVERRIDE_CHECKS))
            raise TypeError(f"configure() got an unknown setting {field!r}; known: {known}")
        if not check(value):
            # Never echo a token: the message may reach a log or a crash report.
            shown = "<hidden>" if field == "auth_token" else shorten(repr(value))
            raise ValueError(f"configure({field}={shown}): invalid value")
        values[field] = tuple(value) if field in ("cors_origins", "allowed_hosts") else value

    return dataclasses.replace(defaults, **values), warnings
