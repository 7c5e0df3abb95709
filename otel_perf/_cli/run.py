"""``otel-perf run [--url-file PATH] -- COMMAND [ARGS...]``: run a program with metrics on.

Zero code changes: the command starts with otel-perf's bootstrap directory first on
``PYTHONPATH``; its ``sitecustomize`` configures otel-perf from the environment and
instruments every ``mcp`` / FastMCP server the program builds (see
:mod:`otel_perf._integrations.autoinstrument`). On POSIX the command replaces this
process (``exec``), so its stdin/stdout are the caller's own: an MCP client can spawn
``otel-perf run -- python server.py`` as a stdio server.
"""

from __future__ import annotations

import os
import sys

from otel_perf._integrations.bootstrap_paths import BOOTSTRAP_DIR, BOOTSTRAPPED_ENV, URL_FILE_ENV

TYPE_CHECKING = False  # not typing's: see otel_perf._cli.main
if TYPE_CHECKING:
    import argparse
    from typing import Any


def command_environment(url_file: str | None) -> dict[str, str]:
    """This process's environment with the bootstrap directory first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env.pop(BOOTSTRAPPED_ENV, None)  # the command is the top of its own process tree
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{BOOTSTRAP_DIR}{os.pathsep}{existing}" if existing else str(BOOTSTRAP_DIR)
    if url_file:
        env[URL_FILE_ENV] = os.path.abspath(url_file)
    return env


def run(command: list[str], url_file: str | None = None) -> int:
    """Run ``command`` instrumented; returns its exit code (on POSIX it never returns)."""
    env = command_environment(url_file)
    try:
        if os.name == "posix":
            os.execvpe(command[0], command, env)  # noqa: S606 - running the user's command is the job
        import subprocess  # noqa: PLC0415 - only where exec is not available

        return subprocess.call(command, env=env)  # noqa: S603
    except FileNotFoundError:
        print(f"otel-perf run: command not found: {command[0]}", file=sys.stderr)  # noqa: T201
        return 127
    except PermissionError:
        print(f"otel-perf run: permission denied: {command[0]}", file=sys.stderr)  # noqa: T201
        return 126


def fast_parse(words: list[str]) -> tuple[list[str], str | None] | None:
    """``(command, url_file)`` from the words after ``run``, or ``None`` to let argparse do it.

    ``otel-perf run`` is on the path to a stdio server's first handshake; its usual forms
    (``[--url-file PATH] [--] COMMAND...``) need neither argparse nor logging. Anything else
    (``--help``, a missing command, an unknown option) goes through the full parser.
    """
    url_file: str | None = None
    rest = list(words)
    if rest and rest[0] == "--url-file" and len(rest) >= 2:
        url_file, rest = rest[1], rest[2:]
    elif rest and rest[0].startswith("--url-file="):
        url_file, rest = rest[0].split("=", 1)[1], rest[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif rest and rest[0].startswith("-"):
        return None
    if not rest or url_file == "":
        return None
    return rest, url_file


def add_parser(subparsers: Any) -> None:
    import argparse  # noqa: PLC0415 - the common forms of run never need it (see fast_parse)

    parser = subparsers.add_parser(
        "run",
        help="run a program with every MCP server it builds instrumented (zero code)",
        description=(
            "Run COMMAND with otel-perf configured from the environment and every mcp/FastMCP "
            "server it creates instrumented, e.g. `otel-perf run -- python my_server.py`."
        ),
    )
    parser.add_argument(
        "--url-file",
        metavar="PATH",
        help="write the metrics endpoint's base URL to PATH once it listens",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program and its arguments")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        usage = "otel-perf run: no command given (usage: otel-perf run -- python server.py)"
        print(usage, file=sys.stderr)  # noqa: T201
        return 2
    return run(command, args.url_file)
