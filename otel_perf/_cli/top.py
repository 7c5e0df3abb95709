"""``otel-perf top`` and ``otel-perf snapshot``: a running endpoint's numbers in a terminal.

``top`` polls the JSON document (and the trend ring next to it) every ``--interval`` seconds
and redraws one view with the same sections as the dashboard page: system numbers, tools
(calls, failures, success rate, p50/p95/p99/max, error types, a request-rate trend), caches
and LLM providers. On a terminal, ``s`` toggles sorting by p95 or by calls and ``q`` quits
(keys are read in cbreak mode on a thread, so they act at once); Ctrl-C quits too. When stdin
is not a terminal it just refreshes. ``snapshot`` prints the view (or the raw JSON) once.

The view is built with rich, an optional extra (``otel-perf[cli]``) imported only when needed.
Every name in the document is untrusted: it is always wrapped in ``rich.text.Text``, never
interpreted as rich markup.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO

from otel_perf._cli.fetch import (
    DEFAULT_URL,
    FetchError,
    fetch_document,
    fetch_json,
    history_url,
    metrics_url,
)
from otel_perf._http import registry

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.table import Table
    from rich.text import Text

SORTS: Final = ("p95", "calls")
TREND_POINTS: Final = 24
_BLOCKS: Final = "▁▂▃▄▅▆▇█"
_NEEDS_RICH: Final = (
    "otel-perf: this view needs the 'rich' package; install it with: pip install 'otel-perf[cli]'"
)


class MissingRich(Exception):
    """rich is not installed."""


def _require_rich() -> None:
    try:
        import rich  # noqa: F401, PLC0415 - optional extra, imported only when a view is drawn
    except ImportError:
        raise MissingRich(_NEEDS_RICH) from None


@dataclass
class ViewState:
    """What the view shows besides the document: where from, sort order, alerts, trends."""

    url: str
    sort: str = "p95"
    threshold_ms: float = 500.0
    interval_s: float = 2.0
    live: bool = False  # a refreshing view (top) rather than a one-off print (snapshot)
    keys: bool = False  # whether s/q work (stdin is a terminal)
    status: str | None = None  # the last error while retrying
    trends: dict[str, list[float]] = field(default_factory=dict)
    last_sample: float | None = None
    start_time: float | None = None

    def toggle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]


# --- trends ------------------------------------------------------------------------------------


def update_trends(state: ViewState, history: Any, tools: set[str]) -> None:
    """Append each tool's request rate from new history samples, keeping the newest few."""
    if not isinstance(history, dict) or not isinstance(history.get("samples"), list):
        return
    for sample in history["samples"]:
        if not isinstance(sample, dict) or not isinstance(sample.get("timestamp"), (int, float)):
            continue
        if state.last_sample is not None and sample["timestamp"] <= state.last_sample:
            continue
        if not isinstance(sample.get("interval_seconds"), (int, float)) or not (
            sample["interval_seconds"] > 0
        ):
            continue
        state.last_sample = float(sample["timestamp"])
        entries = sample.get("tools") if isinstance(sample.get("tools"), dict) else {}
        for name in tools | set(state.trends):
            entry = entries.get(name) if isinstance(entries, dict) else None
            rate = entry.get("rate_per_second") if isinstance(entry, dict) else 0.0
            series = state.trends.setdefault(name, [])
            series.append(float(rate) if isinstance(rate, (int, float)) else 0.0)
            del series[:-TREND_POINTS]
    for name in set(state.trends) - tools:
        del state.trends[name]


def sparkline(values: list[float]) -> str:
    """Unicode block sparkline, scaled to the largest value."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return _BLOCKS[0] * len(values)
    return "".join(_BLOCKS[min(int(v / top * (len(_BLOCKS) - 1) + 0.5), 7)] for v in values)


# --- rendering ---------------------------------------------------------------------------------


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _int(value: Any) -> str:
    return f"{int(_num(value)):,}"


def _ms(value: Any) -> str:
    return f"{_num(value):.2f}"


def _cost(value: Any) -> str:
    """US dollars; ``null`` (no known price) is a dash, never ``$0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"${value:.6f}" if 0 < abs(value) < 0.01 else f"${value:.2f}"


