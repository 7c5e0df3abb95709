"""``otel-perf run [--url-file PATH] -- COMMAND [ARGS...]``: run a program with metrics on.

Zero code changes: the command starts with otel-perf's bootstrap directory first on
``PYTHONPATH``; its ``sitecustomize`` configures otel-perf from the environment and
instruments every ``mcp`` / FastMCP server the program builds (see
:mod:`otel_perf._integrations.autoinstrument`). On POSIX the command replaces this
process (``exec``), so its stdin/stdout are the caller's own: an MCP client can spawn
``otel-perf run -- python server.py`` as a stdio server.

One case skips the second interpreter: a script run by this very interpreter (the same
executable path, no interpreter options, e.g. ``otel-perf run -- /venv/bin/python server.py``
from that venv's ``otel-perf``). Starting Python again would only repeat what this process has
already done (``site``, the ``.pth`` files, the user's ``sitecustomize``): about 30 million
instructions, a ninth of what ``otel-perf run`` added to a stdio server's start-up. So the
launcher sets up what the new interpreter would have (environment, ``sys.argv``, ``sys.path``,
a fresh ``__main__``), runs the bootstrap and then the script, in this process (see
:func:`run_here`). Only the process's own command line (``ps``, ``sys.orig_argv``) still shows
``otel-perf run``.
"""

from __future__ import annotations

import os
import sys

from otel_perf._integrations.bootstrap_paths import (
    BOOTSTRAP_DIR,
    BOOTSTRAPPED_ENV,
    LEVEL_NAMES,
    LOG_LEVEL_ENV,
    SERVICE_NAME_ENV,
    URL_FILE_ENV,
    has_service_name,
)

TYPE_CHECKING = False  # not typing's: see otel_perf._cli.main
if TYPE_CHECKING:
    import argparse
    from typing import Any


#: Interpreter options that take a value (the next argument when not attached).
_OPTIONS_WITH_VALUE = frozenset("WXQ")

#: Interpreter flags that keep ``sitecustomize`` (and so otel-perf's bootstrap) from running:
#: -I isolated mode and -E ignore ``PYTHONPATH``; -S skips the ``site`` module.
_SKIPS_BOOTSTRAP = {"I": "-I (isolated mode)", "E": "-E", "S": "-S"}


def _is_python(name: str) -> bool:
    """``python``, ``python3``, ``python3.12``, ``pypy3``, ``python.exe``... (no ``re``: the
    launcher's start-up is on a stdio server's path to its first handshake)."""
    name = name.removesuffix(".exe")
    for prefix in ("python", "pypy"):
        if name.startswith(prefix):
            version = name[len(prefix) :]
            return all(part.isdigit() for part in version.split(".")) if version else True
    return False


def _python_options(command: list[str]) -> tuple[list[str], list[str]] | None:
    """(interpreter flag letters, the rest) when ``command`` runs Python; else ``None``."""
    if not command or not _is_python(os.path.basename(command[0])):
        return None
    flags: list[str] = []
    args = command[1:]
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--" or not arg.startswith("-") or arg == "-" or arg.startswith("--"):
            break
        letters = arg[1:]
        for position, letter in enumerate(letters):
            if letter in "mc":  # -m module / -c code: what follows is the program
                return flags, [f"-{letter}", letters[position + 1 :] or "", *args[index + 1 :]]
            flags.append(letter)
            if letter in _OPTIONS_WITH_VALUE:
                if position == len(letters) - 1:
                    index += 1  # the value is the next argument
                break
        index += 1
    return flags, args[index:]


def program_name(command: list[str]) -> str:
    """The service name ``otel-perf run`` gives a program: the script or module Python runs
    (``server`` for ``python server.py``, ``pkg.app`` for ``python -m pkg.app``), else the
    command's own name (``uvicorn``, ``fastmcp``).

    >>> program_name(["python3", "-u", "servers/weather.py", "--port", "1"])
    'weather'
    >>> program_name(["python", "-m", "my_pkg.server"])
    'my_pkg.server'
    >>> program_name(["/usr/local/bin/fastmcp", "run", "x.py"])
    'fastmcp'
    """
    parsed = _python_options(command)
    if parsed is None:
        return os.path.basename(command[0]) or "unknown_service"
    _flags, rest = parsed
    if rest[:1] == ["-m"]:
        module = rest[1] or (rest[2] if len(rest) > 2 else "")
        return module or os.path.basename(command[0])
    if rest[:1] == ["-c"] or not rest:
        return os.path.basename(command[0])
    return _stem(rest[0]) or os.path.basename(command[0])


