#!/usr/bin/env python3
"""Developer entry point: sets up ./.venv by itself, then runs the demo or the test suite.

    python3 dev.py demo [demo options]   # the demo (see `otel-perf demo --help`)
    python3 dev.py test [pytest options] # ruff, mypy --strict, then the whole pytest suite,
                                         # including the mcp 1.x suite in its own environments
    python3 dev.py bench [options]       # the benchmarks (and ./.venv-mcp1 for their mcp 1.x
                                         # rows); writes benchmarks/RESULTS.md

Only Python 3.10+ and access to PyPI are needed. The virtual environment is rebuilt when
pyproject.toml changes.

The main environment (./.venv) has the newest SDKs (mcp 2.x, FastMCP 4.x). The mcp 1.x suite
(tests/integration/mcp1: mcp 1.x servers, FastMCP 3.x, mcp-server-calculator) needs the older
generation, which cannot share an environment with the newer one, so `test` also builds
./.venv-mcp1 (mcp 1.30) and ./.venv-mcp126 (mcp 1.26) and runs that suite in each. It runs when
no test path is given, or when a given path is inside tests/integration/mcp1 (which then runs
only there).

``test`` also needs three Debian packages the tests drive for real (Prometheus for promtool,
Chromium for the dashboard's browser test, valgrind for the benchmark's instruction counts):
run as root, it installs them; otherwise it says
exactly what to install, and the tests that need them fail saying so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".otel-perf-installed"

#: The mcp 1.x suite and the environments it runs in: (directory, the mcp release it pins).
MCP1_TESTS = "tests/integration/mcp1"
NO_TESTS_SELECTED = 5
MCP1_VENVS = ((ROOT / ".venv-mcp1", "mcp==1.30.*"), (ROOT / ".venv-mcp126", "mcp==1.26.*"))

#: Commands the tests run -> the Debian package that provides them. Installing them starts no
#: service.
SYSTEM_PACKAGES = {"promtool": "prometheus", "chromium": "chromium", "valgrind": "valgrind"}


def _run(*cmd: str | Path) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def _python(venv_dir: Path) -> Path:
    return (
        venv_dir
        / ("Scripts" if os.name == "nt" else "bin")
        / ("python.exe" if os.name == "nt" else "python")
    )


def ensure_venv(venv_dir: Path = VENV, extra: str = "dev", *pins: str) -> Path:
    """Create or refresh ``venv_dir`` with ``-e .[extra]`` and ``pins``; returns its python."""
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py may be run by an older python3
        raise SystemExit("otel-perf needs Python 3.10 or newer")
    python = _python(venv_dir)
    stamp = venv_dir / ".otel-perf-installed"
    recipe = (ROOT / "pyproject.toml").read_bytes() + repr((extra, pins)).encode()
    wanted = hashlib.sha256(recipe).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    if not python.exists():
        print(f"creating {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    steps = [
        (python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"),
        (python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{extra}]", *pins),
    ]
    for step in steps:
        if _run(*step) != 0:
            raise SystemExit("installing the environment failed (see pip's output above)")
    stamp.write_text(wanted)
    return python


def _split_mcp1(args: list[str]) -> tuple[list[str], list[str], bool, bool]:
    """Split pytest ``args``: (main args, mcp1 args, run the main suite, run the mcp1 suite)."""
    paths = [a for a in args if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    mcp1_paths = [
        a for a in paths if Path(a.split("::")[0]).resolve().is_relative_to(ROOT / MCP1_TESTS)
    ]
    options = [a for a in args if a not in paths]
    if not paths:
        return args, [*options, MCP1_TESTS], True, True
    main_args = [a for a in args if a not in mcp1_paths]
    return main_args, [*options, *mcp1_paths], len(mcp1_paths) < len(paths), bool(mcp1_paths)


def missing_system_packages(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The Debian packages of :data:`SYSTEM_PACKAGES` whose command is not on ``PATH``."""
    return sorted({package for command, package in SYSTEM_PACKAGES.items() if not which(command)})


def install_hint(missing: list[str]) -> str:
    """What to tell someone who cannot install ``missing`` here (not root)."""
    names = " ".join(missing)
    return (
        f"dev.py: the Debian package(s) {names} are missing, and only root can install them. "
        f"Install them with:\n    sudo apt-get install --no-install-recommends {names}\n"
        "(or run `python3 dev.py test` as root, which installs them). Until then the tests that "
        "use them fail, each saying what is missing."
    )


def ensure_system_packages(
    euid: int | None = None,
    which: Callable[[str], str | None] = shutil.which,
    run: Callable[..., int] | None = None,
) -> str | None:
    """Install the missing system packages as root; otherwise return (and print) the hint."""
    missing = missing_system_packages(which)
    if not missing:
        return None
    if euid is None:
        euid = os.geteuid() if hasattr(os, "geteuid") else -1
    if euid == 0 and which("apt-get"):
        run = run or _run
        os.environ.setdefault("DEBIAN_FRONTEND", "noninteractive")
        if run("apt-get", "update", "-qq") == 0:
            run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing)
        missing = missing_system_packages(which)
        if not missing:
            return None
    message = install_hint(missing)
    print(message, file=sys.stderr, flush=True)
    return message


def test(args: list[str]) -> int:
    ensure_system_packages()
    checks = [
        (PYTHON, "-m", "ruff", "check", "otel_perf", "tests", "benchmarks", "dev.py"),
        (PYTHON, "-m", "ruff", "format", "--check", "otel_perf", "tests", "benchmarks", "dev.py"),
        (PYTHON, "-m", "mypy", "--strict", "otel_perf", "tests/unit/test_typed_usage.py"),
    ]
    failed = [" ".join(map(str, c[2:4])) for c in checks if _run(*c) != 0]
    main_args, mcp1_args, run_main, run_mcp1 = _split_mcp1(args)
    codes = []
    if run_main:
        codes.append(_run(PYTHON, "-m", "pytest", *main_args))
    if run_mcp1:
        for venv_dir, pin in MCP1_VENVS:
            python = ensure_venv(venv_dir, "dev-mcp1", pin)
            codes.append(_run(python, "-m", "pytest", *mcp1_args))
    # pytest's 5 is "no test selected": fine for one suite when `-k`/`-m` picks tests of the other.
    ran = [c for c in codes if c != NO_TESTS_SELECTED] or codes
    code = next((c for c in ran if c != 0), 0)
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
        # The request-path section also measures the mcp 1.x generation, in its environment.
        ensure_venv(*MCP1_VENVS[0][:1], "dev-mcp1", MCP1_VENVS[0][1])
        return _run(PYTHON, "-m", "benchmarks", *argv[1:])
    return test(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
