"""The dashboard's files over HTTP: content types, a same-origin-only policy, token rules, and
that the wheel ships them."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import otel_perf
from otel_perf._http.dashboard import ASSETS, PAGE_PATHS, asset
from tests.support.helpers import http_request

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("path", "spec"), sorted(ASSETS.items()))
def test_each_file_is_served_with_its_type_and_policy(path: str, spec: tuple[str, str]) -> None:
    filename, content_type = spec
    metrics = otel_perf.configure(json_port=0)
    assert metrics.url is not None
    status, headers, body = http_request(metrics.url, path=path)
    assert status == 200
    assert headers["content-type"] == content_type
    assert (
        body == asset(filename) == (ROOT / "otel_perf" / "_http" / "static" / filename).read_bytes()
    )
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp
    for directive in ("script-src", "style-src", "img-src", "connect-src"):
        assert f"{directive} 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY"
    status, headers, body = http_request(metrics.url, method="HEAD", path=path)
    assert status == 200
    assert body == b""


def test_page_and_assets_reference_only_their_own_origin() -> None:
    html = asset("dashboard.html").decode()
    script = asset("dashboard.js").decode()
    style = asset("dashboard.css").decode()
    # Every src/href in the page is relative (no scheme, no //host).
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert links
    for link in links:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:|//)", link, re.IGNORECASE), link
    # The script fetches relative URLs only; its one absolute URL is the SVG namespace name.
    assert re.findall(r"https?://[^\s\"']+", script) == ["http://www.w3.org/2000/svg"]
    assert 'getJSON("metrics")' in script
    assert "http" not in style
    assert "@import" not in style
    assert "url(" not in style
    # Data reaches the page as text only.
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script


def test_with_a_token_the_page_and_the_data_need_it() -> None:
    metrics = otel_perf.configure(json_port=0, auth_token="tok-123")
    assert metrics.url is not None
    basic = "Basic " + base64.b64encode(b"me:tok-123").decode()
    for path in PAGE_PATHS:
        status, headers, _ = http_request(metrics.url, path=path)
        assert status == 401, path
        assert headers["www-authenticate"].startswith("Basic"), path
        assert http_request(metrics.url, path=path, headers={"Authorization": basic})[0] == 200
    for path in ("/metrics", "/metrics/history"):
        status, headers, _ = http_request(metrics.url, path=path)
        assert status == 401, path
        assert headers["www-authenticate"].startswith("Bearer"), path
        for credentials in ("Bearer tok-123", basic):
            status, _, _ = http_request(
                metrics.url, path=path, headers={"Authorization": credentials}
            )
            assert status == 200, (path, credentials)


def test_the_wheel_ships_the_dashboard(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("otel_perf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for filename, _ in ASSETS.values():
            member = f"otel_perf/_http/static/{filename}"
            assert member in names
            assert archive.read(member) == asset(filename)
