"""dev.py's system-package step: installs as root, otherwise says exactly what to install."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("otel_perf_dev_script", ROOT / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_root_the_exact_install_command_is_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dev = load_dev()
    ran: list[tuple[str, ...]] = []
    message = dev.ensure_system_packages(
        euid=1000, which=lambda command: None, run=lambda *cmd: ran.append(cmd) or 0
    )
    assert ran == []  # nothing is attempted without root
    assert message is not None
    assert "sudo apt-get install --no-install-recommends chromium prometheus" in message
    assert message in capsys.readouterr().err


def test_as_root_the_missing_packages_are_installed() -> None:
    dev = load_dev()
    installed: set[str] = set()
    ran: list[tuple[str, ...]] = []

    def which(command: str) -> str | None:
        if command == "apt-get":
            return "/usr/bin/apt-get"
        package = dev.SYSTEM_PACKAGES.get(command)
        return f"/usr/bin/{command}" if package in installed else None

    def run(*command: str) -> int:
        ran.append(command)
        if command[1] == "install":
            installed.update(command[5:])
        return 0

    assert dev.ensure_system_packages(euid=0, which=which, run=run) is None
    assert ran == [
        ("apt-get", "update", "-qq"),
        (
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
            "prometheus",
            "valgrind",
        ),
    ]


def test_nothing_to_do_when_everything_is_there() -> None:
    dev = load_dev()
    assert dev.ensure_system_packages(euid=1000, which=lambda c: f"/usr/bin/{c}") is None
    assert dev.missing_system_packages(lambda c: None) == ["chromium", "prometheus", "valgrind"]


def test_ci_runs_nothing_but_the_readme_command() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[-1] == "exec python3 dev.py test"
    assert not any("apt-get" in line for line in lines)
    assert "python3 dev.py test" in (ROOT / "README.md").read_text()
