"""One process of a group, started by the test through ``multiprocessing`` (so the test's
process is its supervisor): it joins, records, reads the merged numbers, and leaves.

Its own module, so a ``spawn`` child imports this and otel-perf only, not the test module.
"""

from __future__ import annotations

import json
from pathlib import Path

from otel_perf._extract import extract
from otel_perf._multiprocess.member import Member
from otel_perf._pipeline import Pipeline
from otel_perf._settings import Settings


def join_record_leave(directory: str, calls: int, sessions: int, result: str) -> None:
    """Join the group in ``directory``, record ``calls`` calls of ``t`` and ``sessions`` open
    sessions, write what the merged numbers say to ``result`` (JSON), then leave."""
    pipeline = Pipeline(Settings(json_enabled=False))
    member = Member("test", Path(directory), pipeline.collect)
    try:
        member.join()
        for _ in range(calls):
            pipeline.recorder.record_tool_call("t", True, 1.0)
        pipeline.recorder.set_active_sessions(sessions)
        merged = extract(member.merged(pipeline.collect))
        supervisor = member.supervisor
        Path(result).write_text(
            json.dumps(
                {
                    "calls": merged.tools["t"].total if "t" in merged.tools else 0,
                    "sessions": merged.active_sessions,
                    "supervisor": None if supervisor is None else supervisor.pid,
                }
            )
        )
    finally:
        member.stop(1.0)
        pipeline.shutdown(1.0)
