"""``otel-perf top`` and ``otel-perf snapshot``: a running endpoint's numbers in a terminal.

``top`` polls the JSON document (and the trend ring next to it) every ``--interval`` seconds
and redraws the view of :mod:`otel_perf._cli.view` (the dashboard page's sections). On a
terminal, ``s`` toggles sorting by p95 or by calls and ``q`` quits (keys are read in cbreak mode
on a thread, so they act at once); Ctrl-C quits too. When stdin is not a terminal it just
refreshes. ``snapshot`` prints the view (or the raw JSON) once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from otel_perf._cli.fetch import (
    DEFAULT_URL,
    FetchError,
    fetch_document,
    fetch_json,
    history_url,
    metrics_url,
)
from otel_perf._cli.view import (
    SORTS,
    MissingRich,
    ViewState,
    console_for,
    render,
    require_rich,
    update_trends,
)
from otel_perf._http import registry
from otel_perf._settings import client_token, runtime_dir

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

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
    require_rich()
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
        require_rich()
    state = ViewState(url=url, threshold_ms=threshold_ms)
    try:
        document = fetch_document(url, token) if fmt == "json" else _refresh(state, token)
    except FetchError as exc:
        sys.stderr.write(f"otel-perf: {exc}\n")
        return 1
    if fmt == "json":
        stream.write(json.dumps(document, indent=2) + "\n")
        return 0
    (console or console_for(stream)).print(render(document, state))
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
    running = registry.live_endpoints(runtime_dir(os.environ))
    entries = [entry for entry in running if _answers(entry.url)]
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
    token = args.token if args.token is not None else client_token(os.environ)
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
