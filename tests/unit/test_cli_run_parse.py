"""``otel-perf run``'s fast path parses its usual forms exactly as the full parser does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from otel_perf._cli import run
from otel_perf._cli.main import build_parser
from otel_perf._integrations.bootstrap_paths import BOOTSTRAPPED_ENV

USUAL = [
    ["--", "python", "server.py"],
    ["python", "server.py", "--port", "1"],
    ["--url-file", "u.txt", "--", "python", "server.py"],
    ["--url-file", "u.txt", "python", "-u", "server.py"],
    ["--url-file=u.txt", "--", "python", "--", "x"],
    ["python", "--", "x"],
    ["--log-level", "DEBUG", "--", "python", "server.py"],
    ["--url-file", "u.txt", "--log-level=info", "python", "server.py"],
]


@pytest.mark.parametrize("words", USUAL)
def test_usual_forms_match_argparse(words: list[str]) -> None:
    args = build_parser((run.__name__,)).parse_args(["run", *words])
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    assert run.fast_parse(words) == (command, args.url_file, args.run_log_level)


@pytest.mark.parametrize(
    "words",
    [
        [],
        ["--"],
        ["--help"],
        ["-h"],
        ["--url-file"],
        ["--url-file=", "python"],
        ["--x", "py"],
        ["--log-level", "LOUD", "python"],  # the full parser says what is wrong
        ["--log-level", "DEBUG", "--log-level", "INFO", "python"],
    ],
)
def test_anything_else_is_left_to_argparse(words: list[str]) -> None:
    assert run.fast_parse(words) is None


# --- which commands the launcher runs in its own process (no second interpreter) -------------


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv(BOOTSTRAPPED_ENV, raising=False)
    # a launcher started without interpreter options, whatever options pytest runs with
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "/venv/bin/otel-perf", "run"])
    path = tmp_path / "server.py"
    path.write_text("pass\n")
    return str(path)


def test_a_script_of_this_interpreter_runs_here(script: str) -> None:
    env = dict(os.environ)
    assert run.script_run_here([sys.executable, script, "--port", "1"], env) == script
    # found on PATH as execvpe would find it
    name = os.path.basename(sys.executable)
    on_path = {**env, "PATH": os.path.dirname(sys.executable)}
    assert run.script_run_here([name, script], on_path) == script


@pytest.mark.parametrize(
    "command",
    [
        ["{python}", "-u", "{script}"],  # interpreter options: exec'd as asked
        ["{python}", "-m", "http.server"],
        ["{python}", "-c", "pass"],
        ["{python}", "{script}.missing"],  # Python reports it
        ["{python}"],
        ["/usr/bin/env", "{script}"],
        ["{other}", "{script}"],  # another interpreter (a venv's python links to its base)
    ],
)
def test_anything_else_is_execd(command: list[str], script: str, tmp_path: Path) -> None:
    other = tmp_path / "python3"
    other.symlink_to(sys.executable)
    words = [w.format(python=sys.executable, script=script, other=other) for w in command]
    assert run.script_run_here(words, dict(os.environ)) is None


def test_a_launcher_under_the_bootstrap_execs(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BOOTSTRAPPED_ENV, "1")
    assert run.script_run_here([sys.executable, script], dict(os.environ)) is None


@pytest.mark.parametrize(
    ("orig_argv", "here"),
    [
        (["python", "/venv/bin/otel-perf", "run"], True),
        (["python", "-m", "otel_perf", "run"], True),
        (["python", "-O", "-m", "otel_perf", "run"], False),  # -O must not reach the script
        (["python", "-I", "/venv/bin/otel-perf", "run"], False),
    ],
)
def test_a_launcher_started_with_interpreter_options_execs(
    script: str, monkeypatch: pytest.MonkeyPatch, orig_argv: list[str], here: bool
) -> None:
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    found = run.script_run_here([sys.executable, script], dict(os.environ))
    assert found == (script if here else None)