def _uptime(seconds: Any) -> str:
    s = int(_num(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def _errors(error_types: Any) -> Text:
    from rich.text import Text  # noqa: PLC0415

    if not isinstance(error_types, dict) or not error_types:
        return Text("-", style="dim")
    items = sorted(error_types.items(), key=lambda kv: -_num(kv[1]))
    return Text(", ".join(f"{name} ({_int(count)})" for name, count in items), style="red")


def sort_tools(tools: dict[str, Any], sort: str) -> list[tuple[str, dict[str, Any]]]:
    """Tools in display order: slowest p95 first, or busiest first."""
    key = "p95_latency_ms" if sort == "p95" else "total_calls"
    items = [(name, t) for name, t in tools.items() if isinstance(t, dict)]
    return sorted(items, key=lambda kv: (-_num(kv[1].get(key)), kv[0]))


def render(document: dict[str, Any], state: ViewState) -> RenderableType:
    """The whole view of one document (pure: no I/O)."""
    from rich.console import Group  # noqa: PLC0415
    from rich.panel import Panel  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    title = Text.assemble(("otel-perf", "bold"), "  ", (state.url, "cyan"))
    if document.get("enabled") is not True:
        notice = Text(
            "Metrics are disabled on this server (PERFORMANCE_METRICS_ENABLED=false or "
            "OTEL_SDK_DISABLED=true): nothing is being recorded.",
            style="yellow",
        )
        panel = Panel(notice, title="disabled", border_style="yellow")
        return Group(title, panel, *_footer(state))

    system = _dict(document.get("system_metrics"))
    title.append("   uptime ", style="dim")
    title.append(_uptime(system.get("uptime_seconds")), style="bold")
    for name, key in (
        ("sessions", "active_sessions"),
        ("concurrent", "concurrent_requests"),
        ("requests", "total_requests"),
    ):
        title.append(f"   {name} ", style="dim")
        title.append(_int(system.get(key)), style="bold")
    parts: list[RenderableType] = [title, _tools_table(_dict(document.get("tool_metrics")), state)]
    caches = _dict(document.get("cache_metrics"))
    if caches:
        parts.append(_caches_table(caches))
    providers = _dict(document.get("provider_metrics"))
    if providers:
        parts.append(_providers_table(providers))
    return Group(*parts, *_footer(state))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _table(title: str) -> Table:
    from rich import box  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        header_style="bold dim",
        box=box.SIMPLE_HEAD,
    )


class _Fit:
    """Renders ``build(width)``, so a table can drop optional columns on a narrow terminal."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self._build = build

    def __rich_console__(self, _console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._build(options.max_width)


#: Below these widths the tools table leaves out the max column, then the trend column.
_WIDTH_FOR_MAX: Final = 112
_WIDTH_FOR_TREND: Final = 126


def _tools_table(tools: dict[str, Any], state: ViewState) -> RenderableType:
    from rich.text import Text  # noqa: PLC0415

    if not tools:
        return Text("No tool calls recorded yet.", style="dim italic")
    return _Fit(lambda width: _tools_table_for(tools, state, width))


def _tools_table_for(tools: dict[str, Any], state: ViewState, width: int) -> RenderableType:
    from rich.text import Text  # noqa: PLC0415

    with_max = width >= _WIDTH_FOR_MAX
    with_trend = width >= _WIDTH_FOR_TREND
    table = _table(f"Tools (sorted by {state.sort})")
    table.add_column("Tool", overflow="fold", min_width=10, max_width=40)
    table.add_column("State", no_wrap=True)
    for column in ("Calls", "Failed", "Success", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right", no_wrap=True)
    if with_max:
        table.add_column("max ms", justify="right", no_wrap=True)
    table.add_column("Errors", overflow="fold", min_width=8, max_width=40)
    if with_trend:
        table.add_column("req/s trend", no_wrap=True)
    for name, tool in sort_tools(tools, state.sort):
        failing = _num(tool.get("failed_calls")) > 0
        slow = state.threshold_ms > 0 and _num(tool.get("p95_latency_ms")) > state.threshold_ms
        label = Text(name, style="bold red" if failing else ("bold yellow" if slow else "bold"))
        # The state has a column of its own: appended to the name it reads as part of it
        # (a tool named "slow" became "slow slow").
        state_text = Text("ok", style="dim") if not (failing or slow) else Text()
        if failing:
            state_text.append("failing", style="red")
        if slow:
            state_text.append(" slow" if failing else "slow", style="yellow")
        cells: list[RenderableType] = [
            label,
            state_text,
            _int(tool.get("total_calls")),
            Text(_int(tool.get("failed_calls")), style="red" if failing else ""),
            Text(f"{_num(tool.get('success_rate')):.2f}%", style="red" if failing else ""),
            _ms(tool.get("p50_latency_ms")),
            Text(_ms(tool.get("p95_latency_ms")), style="bold yellow" if slow else ""),
            _ms(tool.get("p99_latency_ms")),
        ]
        if with_max:
            cells.append(_ms(tool.get("max_latency_ms")))
        cells.append(_errors(tool.get("error_types")))
        if with_trend:
            cells.append(Text(sparkline(state.trends.get(name, [])), style="blue"))
        table.add_row(*cells)
    return table


def _caches_table(caches: dict[str, Any]) -> RenderableType:
    from rich.text import Text  # noqa: PLC0415

    table = _table("Caches")
    table.add_column("Cache", overflow="fold", max_width=40)
    for column in ("Hit rate", "Hits", "Misses", "Evictions", "Size rejections"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, cache in caches.items():
        if not isinstance(cache, dict):
            continue
        table.add_row(
            Text(name, style="bold"),
            f"{_num(cache.get('hit_rate')):.2f}%",
            _int(cache.get("hits")),
            _int(cache.get("misses")),
            _int(cache.get("evictions")),
            _int(cache.get("size_rejections")),
        )
    return table


#: Below this width providers are listed one per paragraph instead of in a table.
_WIDTH_FOR_PROVIDER_TABLE: Final = 118


def _providers_table(providers: dict[str, Any]) -> RenderableType:
    return _Fit(lambda width: _providers_for(providers, width))


def _providers_for(providers: dict[str, Any], width: int) -> RenderableType:
    from rich.console import Group  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    rows = []
    for name, provider in providers.items():
        if not isinstance(provider, dict):
            continue
        models = ", ".join(
            f"{model} ({_int(m.get('total_calls'))}, {_cost(m.get('cost_usd'))})"
            for model, m in _dict(provider.get("models")).items()
            if isinstance(m, dict)
        )
        rows.append((name, provider, models or "-"))

    if width < _WIDTH_FOR_PROVIDER_TABLE:
        lines: list[RenderableType] = [Text("LLM providers", style="bold")]
        for name, provider, models in rows:
            failing = _num(provider.get("failed_calls")) > 0
            line = Text("  ")
            line.append(name, style="bold")
            line.append(f"  {_int(provider.get('total_calls'))} calls  ")
            line.append(
                f"{_num(provider.get('success_rate')):.2f}% ok", style="red" if failing else ""
            )
            line.append(
                f"  p50/p95/p99 {_ms(provider.get('p50_latency_ms'))} / "
                f"{_ms(provider.get('p95_latency_ms'))} / {_ms(provider.get('p99_latency_ms'))} ms"
                f"  tokens {_int(provider.get('input_tokens'))} in, "
                f"{_int(provider.get('output_tokens'))} out  cost {_cost(provider.get('cost_usd'))}"
                "  errors "
            )
            line.append_text(_errors(provider.get("error_types")))
            line.append("  models ")
            line.append(models)
            lines.append(line)
        return Group(*lines)

    table = _table("LLM providers")
    table.add_column("Provider", overflow="fold", min_width=10, max_width=30)
    for column in ("Calls", "Success", "p50 ms", "p95 ms", "p99 ms", "Tokens in/out", "Cost"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("Errors", overflow="fold", min_width=8, max_width=30)
    table.add_column("Models", overflow="fold", min_width=10, max_width=40)
    for name, provider, models in rows:
        failing = _num(provider.get("failed_calls")) > 0
        table.add_row(
            Text(name, style="bold"),
            _int(provider.get("total_calls")),
            Text(f"{_num(provider.get('success_rate')):.2f}%", style="red" if failing else ""),
            _ms(provider.get("p50_latency_ms")),
            _ms(provider.get("p95_latency_ms")),
            _ms(provider.get("p99_latency_ms")),
            f"{_int(provider.get('input_tokens'))} / {_int(provider.get('output_tokens'))}",
            _cost(provider.get("cost_usd")),
            _errors(provider.get("error_types")),
            Text(models),
        )
    return table


def _footer(state: ViewState) -> list[RenderableType]:
    from rich.text import Text  # noqa: PLC0415

    lines: list[RenderableType] = []
    if not state.live:
        return lines
    if state.status:
        lines.append(Text(f"{state.status} (retrying)", style="bold red"))
    help_text = Text(f"sorted by {state.sort} · refresh every {state.interval_s:g} s", style="dim")
    if state.keys:
        other = SORTS[(SORTS.index(state.sort) + 1) % len(SORTS)]
        help_text.append(f" · s: sort by {other} · q: quit", style="dim")
    else:
        help_text.append(" · Ctrl-C: quit", style="dim")
    lines.append(help_text)
    return lines


# --- keys --------------------------------------------------------------------------------------


@contextlib.contextmanager
def key_reader(stream: TextIO) -> Iterator[queue.Queue[str] | None]:
    """Yield a queue of single key presses read from ``stream`` in cbreak mode.

    Yields ``None`` when ``stream`` is not a terminal (or termios is unavailable). The terminal
    settings are restored on exit, whatever happens. Ctrl-C still raises KeyboardInterrupt:
    cbreak mode keeps signal keys.
    """
    try:
        import termios  # noqa: PLC0415 - POSIX only
        import tty  # noqa: PLC0415
    except ImportError:
        yield None
        return
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        yield None
        return
    if not os.isatty(fd):
        yield None
        return
    saved = termios.tcgetattr(fd)
    keys: queue.Queue[str] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(fd, 32)
            if not data:
                return  # end of input: no more keys
            for char in data.decode(errors="ignore"):
                keys.put(char)

    tty.setcbreak(fd)
    thread = threading.Thread(target=read, name="otel-perf-top-keys", daemon=True)
    thread.start()
    try:
        yield keys
    finally:
        stop.set()
        thread.join(timeout=1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# --- commands ----------------------------------------------------------------------------------


def _refresh(state: ViewState, token: str | None) -> dict[str, Any]:
    document = fetch_document(state.url, token)
    start = (document.get("system_metrics") or {}).get("start_time")
    if start != state.start_time:  # a reset or a restarted server: old trends are void
        state.trends.clear()
        state.last_sample = None
        state.start_time = start
    if document.get("enabled") is True:
        url = history_url(state.url)
        if state.last_sample is not None:
            url += f"?since={state.last_sample!r}"
        try:
            history = fetch_json(url, token)
        except FetchError:
            history = None  # trends are a nicety; an older server has no history route
        update_trends(state, history, set(document.get("tool_metrics") or {}))
    return document


def run_top(
    url: str,
    token: str | None,
    *,
    interval_s: float = 2.0,
    sort: str = "p95",
    threshold_ms: float = 500.0,
    console: Console | None = None,
    stdin: TextIO | None = None,
) -> int:
    """The live view until q or Ctrl-C; 1 with one message when the endpoint is unusable."""
    _require_rich()
    from rich.console import Console  # noqa: PLC0415

    state = ViewState(
        url=url, sort=sort, threshold_ms=threshold_ms, interval_s=interval_s, live=True
    )
    try:
        document = _refresh(state, token)
    except FetchError as exc:
        sys.stderr.write(f"otel-perf: {exc}\n")
        return 1
    out = console or Console()
    try:
        with key_reader(stdin or sys.stdin) as keys:
            state.keys = keys is not None
            with _screen(out, render(document, state)) as show:
                next_poll = time.monotonic() + interval_s
                while True:
                    wait = max(next_poll - time.monotonic(), 0.0)
                    key = _next_key(keys, wait)
                    if key in ("q", "Q"):
                        break
                    if key in ("s", "S"):
                        state.toggle_sort()
                        show(render(document, state))
                        continue
                    if key is not None:
                        continue  # some other key: ignore it, keep the schedule
                    next_poll = time.monotonic() + interval_s
                    try:
                        document = _refresh(state, token)
                        state.status = None
                    except FetchError as exc:
                        state.status = str(exc)
                    show(render(document, state))
    except KeyboardInterrupt:
        pass  # Ctrl-C is the ordinary way out of a live view
    return 0


@contextlib.contextmanager
def _screen(out: Console, first: RenderableType) -> Iterator[Callable[[RenderableType], None]]:
    """Yield a function that shows a new view: redrawn in place on a terminal, printed one
    after another (like ``top -b``) into a pipe or file."""
    if not out.is_terminal:
        out.print(first)

        def append(view: RenderableType) -> None:
            out.rule(style="dim")
            out.print(view)

        yield append
        return
    from rich.live import Live  # noqa: PLC0415

    with Live(first, console=out, auto_refresh=False) as live:
        yield lambda view: live.update(view, refresh=True)


def _next_key(keys: queue.Queue[str] | None, timeout: float) -> str | None:
    if keys is None:
        time.sleep(timeout)
        return None
    try:
        return keys.get(timeout=timeout)
    except queue.Empty:
        return None


def run_snapshot(
    url: str,
    token: str | None,
    *,
    fmt: str = "table",
    threshold_ms: float = 500.0,
    console: Console | None = None,
    out: TextIO | None = None,
) -> int:
    """Print the document once, as a table (rich) or as JSON (standard library only)."""
    stream = out or sys.stdout
    if fmt != "json":
        _require_rich()
    state = ViewState(url=url, threshold_ms=threshold_ms)
    try:
        document = fetch_document(url, token) if fmt == "json" else _refresh(state, token)
    except FetchError as exc:
        sys.stderr.write(f"otel-perf: {exc}\n")
        return 1
    if fmt == "json":
        stream.write(json.dumps(document, indent=2) + "\n")
        return 0
    from rich.console import Console  # noqa: PLC0415

    if console is None:
        # Into a pipe or file, rich would assume 80 columns and squeeze the tool table.
        wide = not stream.isatty() and "COLUMNS" not in os.environ
        console = Console(file=stream, width=160 if wide else None)
    console.print(render(document, state))
    return 0


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _not_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be zero or more")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        nargs="?",
        default=None,
        help=(
            "the endpoint: a base URL, a /metrics URL or host:port (default: the endpoint "
            f"running on this machine, a choice if several run, else {DEFAULT_URL})"
        ),
    )
    parser.add_argument(
        "--pick",
        type=int,
        default=None,
        metavar="N",
        help="without a URL: read the Nth of the endpoints running on this machine",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="bearer token for an endpoint with METRICS_AUTH_TOKEN (default: that variable)",
    )
    parser.add_argument(
        "--threshold",
        type=_not_negative,
        default=500.0,
        help="highlight tools whose p95 is above this many ms (default 500; 0: never)",
    )


def add_parser(subparsers: Any) -> None:
    top = subparsers.add_parser("top", help="live terminal view of a running endpoint")
    _common(top)
    top.add_argument(
        "--interval", type=_positive, default=2.0, help="seconds between polls (default 2)"
    )
    top.add_argument("--sort", choices=SORTS, default="p95", help="initial sort (default p95)")
    top.set_defaults(func=_top_main)

    snapshot = subparsers.add_parser("snapshot", help="print a running endpoint's numbers once")
    _common(snapshot)
    snapshot.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default table)"
    )
    snapshot.set_defaults(func=_snapshot_main)


def choose_endpoint(
    entries: list[registry.Entry],
    pick: int | None,
    ask: Callable[[str], str] | None,
    say: Callable[[str], None],
) -> str | None:
    """The URL to read when none was given: the only live endpoint on this machine, the one
    ``pick`` (1-based) names, or the one the user picks when ``ask`` can ask; ``None`` (after
    saying why) when that is not possible. No live endpoint: the default URL."""
    if not entries:
        if pick is not None:
            say("no running endpoint on this machine")
            return None
        return ""  # nothing registered: the default URL
    listing = "\n".join(
        f"  {i}. {entry.url}  {entry.service or '?'} (pid {entry.pid})"
        + ("  [token]" if entry.token_required else "")
        for i, entry in enumerate(entries, 1)
    )
    if pick is None and len(entries) == 1:
        pick = 1
    if pick is None and ask is not None:
        say(f"endpoints running on this machine:\n{listing}")
        answer = ask(f"which one? [1-{len(entries)}, default 1] ").strip() or "1"
        pick = int(answer) if answer.isdigit() else 0
    if pick is None:
        say(f"endpoints running on this machine:\n{listing}\ngive one's URL, or --pick N")
        return None
    if not 1 <= pick <= len(entries):
        say(f"no endpoint number {pick}; the running ones:\n{listing}")
        return None
    chosen = entries[pick - 1]
    if len(entries) > 1 or pick != 1:
        say(f"reading {chosen.url} ({chosen.service or '?'}, pid {chosen.pid})")
    return chosen.url


def _discovered(args: argparse.Namespace) -> str | None:
    """``args.url``, or a live endpoint from this machine's registry (see above)."""
    if args.url is not None:
        return str(args.url)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()

    def say(message: str) -> None:
        sys.stderr.write(f"otel-perf: {message}\n")

    def ask(prompt: str) -> str:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        return sys.stdin.readline()

    # An entry whose process id now belongs to another program (the server was killed, the
    # number reused) has no otel-perf /health behind it: left out.
    entries = [entry for entry in registry.live_endpoints() if _answers(entry.url)]
    return choose_endpoint(entries, args.pick, ask if interactive else None, say)


def _answers(base_url: str) -> bool:
    """Whether ``base_url`` serves otel-perf's ``/health`` (which never needs a token)."""
    try:
        health = fetch_json(base_url.rstrip("/") + "/health", timeout_s=1.0)
    except FetchError:
        return False
    return isinstance(health, dict) and health.get("status") == "ok"


def _target(args: argparse.Namespace) -> tuple[str, str | None] | None:
    try:
        chosen = _discovered(args)
        if chosen is None:
            return None
        url = metrics_url(chosen or None)
    except FetchError as exc:
        sys.stderr.write(f"otel-perf: {exc}\n")
        return None
    token = args.token if args.token is not None else os.environ.get("METRICS_AUTH_TOKEN")
    return url, (token.strip() or None) if token else None


def _top_main(args: argparse.Namespace) -> int:
    target = _target(args)
    if target is None:
        return 1
    try:
        return run_top(
            target[0],
            target[1],
            interval_s=args.interval,
            sort=args.sort,
            threshold_ms=args.threshold,
        )
    except MissingRich as exc:
        sys.stderr.write(f"{exc}\n")
        return 1


def _snapshot_main(args: argparse.Namespace) -> int:
    target = _target(args)
    if target is None:
        return 1
    try:
        return run_snapshot(target[0], target[1], fmt=args.format, threshold_ms=args.threshold)
    except MissingRich as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
