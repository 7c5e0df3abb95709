"""A document handed to a Python caller is never the one an HTTP request encodes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

import otel_perf


def test_a_caller_mutating_its_document_cannot_change_what_others_are_served() -> None:
    metrics = otel_perf.configure(json_port=0)
    otel_perf.record_tool_call("t", True, 1.0)
    in_collection = threading.Event()

    def slow(_options: CallbackOptions) -> Iterable[Observation]:
        in_collection.set()
        time.sleep(0.3)  # keep the collection running while a second caller joins it
        return []

    assert metrics.meter_provider is not None
    metrics.meter_provider.get_meter("test").create_observable_gauge("slow", callbacks=[slow])
    mutated: list[dict[str, Any]] = []

    def python_caller() -> None:
        document = otel_perf.get_all_metrics()
        document["tool_metrics"]["t"]["total_calls"] = -1  # the caller's own business
        mutated.append(document)

    bodies: list[bytes] = []
    leader = threading.Thread(target=python_caller)
    leader.start()
    assert in_collection.wait(10)
    joiner = threading.Thread(target=lambda: bodies.append(metrics.snapshot_body()))
    joiner.start()
    leader.join(10)
    joiner.join(10)
    assert mutated
    assert bodies
    served = json.loads(bodies[0])
    assert served["tool_metrics"]["t"]["total_calls"] == 1
    # A lone caller still gets the document itself (no copy when nobody shares it).
    alone = otel_perf.get_all_metrics()
    assert alone["tool_metrics"]["t"]["total_calls"] == 1
