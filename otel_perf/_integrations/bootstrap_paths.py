"""Where ``otel-perf run`` finds its bootstrap, and how it passes ``--url-file`` on.

A leaf module (``os`` only): the launcher imports it on the path to a stdio server's first
handshake, so it must not pull in the instrumentation itself.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: see otel_perf._cli.main
if TYPE_CHECKING:
    from typing import Final

#: Environment variable naming a file the bootstrap writes the endpoint's base URL to
#: (set by ``otel-perf run --url-file``); useful with ``METRICS_JSON_PORT=0``.
URL_FILE_ENV: Final = "OTEL_PERF_URL_FILE"

#: Set in the environment by the bootstrap: a process that inherits it descends from the
#: program ``otel-perf run`` started, and configures on first use instead of at startup.
BOOTSTRAPPED_ENV: Final = "OTEL_PERF_BOOTSTRAPPED"

#: The directory holding the ``sitecustomize`` that ``otel-perf run`` puts on ``PYTHONPATH``.
BOOTSTRAP_DIR: Final = os.path.join(os.path.dirname(os.path.realpath(__file__)), "bootstrap")
