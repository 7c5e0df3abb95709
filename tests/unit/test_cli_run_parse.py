"""``otel-perf run``'s fast path parses its usual forms exactly as the full parser does."""

from __future__ import annotations

import pytest

from otel_perf._cli import run
from otel_perf._cli.main import build_parser

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
