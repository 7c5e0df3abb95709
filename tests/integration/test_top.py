"""``otel-perf snapshot`` and the view ``otel-perf top`` draws, read with a recording console."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from rich.console import Console

import otel_perf
from otel_perf._cli import main as _cli
from otel_perf._cli import view
from otel_perf._cli.fetch import FetchError, fetch_document, metrics_url
from otel_perf._cli.top import run_snapshot, run_top
from otel_perf._cli.view import ViewState, render, sort_tools, sparkline
from otel_perf._http.routes import routes_for
from otel_perf._http.server import MetricsServer, Response, json_response
from otel_perf._metrics import Metrics
from otel_perf._settings import Settings
from tests.support.helpers import table_row


@pytest.fixture
def served() -> str:
    """A real endpoint with a slow-but-rare tool, a busy fast one, a failing one, a cache and
    a provider."""
    metrics = otel_perf.configure(json_port=0)
    for i in range(5):
        otel_perf.record_tool_call("slow_rare", True, 900.0 + i)
    for i in range(60):
        otel_perf.record_tool_call("busy_fast", True, 2.0 + i % 3)
    for i in range(20):
        ok = i % 4 != 0
        otel_perf.record_tool_call("flaky", ok, 30.0 + i, None if ok else "TimeoutError")
    for _ in range(3):
        otel_perf.record_cache_hit("emb")
    otel_perf.record_cache_miss("emb")
    otel_perf.record_cache_eviction("emb")
    otel_perf.record_cache_size_rejection("emb")
    otel_perf.record_provider_call(
        "openai", True, 800.0, model="gpt-4o", input_tokens=1200, output_tokens=300
    )
    otel_perf.set_active_sessions(3)
    assert metrics.url is not None
    return metrics.url  # the autouse fixture in conftest.py shuts the endpoint down


def _console() -> Console:
    return Console(record=True, width=200, color_system=None, force_terminal=False)


def _snapshot_text(url: str, **kwargs: Any) -> str:
    console = _console()
    assert run_snapshot(metrics_url(url), None, console=console, **kwargs) == 0
    return console.export_text()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (None, "http://127.0.0.1:9109/metrics"),
        ("", "http://127.0.0.1:9109/metrics"),
        ("127.0.0.1:9200", "http://127.0.0.1:9200/metrics"),
        ("http://h:1/", "http://h:1/metrics"),
        ("http://h:1/metrics", "http://h:1/metrics"),
        ("http://h:1/metrics/", "http://h:1/metrics"),
        ("https://example.org/otel", "https://example.org/otel/metrics"),
        ("http://[::1]:9109", "http://[::1]:9109/metrics"),
    ],
)
def test_metrics_url_accepts_base_and_metrics_urls(typed: str | None, expected: str) -> None:
    assert metrics_url(typed) == expected


@pytest.mark.parametrize("typed", ["ftp://h/metrics", "http://h:99999", "http://"])
def test_metrics_url_refuses_what_is_not_http(typed: str) -> None:
    with pytest.raises(FetchError):
        metrics_url(typed)


def test_snapshot_table_shows_the_documents_values(served: str) -> None:
    text = _snapshot_text(served)
    document = otel_perf.get_all_metrics()  # no calls since: the same window, same numbers
    for name, tool in document["tool_metrics"].items():
        cells = table_row(text, name)
        assert cells[2:9] == [
            f"{tool['total_calls']:,}",
            f"{tool['failed_calls']:,}",
            f"{tool['success_rate']:.2f}%",
            *(
                f"{tool[k]:.2f}"
                for k in ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "max_latency_ms")
            ),
        ]
    assert table_row(text, "flaky")[:2] == ["flaky", "failing"]
    assert table_row(text, "flaky")[9] == "TimeoutError (5)"
    assert table_row(text, "slow_rare")[:2] == ["slow_rare", "slow"]  # p95 ~900 ms > 500 ms default
    assert table_row(text, "busy_fast")[:2] == ["busy_fast", "ok"]
    assert table_row(text, "emb") == ["emb", "75.00%", "3", "1", "1", "1"]
    provider = table_row(text, "openai")
    assert "1,200 / 300" in provider
    cost = document["provider_metrics"]["openai"]["cost_usd"]
    assert cost == pytest.approx(1200 * 2.5e-6 + 300 * 10e-6)  # gpt-4o's catalogue price
    assert "$0.006000" in provider  # under a cent: to the millionth
    assert "gpt-4o (1, $0.006000)" in provider
    assert "sessions 3" in text
    assert "requests 85" in text


def test_sorting_by_p95_or_by_calls(served: str) -> None:
    document = otel_perf.get_all_metrics()
    by_p95 = [name for name, _ in sort_tools(document["tool_metrics"], "p95")]
    by_calls = [name for name, _ in sort_tools(document["tool_metrics"], "calls")]
    assert by_p95 == ["slow_rare", "flaky", "busy_fast"]
    assert by_calls == ["busy_fast", "flaky", "slow_rare"]

    state = ViewState(url=metrics_url(served), live=True, keys=True)
    console = _console()
    console.print(render(document, state))
    state.toggle_sort()
    console.print(render(document, state))
    first, second = console.export_text().split("Tools (sorted by calls)")
    assert "Tools (sorted by p95)" in first
    assert "s: sort by calls · q: quit" in first
    assert first.index("slow_rare") < first.index("busy_fast")
    assert second.index("busy_fast") < second.index("slow_rare")
    assert "s: sort by p95" in second


def test_threshold_decides_what_is_slow(served: str) -> None:
    text = _snapshot_text(served, threshold_ms=10.0)
    assert table_row(text, "flaky")[:2] == ["flaky", "failing slow"]  # p95 ~49 ms > 10 ms
    assert table_row(text, "busy_fast")[:2] == ["busy_fast", "ok"]  # p95 4 ms
    text = _snapshot_text(served, threshold_ms=0.0)
    assert table_row(text, "slow_rare")[:2] == ["slow_rare", "ok"]  # 0 switches the highlight off


def test_the_state_has_its_own_column_never_the_name_cell() -> None:
    """A tool named "slow" that is slow used to print as "slow slow" in the name column."""
    tools = {
        "slow": {"total_calls": 3, "failed_calls": 1, "p95_latency_ms": 900.0},
        "failing": {"total_calls": 3, "failed_calls": 0, "p95_latency_ms": 1.0},
    }
    table = view._tools_table_for(tools, ViewState(url="", live=False, keys=False), 200)
    by_header = {str(column.header): column for column in table.columns}
    names = [str(cell) for cell in by_header["Tool"]._cells]
    states = [str(cell) for cell in by_header["State"]._cells]
    assert dict(zip(names, states, strict=True)) == {"slow": "failing slow", "failing": "ok"}


def test_names_are_never_markup() -> None:
    otel_perf.configure(json_port=0)
    otel_perf.record_tool_call("[bold red]boom[/bold red]", False, 1.0, "[link=x]E[/link]")
    document = otel_perf.get_all_metrics()
    console = _console()
    console.print(render(document, ViewState(url="u")))
    text = console.export_text()
    assert "[bold red]boom[/bold red]" in text
    assert "[link=x]E[/link] (1)" in text


def test_snapshot_json_is_the_document(served: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["snapshot", served, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["enabled"] is True
    assert set(printed["tool_metrics"]) == {"slow_rare", "busy_fast", "flaky"}
    assert printed["tool_metrics"]["flaky"]["error_types"] == {"TimeoutError": 5}


def test_trend_column_comes_from_the_history(served: str) -> None:
    metrics = otel_perf.configure(json_port=0)
    now = time.time()
    for k in range(6):
        for _ in range(10 * (k + 1)):
            otel_perf.record_tool_call("busy_fast", True, 2.0)
        metrics.history.sample(now=now - 30 + 5 * k)
    text = _snapshot_text(served)
    row = table_row(text, "busy_fast")
    # A rising rate, 4 to 12 calls/s. The first sample is dropped: it predates the start, so
    # its interval has no length and no rate.
    assert row[-1] == sparkline([4.0, 6.0, 8.0, 10.0, 12.0])
    assert sparkline([4.0, 6.0, 8.0, 10.0, 12.0]) == "▃▅▆▇█"
    assert sparkline([0.0, 1.0, 2.0]) == "▁▅█"
    assert sparkline([0.0, 0.0]) == "▁▁"


def test_disabled_server_is_said_plainly() -> None:
    metrics = Metrics(Settings(enabled=False))
    server = MetricsServer("127.0.0.1", 0, routes_for(metrics))
    server.start()
    try:
        text = _snapshot_text(server.url)
    finally:
        server.stop()
        metrics.shutdown()
    assert "Metrics are disabled on this server" in text
    assert "Calls" not in text  # no table of zeros


def test_token_from_flag_or_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = otel_perf.configure(json_port=0, auth_token="s3cret")
    otel_perf.record_tool_call("guarded", True, 1.0)
    assert metrics.url is not None
    assert _cli.main(["snapshot", metrics.url, "--format", "json"]) == 1
    err = capsys.readouterr().err
    assert "needs a token" in err
    assert "--token" in err
    assert _cli.main(["snapshot", metrics.url, "--format", "json", "--token", "nope"]) == 1
    assert "token was rejected" in capsys.readouterr().err
    assert _cli.main(["snapshot", metrics.url, "--format", "json", "--token", "s3cret"]) == 0
    assert "guarded" in json.loads(capsys.readouterr().out)["tool_metrics"]
    monkeypatch.setenv("METRICS_AUTH_TOKEN", "s3cret")
    assert _cli.main(["snapshot", metrics.url]) == 0
    assert "guarded" in capsys.readouterr().out


def _free_port() -> int:
    server = MetricsServer("127.0.0.1", 0, {})
    server.start()
    port = server.port
    server.stop()
    return port


@pytest.mark.parametrize("command", ["snapshot", "top"])
def test_unreachable_url_is_one_message_and_exit_1(command: str) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "otel_perf", command, url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert output.strip().count("\n") == 0  # one line
    assert f"cannot reach {url}/metrics" in output


def test_other_servers_are_recognised_as_not_otel_perf(
    capsys: pytest.CaptureFixture[str],
) -> None:
    routes = {
        "/metrics": lambda _r: json_response(200, {"status": "ok"}),
        "/html/metrics": lambda _r: Response(200, b"<html>hi</html>", "text/html"),
    }
    server = MetricsServer("127.0.0.1", 0, routes)
    server.start()
    try:
        with pytest.raises(FetchError, match="not with an otel-perf metrics document"):
            fetch_document(metrics_url(server.url))
        with pytest.raises(FetchError, match="did not answer with JSON"):
            fetch_document(metrics_url(server.url + "/html"))
        with pytest.raises(FetchError, match="HTTP 404"):
            fetch_document(metrics_url(server.url + "/nothing"))
        assert run_top(metrics_url(server.url), None, console=_console()) == 1
        assert "not with an otel-perf metrics document" in capsys.readouterr().err
    finally:
        server.stop()


def test_without_rich_the_message_names_the_extra(
    served: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # makes `import rich` raise ImportError
    assert _cli.main(["snapshot", served]) == 1
    assert "otel-perf[cli]" in capsys.readouterr().err
    assert _cli.main(["top", served]) == 1
    assert "otel-perf[cli]" in capsys.readouterr().err
    # The JSON form needs only the standard library.
    assert _cli.main(["snapshot", served, "--format", "json"]) == 0
    assert "busy_fast" in capsys.readouterr().out