def bootstrap_skipped(command: list[str]) -> str | None:
    """The flag that keeps the bootstrap from running in ``command``, if any (e.g. ``-I``)."""
    parsed = _python_options(command)
    if parsed is None:
        return None
    for letter in parsed[0]:
        if letter in _SKIPS_BOOTSTRAP:
            return _SKIPS_BOOTSTRAP[letter]
    return None


def command_environment(
    url_file: str | None, command: list[str] | None = None, log_level: str | None = None
) -> dict[str, str]:
    """This process's environment with the bootstrap directory first on ``PYTHONPATH``,
    the service named after the program unless the environment names it, and otel-perf's
    log level for the program when one was asked for."""
    env = dict(os.environ)
    env.pop(BOOTSTRAPPED_ENV, None)  # the command is the top of its own process tree
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{BOOTSTRAP_DIR}{os.pathsep}{existing}" if existing else str(BOOTSTRAP_DIR)
    if url_file:
        env[URL_FILE_ENV] = os.path.abspath(url_file)
    if command and not has_service_name(env):
        env[SERVICE_NAME_ENV] = program_name(command)
    if log_level:
        env[LOG_LEVEL_ENV] = log_level.upper()
    return env


def run(command: list[str], url_file: str | None = None, log_level: str | None = None) -> int:
    """Run ``command`` instrumented; returns its exit code (on POSIX it never returns)."""
    skipped = bootstrap_skipped(command)
    if skipped is not None:
        print(  # noqa: T201
            f"otel-perf run: warning: python {skipped} ignores PYTHONPATH or skips site, so "
            "otel-perf's bootstrap never runs and nothing is instrumented; run without it, or "
            "call otel_perf.configure() and instrument() in the program itself",
            file=sys.stderr,
            flush=True,
        )
    env = command_environment(url_file, command, log_level)
    script = script_run_here(command, env)
    if script is not None:
        return run_here(script, command[2:], env)
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


def script_run_here(command: list[str], env: dict[str, str]) -> str | None:
    """The script ``command`` runs when this interpreter can run it itself (see the module
    doc), else ``None`` (the command is exec'd).

    Only ``python SCRIPT [ARGS...]``: the interpreter is this one by its unresolved path (a venv's
    ``python`` is a link to the base interpreter, which is another environment), no interpreter
    option (``-u``, ``-X``, ``-m``, ``-c``...) for the script nor for this launcher (``-O``,
    ``-I``...), a script that is a file, and a launcher not itself under otel-perf's bootstrap.
    """
    if os.name != "posix" or len(command) < 2 or BOOTSTRAPPED_ENV in os.environ:
        return None
    if _launcher_options():  # e.g. python -O -m otel_perf: the script must not inherit them
        return None
    script = command[1]
    if script.startswith("-") or not _is_python(os.path.basename(command[0])):
        return None
    executable = _which(command[0], env)
    if executable is None or os.path.abspath(executable) != os.path.abspath(sys.executable):
        return None
    return script if os.path.isfile(script) else None


def _launcher_options() -> list[str]:
    """The interpreter options this launcher was started with (``-m otel_perf`` is none)."""
    options = []
    for arg in sys.orig_argv[1:]:
        if not arg.startswith("-") or arg == "-m":
            break
        options.append(arg)
    return options


