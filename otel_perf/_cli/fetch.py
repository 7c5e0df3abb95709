"""Reading a running otel-perf endpoint over HTTP, for the terminal commands.

Standard library only (``urllib``), so ``otel-perf snapshot --format json`` works without any
extra installed. Every failure becomes one :class:`FetchError` whose message is meant to be
shown to a person as is: no tracebacks for an unreachable or wrong URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from otel_perf._sanitize import clean_text
from otel_perf._version import __version__

DEFAULT_URL: Final = "http://127.0.0.1:9109/metrics"
MAX_BODY_BYTES: Final = 64 * 1024 * 1024  # far above any real document; stops a runaway body
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})


class FetchError(Exception):
    """The endpoint could not be read; ``str()`` is a complete, human-readable message."""


def metrics_url(url: str | None) -> str:
    """The JSON document's URL from what a user typed.

    Accepts a base URL (``http://host:9109``, with or without a path prefix), a ``/metrics``
    URL, or a bare ``host:port``.

    >>> metrics_url("localhost:9109")
    'http://localhost:9109/metrics'
    >>> metrics_url("https://example.org/otel/metrics/")
    'https://example.org/otel/metrics'
    """
    if url is None or not url.strip():
        return DEFAULT_URL
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise FetchError(f"not a valid URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/metrics"):
        path += "/metrics"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def history_url(document_url: str) -> str:
    """The trend ring's URL next to a ``.../metrics`` URL."""
    return document_url + "/history"


def looks_like_document(value: object) -> bool:
    """Whether ``value`` has the shape of otel-perf's ``/metrics`` document."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("enabled"), bool)
        and isinstance(value.get("tool_metrics"), dict)
        and isinstance(value.get("cache_metrics"), dict)
        and isinstance(value.get("system_metrics"), dict)
    )


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, parts.port or default


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but send ``Authorization`` only back to the origin it was meant for."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            # urllib copies every header to the new request: the token would go to whatever
            # host the redirect names.
            for name in list(new.headers):
                if name.lower() == "authorization":
                    del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def _opener(url: str) -> urllib.request.OpenerDirector:
    redirects = _SameOriginCredentials()
    # A proxy from the environment would otherwise receive requests for this machine's own
    # endpoint whenever NO_PROXY does not list it.
    if urlsplit(url).hostname in _LOOPBACK:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}), redirects)
    return urllib.request.build_opener(redirects)


def clean(value: Any) -> Any:
    """``value`` (parsed JSON) with every string cleaned for a terminal (see clean_text).

    A look-alike endpoint could otherwise send escape sequences that ``top`` would write to
    the terminal as they are.

    >>> clean({"t\x1b[31m": ["\u202eabc"]})
    {'t?[31m': ['?abc']}
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


def fetch_json(url: str, token: str | None = None, timeout_s: float = 5.0) -> Any:
    """GET ``url`` and parse its JSON body; raise :class:`FetchError` with a clear message."""
    headers = {"Accept": "application/json", "User-Agent": f"otel-perf/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # Only http(s) URLs get here: metrics_url() refuses every other scheme.
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with _opener(url).open(request, timeout=timeout_s) as response:
            body = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            hint = "the token was rejected" if token else "it needs a token"
            raise FetchError(f"{url}: {hint}; pass --token or set METRICS_AUTH_TOKEN") from None
        raise FetchError(
            f"{url} answered HTTP {exc.code}; is this an otel-perf metrics endpoint?"
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "strerror", None) or str(reason)
        raise FetchError(
            f"cannot reach {url} ({text}); is the server running with its endpoint on?"
        ) from None
    except TimeoutError:  # socket.timeout is an alias of it
        raise FetchError(f"{url} did not answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise FetchError(f"cannot read {url} ({exc.strerror or exc})") from None
    if len(body) > MAX_BODY_BYTES:
        raise FetchError(f"{url} sent more than {MAX_BODY_BYTES} bytes; not an otel-perf endpoint")
    try:
        return clean(json.loads(body))
    except (ValueError, RecursionError):
        raise FetchError(
            f"{url} did not answer with JSON; is this an otel-perf endpoint?"
        ) from None


def fetch_document(url: str, token: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
    """The ``/metrics`` document at ``url``, checked for shape."""
    value = fetch_json(url, token, timeout_s)
    if not looks_like_document(value):
        raise FetchError(f"{url} answered, but not with an otel-perf metrics document")
    document: dict[str, Any] = value
    return document
