"""The dashboard in a real headless browser: Debian's Chromium driven by Playwright.

No browser is downloaded: Playwright launches the system ``/usr/bin/chromium`` (``.ci/run``
installs it). The page is served by a real otel-perf endpoint holding recorded data; the tests
compare what the page shows with the JSON document, sort, change the threshold, watch the page
pick up new calls, and check that the console stays clean and that no request leaves the
origin. A screenshot is saved to ``test-artifacts/dashboard.png`` (``docs/dashboard.png`` is a
copy of it).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright
from playwright.sync_api import Error as PlaywrightError

import otel_perf
from otel_perf._http.routes import routes_for
from otel_perf._http.server import MetricsServer
from otel_perf._metrics import Metrics
from otel_perf._settings import Settings
from tests.support.helpers import require_command

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=require_command("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A page plus everything it logged and requested."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", self._on_request)
        page.on("dialog", self._on_dialog)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_same_origin(self, base_url: str) -> None:
        origin = urlsplit(base_url)
        assert self.requests
        for url in self.requests:
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    # A fresh context per test: its own localStorage/sessionStorage, so no state leaks.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield Watched(context.new_page())
    finally:
        context.close()


def _record_workload(metrics: Metrics) -> None:
    """An hour-like trend in a few seconds: real recorded calls, with the history samples laid
    out 5 s apart (``History.sample(now=...)``) instead of waiting for them."""
    rng = random.Random(7)
    tools = {  # name: (median ms, spread, failure rate, relative load)
        "search_docs": (12.0, 0.35, 0.0, 3.0),
        "summarize": (180.0, 0.6, 0.0, 1.0),
        "fetch_url": (45.0, 0.5, 0.08, 1.0),
        "run_query": (25.0, 0.4, 0.0, 1.2),
        "translate": (90.0, 0.3, 0.02, 0.8),
    }
    now = time.time()
    points = 60
    for k in range(points):
        wave = 1.0 + 0.6 * math.sin(k / 8.0)
        for name, (median, spread, failure_rate, load) in tools.items():
            slowdown = 1.8 if name == "summarize" and 35 < k < 45 else 1.0
            for _ in range(int(rng.uniform(5, 15) * wave * load)):
                latency = rng.lognormvariate(math.log(median * slowdown), spread)
                ok = rng.random() >= failure_rate
                error = None if ok else rng.choice(["TimeoutError", "HTTPError"])
                otel_perf.record_tool_call(name, ok, latency, error)
        for _ in range(20):
            if rng.random() < 0.7:
                otel_perf.record_cache_hit("embeddings")
            else:
                otel_perf.record_cache_miss("embeddings")
        if k % 7 == 0:
            otel_perf.record_cache_eviction("embeddings")
        ok = rng.random() > 0.03
        otel_perf.record_provider_call(
            "openai",
            ok,
            rng.lognormvariate(math.log(800.0), 0.4),
            None if ok else "RateLimitError",
            model="gpt-4o-mini" if k % 3 else "gpt-4o",
            input_tokens=300,
            output_tokens=120,
        )
        metrics.history.sample(now=now - (points - 1 - k) * 5.0)
    otel_perf.record_cache_size_rejection("embeddings")
    otel_perf.set_active_sessions(3)
    otel_perf.set_concurrent_requests(2)


_ROWS_JS = """(selector) => [...document.querySelectorAll(selector + " tbody tr")].map((tr) => ({
    name: (tr.querySelector(".tool-name") || tr.cells[0]).textContent,
    cells: [...tr.cells].map((td) => td.textContent),
    classes: [...tr.classList],
    errors: [...tr.querySelectorAll(".err")].map((e) => [
        e.querySelector(".err-type").textContent, e.querySelector(".err-count").textContent]),
}))"""


def _rows(page: Page, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = page.evaluate(_ROWS_JS, table)
    return rows


def _wait_refreshes(page: Page, more_than: int = 0) -> int:
    page.wait_for_function(
        "(n) => Number(document.body.dataset.refreshes || 0) > n", arg=more_than, timeout=30_000
    )
    return int(page.evaluate("Number(document.body.dataset.refreshes)"))


def _document(url: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(url + "/metrics", timeout=10).json()
    return document


def _ms(value: float) -> str:
    return f"{value:.2f}"


def test_page_shows_the_json_sorts_highlights_and_updates(watched: Watched) -> None:
    metrics = otel_perf.configure(json_port=0)
    assert metrics.url is not None
    _record_workload(metrics)
    page = watched.page
    page.goto(metrics.url + "/?refresh=0.5")
    count = _wait_refreshes(page)
    # No calls since the page's last poll, so this poll sees the same windows and numbers.
    document = _document(metrics.url)

    # --- every number on the page is the JSON's ---------------------------------------------
    tools = {row["name"]: row for row in _rows(page, "#tools")}
    assert set(tools) == set(document["tool_metrics"])
    for name, tool in document["tool_metrics"].items():
        cells = tools[name]["cells"]
        assert cells[1:8] == [
            f"{tool['total_calls']:,}",
            f"{tool['failed_calls']:,}",
            f"{tool['success_rate']:.2f}%",
            _ms(tool["p50_latency_ms"]),
            _ms(tool["p95_latency_ms"]),
            _ms(tool["p99_latency_ms"]),
            _ms(tool["max_latency_ms"]),
        ], name
        expected_errors = sorted(tool["error_types"].items(), key=lambda kv: -kv[1])
        assert tools[name]["errors"] == [[t, f"\u00d7 {c:,}"] for t, c in expected_errors]
        assert ("failing" in tools[name]["classes"]) == (tool["failed_calls"] > 0)
    cache = document["cache_metrics"]["embeddings"]
    (cache_row,) = _rows(page, "#caches")
    assert cache_row["cells"] == [
        "embeddings",
        f"{cache['hit_rate']:.2f}%",
        f"{cache['hits']:,}",
        f"{cache['misses']:,}",
        f"{cache['evictions']:,}",
        f"{cache['size_rejections']:,}",
    ]
    assert cache["size_rejections"] == 1
    provider = document["provider_metrics"]["openai"]
    (provider_row,) = _rows(page, "#providers")
    assert provider_row["cells"][:7] == [
        "openai",
        f"{provider['total_calls']:,}",
        f"{provider['success_rate']:.2f}%",
        _ms(provider["p50_latency_ms"]),
        _ms(provider["p95_latency_ms"]),
        _ms(provider["p99_latency_ms"]),
        f"{provider['input_tokens']:,} / {provider['output_tokens']:,}",
    ]
    assert provider["cost_usd"] >= 0.01  # gpt-4o and gpt-4o-mini have catalogue prices
    assert provider_row["cells"][7] == f"${provider['cost_usd']:.2f}"
    for model, entry in provider["models"].items():
        assert model in provider_row["cells"][9]
        assert f"${entry['cost_usd']:.2f}" in provider_row["cells"][9]
    system = document["system_metrics"]
    assert page.text_content("#sessions") == "3"
    assert page.text_content("#concurrent") == "2"
    assert page.text_content("#total-requests") == f"{system['total_requests']:,}"
    assert page.text_content("#tool-count") == "5"

    # --- trends: the overview chart and one pair of sparklines per tool -----------------------
    points = len(metrics.history)
    assert points >= 59
    rate_path = page.get_attribute("#overview-chart path.rate-line", "d")
    assert rate_path is not None
    assert rate_path.count("L") + rate_path.count("M") >= points - 1
    assert page.locator("#tools tbody svg.spark path.rate-line").count() == 5
    assert page.locator("#tools tbody svg.spark path.p95-line").count() == 5

    # --- the p95 threshold: rows above it are flagged -------------------------------------------
    p95s = sorted(t["p95_latency_ms"] for t in document["tool_metrics"].values())
    threshold = (p95s[-1] + p95s[-2]) / 2  # only the slowest tool is above it
    page.fill("#threshold", f"{threshold:.2f}")
    slowest = max(document["tool_metrics"].values(), key=lambda t: t["p95_latency_ms"])
    page.wait_for_function(
        "(name) => [...document.querySelectorAll('#tools tbody tr.slow')]"
        ".map((tr) => tr.dataset.tool).join() === name",
        arg=slowest["tool_name"],
    )
    page.fill("#threshold", "250")
    page.select_option("#refresh", "5")  # what a reader of the screenshot would pick
    count = _wait_refreshes(page, count)
    page.evaluate("document.activeElement.blur()")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.select_option("#refresh", "0.5")

    # --- sorting ----------------------------------------------------------------------------------
    def names() -> list[str]:
        return [row["name"] for row in _rows(page, "#tools")]

    by_p95 = sorted(
        document["tool_metrics"], key=lambda n: -document["tool_metrics"][n]["p95_latency_ms"]
    )
    assert page.get_attribute("th[data-key=p95_latency_ms]", "aria-sort") == "descending"
    assert names() == by_p95
    page.click("th[data-key=total_calls]")
    by_calls = sorted(
        document["tool_metrics"], key=lambda n: -document["tool_metrics"][n]["total_calls"]
    )
    assert names() == by_calls
    assert page.get_attribute("th[data-key=total_calls]", "aria-sort") == "descending"
    assert page.get_attribute("th[data-key=p95_latency_ms]", "aria-sort") is None
    page.click("th[data-key=total_calls]")
    assert names() == by_calls[::-1]
    assert page.get_attribute("th[data-key=total_calls]", "aria-sort") == "ascending"
    page.click("th[data-key=tool_name]")
    assert names() == sorted(document["tool_metrics"])
    count = _wait_refreshes(page, count)
    assert names() == sorted(document["tool_metrics"])  # the order survives a refresh

    # --- new calls appear on the next refresh -----------------------------------------------------
    for _ in range(7):
        otel_perf.record_tool_call("late_tool", True, 4.0)
    otel_perf.record_tool_call("search_docs", False, 9.0, "ValueError")
    page.wait_for_selector("#tools tbody tr[data-tool=late_tool]", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#tools tbody tr[data-tool=search_docs]')"
        ".classList.contains('failing')"
    )
    late = next(row for row in _rows(page, "#tools") if row["name"] == "late_tool")
    assert late["cells"][1] == "7"
    assert page.text_content("#tool-count") == "6"

    assert watched.errors == []
    assert watched.dialogs == []
    watched.assert_same_origin(metrics.url)


def test_hostile_names_are_shown_as_text(watched: Watched) -> None:
    metrics = otel_perf.configure(json_port=0)
    assert metrics.url is not None
    hostile = [
        '<img src=x onerror="window.__owned=1">',
        "</script><script>window.__owned=2</script>",
        '"><svg onload=alert(3)>',
    ]
    for name in hostile:
        otel_perf.record_tool_call(name, False, 2.0, "<b onmouseover=alert(4)>E</b>")
        otel_perf.record_cache_hit(name)
    otel_perf.record_provider_call(hostile[0], True, 5.0, model=hostile[1])
    page = watched.page
    page.goto(metrics.url + "/?refresh=0.5")
    _wait_refreshes(page)
    assert sorted(row["name"] for row in _rows(page, "#tools")) == sorted(hostile)
    assert sorted(row["cells"][0] for row in _rows(page, "#caches")) == sorted(hostile)
    (provider_row,) = _rows(page, "#providers")
    assert provider_row["cells"][0] == hostile[0]
    assert hostile[1] in provider_row["cells"][9]
    assert provider_row["cells"][7] == "\u2013"  # no tokens, no price: a dash, never $0
    assert all(
        row["errors"] == [["<b onmouseover=alert(4)>E</b>", "\u00d7 1"]]
        for row in _rows(page, "#tools")
    )
    assert page.locator("main img, main b, main script, main svg[onload]").count() == 0
    assert page.evaluate("window.__owned") is None
    assert watched.dialogs == []
    assert watched.errors == []


def test_disabled_metrics_are_said_plainly(watched: Watched) -> None:
    metrics = Metrics(Settings(enabled=False))
    server = MetricsServer("127.0.0.1", 0, routes_for(metrics))
    server.start()
    try:
        page = watched.page
        page.goto(server.url + "/?refresh=0.5")
        _wait_refreshes(page)
        assert page.is_visible("#disabled")
        assert "Metrics are disabled on this server" in (page.text_content("#disabled") or "")
        assert not page.is_visible("#content")  # no wall of zeros
        assert page.get_attribute("body", "data-enabled") == "false"
        assert watched.errors == []
        watched.assert_same_origin(server.url)
    finally:
        server.stop()
        metrics.shutdown()


def test_token_protected_endpoint_asks_for_the_token(browser: Browser) -> None:
    metrics = otel_perf.configure(json_port=0, auth_token="s3cret-token")
    assert metrics.url is not None
    otel_perf.record_tool_call("guarded", True, 3.0)

    # Without credentials the page itself is refused, with a challenge the browser answers by
    # asking for a user name and password; nothing of the data reaches it.
    anonymous = browser.new_context()
    try:
        response = anonymous.request.get(metrics.url + "/")
        assert response.status == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert b"guarded" not in response.body()
        # A headless browser with no one to answer the prompt gives up on the page.
        with pytest.raises(PlaywrightError, match="AUTH"):
            anonymous.new_page().goto(metrics.url + "/")
    finally:
        anonymous.close()

    # With the token as the password (what a person types into the browser's prompt) the page
    # loads, and its own requests for data carry the same credentials.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        http_credentials={"username": "me", "password": "s3cret-token"},
    )
    try:
        watched = Watched(context.new_page())
        page = watched.page
        page.goto(metrics.url + "/?refresh=0.5")
        page.wait_for_selector("#tools tbody tr[data-tool=guarded]")
        assert page.is_hidden("#token-form")
        assert watched.errors == []
        watched.assert_same_origin(metrics.url)
    finally:
        context.close()


@pytest.mark.parametrize("width", [1280, 760])
def test_long_names_stay_inside_their_cell(browser: Browser, width: int) -> None:
    """A long tool, cache or provider name wraps inside its cell, never over the next one."""
    metrics = otel_perf.configure(json_port=0)
    assert metrics.url is not None
    long_names = {
        "tool": "fetch_" + "x" * 150,
        "spaced": "a tool name with many words " * 6,
        "dotted": "com.example.service." * 8 + "lookup",
    }
    for name in long_names.values():
        otel_perf.record_tool_call(name, False, 900.0, "TimeoutError")
        otel_perf.record_cache_hit(name)
    otel_perf.record_provider_call(long_names["tool"], True, 5.0, model=long_names["dotted"])
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(metrics.url + "/?refresh=0.5")
        _wait_refreshes(page)
        overflows = page.evaluate(
            """() => {
              const bad = [];
              for (const table of ["#tools", "#caches", "#providers"]) {
                for (const row of document.querySelectorAll(table + " tbody tr")) {
                  const first = row.cells[0], next = row.cells[1];
                  if (!first || !next) continue;
                  const a = first.getBoundingClientRect(), b = next.getBoundingClientRect();
                  for (const child of first.querySelectorAll("*")) {
                    const r = child.getBoundingClientRect();
                    if (r.right > a.right + 0.5) bad.push([table, "child", r.right, a.right]);
                  }
                  if (first.scrollWidth > first.clientWidth + 1) {
                    bad.push([table, "scroll", first.scrollWidth, first.clientWidth]);
                  }
                  if (a.right > b.left + 0.5) bad.push([table, "cell", a.right, b.left]);
                }
              }
              return bad;
            }"""
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-long-names-{width}.png"), full_page=True)
    finally:
        context.close()
    assert overflows == []
