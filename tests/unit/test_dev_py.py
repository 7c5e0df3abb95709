"""dev.py test: which arguments go to the main suite and which to the mcp 1.x suite."""

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


def test_no_path_runs_both_suites() -> None:
    dev = load_dev()
    main, mcp1, run_main, run_mcp1 = dev._split_mcp1(["-k", "percentiles", "-q"])
    assert (run_main, run_mcp1) == (True, True)
    assert main == ["-k", "percentiles", "-q"]
    assert mcp1 == ["-k", "percentiles", "-q", dev.MCP1_TESTS]


def test_paths_choose_the_suites(monkeypatch: pytest.MonkeyPatch) -> None:
    dev = load_dev()
    monkeypatch.chdir(ROOT)  # dev.py runs from the checkout; paths are relative to it
    assert dev._split_mcp1(["tests/unit", "-q"])[2:] == (True, False)
    _, mcp1, run_main, run_mcp1 = dev._split_mcp1(["tests/integration/mcp1", "-x"])
    assert (run_main, run_mcp1) == (False, True)
    assert mcp1 == ["-x", "tests/integration/mcp1"]
    both = dev._split_mcp1(["tests/unit", "tests/integration/mcp1"])
    assert both[0] == ["tests/unit"]
    assert both[2:] == (True, True)
