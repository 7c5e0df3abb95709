"""Loaded by Python at startup when ``otel-perf run`` puts this directory on ``PYTHONPATH``.

It runs the ``sitecustomize`` this one shadows, if there is one further along ``sys.path``
(Python only imports the first it finds), then starts otel-perf's zero-code instrumentation.
That order matters: a shadowed ``sitecustomize`` such as ``opentelemetry-instrument``'s sets the
application's global ``MeterProvider``, which otel-perf then records through.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path


def _run_shadowed_sitecustomize() -> None:
    here = Path(__file__).resolve().parent
    rest = [p for p in sys.path if p and Path(p).resolve() != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _bootstrap() -> None:
    try:
        from otel_perf._integrations.autoinstrument import bootstrap  # noqa: PLC0415 - may be missing
    except ImportError as exc:  # this interpreter does not have otel-perf installed
        print(f"otel-perf: not instrumenting ({exc})", file=sys.stderr)  # noqa: T201
    else:
        bootstrap()


def _start() -> None:
    try:
        _run_shadowed_sitecustomize()
    finally:  # a failing sitecustomize is still reported by Python, after otel-perf started
        _bootstrap()


_start()