def _which(name: str, env: dict[str, str]) -> str | None:
    """Where ``execvpe`` would find ``name`` (no ``shutil``: the launcher stays small)."""
    if os.sep in name:
        return name
    for directory in os.get_exec_path(env):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_here(script: str, args: list[str], env: dict[str, str]) -> int:
    """Run ``script`` in this process as ``python script args...`` would run it; its exit code.

    What the new interpreter would differ in is made so first: the environment (the bootstrap
    on ``PYTHONPATH`` for the program's own children), ``sys.argv``, ``sys.path`` (the
    bootstrap directory first, as ``PYTHONPATH`` puts it, then the script's directory before
    it once the bootstrap ran, as Python adds it after ``site``) and a fresh ``__main__``. The
    bootstrap runs as its ``sitecustomize`` would have; the user's own ``sitecustomize`` already
    ran when this interpreter started, with the same environment otherwise. An uncaught
    exception is reported as Python reports it (``sys.excepthook``, exit code 1);
    ``SystemExit`` and ``KeyboardInterrupt`` go on to the interpreter, as in any program.
    """
    os.environ.update(env)  # no BOOTSTRAPPED_ENV in either (see script_run_here)
    path = os.path.abspath(script)
    sys.argv = [script, *args]
    # -P / PYTHONSAFEPATH (3.11+): Python puts no script directory first.
    safe_path = bool(getattr(sys.flags, "safe_path", False))
    if not safe_path:
        del sys.path[0]  # the launcher's own directory (or the working one, for python -m)
    sys.path.insert(0, BOOTSTRAP_DIR)
    from otel_perf._integrations.autoinstrument import bootstrap  # noqa: PLC0415

    bootstrap()
    if not safe_path:
        sys.path.insert(0, os.path.dirname(os.path.realpath(script)))
    import builtins  # noqa: PLC0415 - built in
    from importlib.machinery import SourceFileLoader  # noqa: PLC0415 - loaded at startup

    main = type(sys)("__main__")
    main.__dict__.update(
        __file__=path,
        __cached__=None,
        __builtins__=builtins,
        __annotations__={},
        __loader__=SourceFileLoader("__main__", path),
    )
    sys.modules["__main__"] = main
    try:
        with open(path, "rb") as source:
            text = source.read()
    except OSError as exc:  # as Python says it
        print(  # noqa: T201
            f"{sys.executable}: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    try:
        # dont_inherit: this module's own ``from __future__ import annotations`` must not
        # turn the script's annotations into strings.
        code = compile(text, path, "exec", dont_inherit=True)
        exec(code, main.__dict__)  # noqa: S102 - running the user's program is the job
    except Exception as exc:
        # Without this function's frame, as Python's own report starts at the script's.
        traceback = exc.__traceback__
        exc.__traceback__ = traceback.tb_next if traceback is not None else None
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return 1
    return 0


def _stem(path: str) -> str:
    name = os.path.basename(path)
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


def level_name(raw: str | None) -> str | None:
    """A ``logging`` level name from ``raw`` (any case), or ``None`` if it names none."""
    if raw is None:
        return None
    name = raw.strip().upper()
    return name if name in LEVEL_NAMES or name.isdigit() else None


def fast_parse(words: list[str]) -> tuple[list[str], str | None, str | None] | None:
    """``(command, url_file, log_level)`` from the words after ``run``, or ``None`` to let
    argparse do it.

    ``otel-perf run`` is on the path to a stdio server's first handshake; its usual forms
    (``[--url-file PATH] [--log-level LEVEL] [--] COMMAND...``) need neither argparse nor
    logging. Anything else (``--help``, a missing command, an unknown option or level) goes
    through the full parser.
    """
    options: dict[str, str] = {}
    rest = list(words)
    while rest and rest[0].startswith("--") and rest[0] != "--":
        name, equals, value = rest[0].partition("=")
        if name not in ("--url-file", "--log-level") or name in options:
            return None
        if equals:
            options[name], rest = value, rest[1:]
        elif len(rest) >= 2:
            options[name], rest = rest[1], rest[2:]
        else:
            return None
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif rest and rest[0].startswith("-"):
        return None
    url_file = options.get("--url-file")
    log_level = options.get("--log-level")
    if not rest or url_file == "" or (log_level is not None and level_name(log_level) is None):
        return None
    return rest, url_file, log_level


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
    parser.add_argument(
        "--log-level",
        dest="run_log_level",
        metavar="LEVEL",
        help="otel-perf's log level in the program (its messages go to stderr); the global "
        "--log-level does the same",
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
    level = args.run_log_level or getattr(args, "log_level", None)
    if level is not None and level_name(level) is None:
        print(f"otel-perf run: unknown log level {level!r}", file=sys.stderr)  # noqa: T201
        return 2
    return run(command, args.url_file, level)
