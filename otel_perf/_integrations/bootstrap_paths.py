"""Where ``otel-perf run`` finds its bootstrap, and how it passes ``--url-file``, the log level
and the service name on.

A leaf module (``os`` only): the launcher imports it on the path to a stdio server's first
handshake, so it must not pull in the instrumentation itself.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: see otel_perf._cli.main
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

#: Environment variable naming a file the bootstrap writes the endpoint's base URL to
#: (set by ``otel-perf run --url-file``); useful with ``METRICS_JSON_PORT=0``.
URL_FILE_ENV: Final = "OTEL_PERF_URL_FILE"

#: Set in the environment by the bootstrap: a process that inherits it descends from the
#: program ``otel-perf run`` started, and configures on first use instead of at startup.
BOOTSTRAPPED_ENV: Final = "OTEL_PERF_BOOTSTRAPPED"

#: The directory holding the ``sitecustomize`` that ``otel-perf run`` puts on ``PYTHONPATH``.
BOOTSTRAP_DIR: Final = os.path.join(os.path.dirname(os.path.realpath(__file__)), "bootstrap")

#: Environment variable carrying ``otel-perf run --log-level`` to the program (documented with
#: the others in otel_perf._settings).
LOG_LEVEL_ENV: Final = "OTEL_PERF_LOG_LEVEL"

#: The OTel spec's service name and resource attributes (read by the SDK's Resource.create).
SERVICE_NAME_ENV: Final = "OTEL_SERVICE_NAME"
RESOURCE_ATTRIBUTES_ENV: Final = "OTEL_RESOURCE_ATTRIBUTES"

#: ``logging``'s level names, so the launcher can check one without importing logging.
LEVEL_NAMES: Final = frozenset(
    {"CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"}
)


def has_service_name(environ: Mapping[str, str]) -> bool:
    """Whether the environment names the service (``OTEL_SERVICE_NAME`` or the resource)."""
    if environ.get(SERVICE_NAME_ENV, "").strip():
        return True
    attributes = environ.get(RESOURCE_ATTRIBUTES_ENV, "")
    return any(part.split("=", 1)[0].strip() == "service.name" for part in attributes.split(","))
