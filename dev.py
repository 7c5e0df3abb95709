#!/usr/bin/env python3
"""Developer entry point: sets up ./.venv by itself, then runs the demo or the test suite.

    python3 dev.py demo [demo options]   # the demo (see `otel-perf demo --help`)
    python3 dev.py test [pytest options] # ruff, mypy --strict, then the whole pytest suite
    python3 dev.py bench [options]       # the benchmarks; writes benchmarks/RESULTS.md

Only Python 3.10+ and access to PyPI are needed. The virtual environment is rebuilt when
pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".otel-perf-installed"


def _run(*cmd: str | Path) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def ensure_venv() -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py may be run by an older python3
        raise SystemExit("otel-perf needs Python 3.10 or newer")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    steps = [
        (PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"),
        (PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"),
    ]
    for step in steps:
        if _run(*step) != 0:
            raise SystemExit("installing the environment failed (see pip's output above)")
    STAMP.write_text(wanted)


def test(args: list[str]) -> int:
    checks = [
        (PYTHON, "-m", "ruff", "check", "otel_perf", "tests", "benchmarks", "dev.py"),
        (PYTHON, "-m", "ruff", "format", "--check", "otel_perf", "tests", "benchmarks", "dev.py"),
        (PYTHON, "-m", "mypy", "--strict", "otel_perf", "tests/unit/test_typed_usage.py"),
    ]
    failed = [" ".join(map(str, c[2:4])) for c in checks if _run(*c) != 0]
    code = _run(PYTHON, "-m", "pytest", *args)
    if failed:
        print(f"static checks failed: {', '.join(failed)}", file=sys.stderr)
        return code or 1
    return code


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    if argv[0] == "demo":
        return _run(PYTHON, "-m", "otel_perf", "demo", *argv[1:])
    if argv[0] == "bench":
        return _run(PYTHON, "-m", "benchmarks", *argv[1:])
    return test(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
