"""Access control under attack: the bearer token, the exposure warning, the CORS allow-list."""

from __future__ import annotations

import base64
import hmac
import json
import logging

import pytest

import otel_perf
from otel_perf import _configure
from otel_perf._http import dashboard as _dashboard
from otel_perf._http.routes import routes_for
from otel_perf._http.server import exposure_warning, is_loopback_host
from tests.support.helpers import http_request

TOKEN = "s3cret-T0ken_with.chars~"
SECRET_TOOL = "tool-only-the-token-holder-may-see"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.5", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("[::]", False),
        ("10.0.0.1", False),
        ("192.168.1.20", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1", False),
        ("2001:db8::1", False),
        ("metrics.example.com", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "metrics.example.com"])
def test_exposure_warning_for_wide_binds_without_a_token(host: str) -> None:
    warning = exposure_warning(host, None)
    assert warning is not None
    assert host in warning
    assert "WARNING" in warning
    assert "METRICS_AUTH_TOKEN" in warning
    assert exposure_warning(host, "") is not None  # an empty token is no token
    assert exposure_warning(host, TOKEN) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "localhost"])
def test_no_exposure_warning_on_loopback(host: str) -> None:
    assert exposure_warning(host, None) is None


def test_another_loopback_address_serves_without_the_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        metrics = otel_perf.configure(json_host="127.0.0.2")
    assert metrics.url is not None
    assert metrics.url.startswith("http://127.0.0.2:")
    assert http_request(metrics.url, path="/health")[0] == 200
    assert not [r for r in caplog.records if "beyond this machine" in r.getMessage()]


# --- the bearer token ------------------------------------------------------------------------


@pytest.fixture
def protected(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("METRICS_AUTH_TOKEN", TOKEN)
    otel_perf.record_tool_call(SECRET_TOOL, True, 5.0)
    url = otel_perf.configure().url
    assert url is not None
    return url


BAD_CREDENTIALS = [
    None,
    "",
    "Bearer",
    "Bearer ",
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN.upper()}",
    f"Basic {TOKEN}",
    f"Token {TOKEN}",
    TOKEN,
    f"Bearer{TOKEN}",
    f"Bearer {TOKEN[:4]}\u00e9\u00e8",
    "Bearer " + "A" * 10_000,
]


def _data_paths() -> list[str]:
    """Every route but /health, plus paths that do not exist."""
    routes = routes_for(_configure.get_runtime())
    return [*sorted(set(routes) - {"/health"}), "/nope", "/metrics/../health", "/admin"]


def test_every_path_but_health_needs_the_token(protected: str) -> None:
    paths = _data_paths()
    assert {"/metrics", "/metrics/prometheus", "/metrics/history", "/"} <= set(paths)
    for path in paths:
        for credentials in BAD_CREDENTIALS:
            headers = {} if credentials is None else {"Authorization": credentials}
            for method in ("GET", "HEAD", "POST"):
                status, response_headers, body = http_request(protected, method, headers, path)
                assert status == 401, (path, credentials, method, status)
                # Pages challenge with Basic (so a browser asks), data paths with Bearer.
                scheme = "Basic" if path in _dashboard.PAGE_PATHS else "Bearer"
                assert response_headers["www-authenticate"].startswith(scheme)
                if method != "HEAD":
                    assert json.loads(body) == {"error": "unauthorized", "status": 401}
                assert SECRET_TOOL.encode() not in body
    good = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = http_request(protected, "GET", good, "/metrics")
    assert status == 200
    assert SECRET_TOOL in json.loads(body)["tool_metrics"]
    assert http_request(protected, "GET", good, "/metrics/prometheus")[0] == 200
    assert http_request(protected, "GET", good, "/nope")[0] == 404  # 404 only with the token
    # /health answers everyone, and says nothing about the data.
    status, _, body = http_request(protected, path="/health")
    assert status == 200
    assert SECRET_TOOL.encode() not in body


def test_dashboard_files_take_the_token_as_a_basic_password(protected: str) -> None:
    """A browser cannot put a bearer token on a page navigation; it can send HTTP Basic
    credentials, so the token is also accepted as their password (any user name)."""
    good = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    bad = base64.b64encode(b"anyone:wrong").decode()
    no_colon = base64.b64encode(TOKEN.encode()).decode()
    for path in sorted(_dashboard.PAGE_PATHS):
        status, headers, body = http_request(protected, path=path)
        assert status == 401
        assert headers["www-authenticate"].startswith("Basic")
        for credentials in (f"Basic {bad}", f"Basic {no_colon}", "Basic !!notbase64!!"):
            assert (
                http_request(protected, path=path, headers={"Authorization": credentials})[0] == 401
            ), credentials
        status, _, body = http_request(
            protected, path=path, headers={"Authorization": f"Basic {good}"}
        )
        assert status == 200
        assert body == _dashboard.asset(_dashboard.ASSETS[path][0])  # a fixed file, no data
    status, _, body = http_request(
        protected, path="/metrics", headers={"Authorization": f"Basic {good}"}
    )
    assert status == 200
    assert SECRET_TOOL in json.loads(body)["tool_metrics"]


def test_the_token_is_compared_with_hmac_compare_digest(
    protected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert (
        http_request(protected, path="/metrics", headers={"Authorization": "Bearer nope"})[0] == 401
    )
    assert (
        http_request(protected, path="/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0]
        == 200
    )
    assert compared == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]
    # A wrong scheme is compared too, so its timing is that of any other wrong guess.
    http_request(protected, path="/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert len(compared) == 3


def test_preflight_needs_no_token(protected: str) -> None:
    status, _, body = http_request(
        protected,
        "OPTIONS",
        {"Origin": "https://x.example", "Access-Control-Request-Method": "GET"},
        "/metrics",
    )
    assert status == 204
    assert body == b""


# --- CORS -------------------------------------------------------------------------------------

ALLOWED = "https://ok.example"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://OK.example",
        "https://ok.example/",
        "https://ok.example.evil.example",
        "http://ok.example",
        "https://ok.example:443",
        "null",
        "",
        f"https://evil.example, {ALLOWED}",
        f"{ALLOWED} https://evil.example",
        "*",
    ],
)
def test_an_origin_not_on_the_list_gets_no_cors_headers(
    monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    monkeypatch.setenv("METRICS_CORS_ORIGINS", f"{ALLOWED},https://also.example")
    url = otel_perf.configure().url
    assert url is not None
    for method, path in (("GET", "/metrics"), ("OPTIONS", "/metrics"), ("GET", "/nope")):
        _, headers, _ = http_request(url, method, {"Origin": origin}, path)
        assert not [name for name in headers if name.startswith("access-control-")], (
            origin,
            method,
            headers,
        )
    _, headers, _ = http_request(url, "GET", {"Origin": ALLOWED}, "/metrics")
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["vary"] == "Origin"
    _, headers, _ = http_request(url, "OPTIONS", {"Origin": ALLOWED}, "/metrics")
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
