"""Small helpers shared by the tests (real HTTP, real SDK; no mocks of OTel)."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit


def http_request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, path: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(
            method, path if path is not None else (parts.path or "/"), headers=headers or {}
        )
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def get_json(url: str, path: str = "/metrics") -> Any:
    status, _, body = http_request(url, path=path)
    assert status == 200, (status, body)
    return json.loads(body)


@contextlib.contextmanager
def global_meter_provider(provider: object) -> Iterator[None]:
    """Make ``provider`` the OTel API's global MeterProvider for the block, then undo it.

    The API sets the global provider once per process, so tests swap its module global
    directly, as opentelemetry-test-utils' ``reset_metrics_globals`` does (without binding the
    API's proxy provider, which could not be unbound again).
    """
    from opentelemetry.metrics import _internal as api_metrics

    saved = api_metrics._METER_PROVIDER
    api_metrics._METER_PROVIDER = provider  # type: ignore[assignment]
    try:
        yield
    finally:
        api_metrics._METER_PROVIDER = saved


#: Commands some tests run -> the Debian package providing them (as dev.py's SYSTEM_PACKAGES).
SYSTEM_COMMANDS = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "chromium": "chromium",
    "valgrind": "valgrind",
    "callgrind_control": "valgrind",
}


def require_command(command: str) -> str:
    """The path of ``command``; fails the test saying what to install when it is missing."""
    import shutil

    import pytest

    found = shutil.which(command)
    if found is None:
        package = SYSTEM_COMMANDS.get(command, command)
        pytest.fail(
            f"{command} is not installed: this test needs the Debian package {package} "
            f"(sudo apt-get install --no-install-recommends {package}; `python3 dev.py test` "
            "installs it when run as root)",
            pytrace=False,
        )
    return found


def table_row(text: str, name: str) -> list[str]:
    """The cells of the row of a terminal view's table that starts with ``name`` (the cells of
    ``otel_perf._cli.view`` tables are two or more spaces apart)."""
    line = next((line for line in text.splitlines() if line.strip().startswith(name + " ")), None)
    assert line is not None, f"no row {name!r} in:\n{text}"
    return re.split(r"\s{2,}", line.strip())
