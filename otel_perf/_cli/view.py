"""The terminal view of one metrics document: ``otel-perf top``, ``snapshot`` and ``demo``.

One renderer for every command that shows the ``/metrics`` document in a terminal: system
numbers (uptime, sessions, concurrent and total requests), tools (calls, failures, success rate,
p50/p95/p99/max, error types, a request-rate trend), caches and LLM providers -- the sections of
the dashboard page. It is pure (no I/O): a command prints what :func:`render` returns.

The view is built with rich, an optional extra (``otel-perf[cli]``, also in ``otel-perf[demo]``)
imported only when a view is drawn. Every name in the document is untrusted: it is always
wrapped in ``rich.text.Text``, never interpreted as rich markup.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO

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


def require_rich() -> None:
    """Raise :class:`MissingRich`, naming the extra, when rich is not installed."""
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


def console_for(stream: TextIO) -> Console:
    """A rich console writing to ``stream``.

    Into a pipe or a file rich would assume 80 columns and squeeze the tools table, so it gets
    160 unless ``COLUMNS`` says otherwise (rich reads that variable itself).
    """
    from rich.console import Console  # noqa: PLC0415

    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(file=stream, width=160 if wide else None)
