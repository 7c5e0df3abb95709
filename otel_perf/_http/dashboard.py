"""The built-in dashboard: the page on ``GET /`` and its script, style sheet and icon.

The files live in ``otel_perf/_http/static/`` (package data, shipped in the wheel) and are served by
the metrics endpoint itself, so the page makes no request to any other origin. The page polls
``./metrics`` and ``./metrics/history`` with relative URLs, so it works on any host, port or
path prefix.

With ``METRICS_AUTH_TOKEN`` set, every path but ``/health`` needs the token, these files
included. A browser cannot add a bearer header to a page navigation, so the endpoint also takes
the token as the password of HTTP Basic authentication (any user name) and answers these paths
with a Basic challenge: the browser asks once, then sends it with the page's own requests too.
If the data requests are refused anyway (say, the token changed while the page was open), the
page asks for the token, keeps it in the tab's ``sessionStorage`` and sends it as
``Authorization: Bearer``. The responses carry a
Content-Security-Policy that allows scripts, styles, images and fetches from this origin only
and no framing, so even a bug that put a hostile tool name into markup could not run it.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

from otel_perf._http.server import Request, Response, Route

_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = (
    ("Content-Security-Policy", _CSP),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)

#: URL path -> (file in otel_perf/_http/static, content type).
ASSETS: Final = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}

#: Paths a browser opens itself: with a token set they answer 401 with a Basic challenge.
PAGE_PATHS: Final = frozenset(ASSETS)


@functools.cache
def asset(filename: str) -> bytes:
    """The bytes of one file of ``otel_perf/_http/static`` (read once, then cached)."""
    return resources.files("otel_perf._http").joinpath("static").joinpath(filename).read_bytes()


def _route(filename: str, content_type: str) -> Route:
    def serve(_request: Request) -> Response:
        return Response(200, asset(filename), content_type, _HEADERS)

    return serve


def routes() -> dict[str, Route]:
    """The dashboard's routes, to merge into the endpoint's."""
    return {path: _route(filename, ctype) for path, (filename, ctype) in ASSETS.items()}
