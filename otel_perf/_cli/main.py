"""The ``otel-perf`` command line: one subcommand per module, each adding its own parser."""

from __future__ import annotations

import importlib
import sys

from otel_perf._version import __version__

# Not ``typing.TYPE_CHECKING``: otel-perf run's start-up is on a stdio server's path to its
# first handshake, and typing is a measurable share of it. Type checkers treat any constant of
# this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

#: Modules that provide a subcommand through ``add_parser(subparsers)``; each sets ``func``.
COMMAND_MODULES = ("otel_perf._cli.demo", "otel_perf._cli.top", "otel_perf._cli.run")

#: ``otel-perf run`` starts stdio servers that MCP clients spawn on demand, so its own start-up
#: is on the path to the server's first handshake: it loads only its own module.
_RUN = "run"
_RUN_MODULE = "otel_perf._cli.run"


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 - otel-perf run's common forms do without it

    parser = argparse.ArgumentParser(
        prog="otel-perf",
        description="OpenTelemetry performance metrics for MCP servers.",
    )
    parser.add_argument("--version", action="version", version=f"otel-perf {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="log level for otel-perf's own messages (default WARNING; `run` passes it on)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:1] == [_RUN]:
        run = importlib.import_module(_RUN_MODULE)
        parsed = run.fast_parse(words[1:])
        if parsed is not None:
            code: int = run.run(*parsed)
            return code
    parser = build_parser((_RUN_MODULE,) if words[:1] == [_RUN] else COMMAND_MODULES)
    args = parser.parse_args(words)
    import logging  # noqa: PLC0415 - after otel-perf run's fast path

    level = getattr(logging, str(args.log_level or "WARNING").upper(), None)
    if not isinstance(level, int):
        parser.error(f"unknown log level {args.log_level!r}")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code
