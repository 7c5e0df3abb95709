"""The MCP measurement policy, on the SDKs' real exception classes (no server, no client).

What is checked: the innermost cause behind any number of SDK wrapper layers, client mistakes
(however they are delivered) are never failures, which names become tools, and sessions with
their duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import fastmcp.exceptions as fastmcp_errors
import pydantic
import pytest
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError

import otel_perf
from otel_perf import _semconv as n
from otel_perf._integrations import mcp_policy as policy


def chain(*layers: Callable[[], BaseException]) -> BaseException:
    """Raise the first layer, then each next one ``from`` the previous; return the outermost."""
    caught: BaseException | None = None
    for make in layers:
        try:
            if caught is None:
                raise make()
            raise make() from caught
        except BaseException as exc:
            caught = exc
    assert caught is not None
    return caught


def zoneinfo_error() -> BaseException:
    try:
        ZoneInfo("Mars/Olympus")
    except ZoneInfoNotFoundError as exc:
        return exc
    raise AssertionError("Mars/Olympus exists")


def validation_error() -> pydantic.ValidationError:
    class Args(pydantic.BaseModel):
        timezone: str

    try:
        Args.model_validate({"timezone": 5})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("5 validated as a string")


def test_innermost_cause_through_the_two_mcpserver_wrappers() -> None:
    # What MCPServer does with mcp-server-time's `raise ToolError(...) from e`.
    cause = zoneinfo_error()
    exc = chain(lambda: cause, lambda: ToolError("Invalid timezone"), lambda: ToolError("Error"))
    assert policy.innermost_cause(exc) is cause
    assert policy.classify_exception(exc, wire=False) == policy.Outcome(
        error_type="ZoneInfoNotFoundError"
    )


def test_any_number_of_layers_and_every_sdk_wrapper() -> None:
    exc = chain(
        lambda: KeyError("x"),
        lambda: UnexpectedToolError("inner crash"),
        lambda: fastmcp_errors.ToolError("fastmcp"),
        lambda: ToolError("again"),
        lambda: UnexpectedToolError("outer"),
        lambda: MCPError(code=-32603, message="internal"),
    )
    # a server error code keeps its status code; error.type is the real cause
    assert policy.classify_exception(exc, wire=True) == policy.Outcome(
        error_type="KeyError", status_code="-32603"
    )


def raised(make: Callable[[], None]) -> BaseException:
    try:
        make()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def test_implicit_context_is_followed_and_a_bare_wrapper_is_its_own_cause() -> None:
    def suppressed() -> None:
        try:
            int("12:30x")
        except ValueError:
            raise ToolError("Invalid time format") from None

    def implicit() -> None:
        try:
            int("12:30x")
        except ValueError:
            raise ToolError("Invalid time format")  # noqa: B904 - the implicit context

    exc = raised(suppressed)
    assert policy.innermost_cause(exc) is exc
    assert type(policy.innermost_cause(raised(implicit))) is ValueError
    bare = chain(lambda: ToolError("Missing required argument"), lambda: ToolError("Error"))
    assert policy.classify_exception(bare, wire=False).error_type == "ToolError"
    assert policy.classify_exception(MCPError(code=-32001, message="t"), wire=True) == (
        policy.Outcome(error_type="-32001", status_code="-32001")
    )


def test_a_cycle_in_the_context_chain_terminates() -> None:
    first, second = ToolError("a"), ToolError("b")
    first.__context__, second.__context__ = second, first
    assert policy.innermost_cause(first) in (first, second)


def test_client_mistakes_are_never_failures() -> None:
    invalid = policy.Outcome(status_code="-32602", client_error=True)
    # MCPServer: ToolError from the pydantic error of argument validation (an isError result)
    arguments = chain(validation_error, lambda: ToolError("Error executing tool t"))
    assert policy.classify_exception(arguments, wire=False) == invalid
    # the SDK validating request params itself (a JSON-RPC error)
    assert policy.classify_exception(validation_error(), wire=True) == invalid
    # FastMCP's own ValidationError and NotFoundError (isError results)
    assert policy.classify_exception(fastmcp_errors.ValidationError("x"), wire=False) == invalid
    assert policy.classify_exception(fastmcp_errors.NotFoundError("t"), wire=False) == invalid
    # every client code as a JSON-RPC error, the 2026 protocol's three included (routing
    # headers that disagree, a client capability not declared, a version not served)
    for code in (-32700, -32600, -32601, -32602, -32002, -32020, -32021, -32022):
        outcome = policy.classify_exception(MCPError(code=code, message="m"), wire=True)
        assert outcome == policy.Outcome(status_code=str(code), client_error=True)
        assert policy.classify_code(code) == outcome
    assert invalid == policy.UNKNOWN_TOOL


def test_a_tool_raising_a_pydantic_error_is_a_server_failure() -> None:
    # The tool parsed something (not its arguments) and crashed: UnexpectedToolError wraps it.
    crash = chain(validation_error, lambda: UnexpectedToolError("Error executing tool t"))
    assert policy.classify_exception(crash, wire=False).error_type == "ValidationError"
    # The tool caught it and raised a ToolError, which the SDK wraps again.
    deliberate = chain(validation_error, lambda: ToolError("bad upstream"), lambda: ToolError("E"))
    assert policy.classify_exception(deliberate, wire=False).error_type == "ValidationError"


def test_wire_errors_get_internal_error_and_cancellation_is_a_failure() -> None:
    assert policy.classify_exception(ValueError("x"), wire=True) == policy.Outcome(
        error_type="ValueError", status_code="-32603"
    )
    assert policy.classify_exception(ValueError("x"), wire=False) == policy.Outcome(
        error_type="ValueError"
    )
    outcome = policy.classify_exception(asyncio.CancelledError(), wire=True)
    assert outcome == policy.Outcome(error_type="CancelledError")


def test_results() -> None:
    assert policy.classify_result({"isError": True}).error_type == policy.TOOL_ERROR
    assert policy.classify_result({"isError": "true"}) == policy.SUCCESS
    assert policy.classify_result({"content": []}) == policy.SUCCESS


def test_tool_gate_learns_from_lookups_listings_and_runs() -> None:
    registered = {"get_current_time"}
    gate = policy.ToolGate(lambda name: name in registered)
    assert gate.resolve("get_current_time") == "get_current_time"
    assert gate.resolve("delete_everything") == n.OTHER
    assert gate.resolve(None) == n.OTHER
    assert gate.resolve(["a", "list"]) == n.OTHER  # any JSON value, unhashable ones too
    assert gate.resolve({"a": 1}) == n.OTHER
    registered.add("added_at_run_time")  # a tool registered while the server runs
    assert gate.known("added_at_run_time")
    gate.learn_listing({"tools": [{"name": "listed"}, {"name": 5}, {}]})
    assert gate.known("listed")
    assert not gate.known("5")
    plain = policy.ToolGate()
    plain.learn_listing([type("Tool", (), {"name": "from_fastmcp"})()])
    assert plain.known("from_fastmcp")
    assert not plain.known("other")


def test_a_broken_lookup_warns_once_and_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    def broken(name: str) -> bool:
        raise RuntimeError(name)

    gate = policy.ToolGate(broken)
    gate.learn_listing({"tools": [{"name": "listed"}]})
    assert not gate.known("a")
    assert not gate.known("b")
    assert gate.known("listed")
    assert sum("tool lookup failed" in r.getMessage() for r in caplog.records) == 1


def test_unserved_methods_fold_into_other() -> None:
    not_found = policy.classify_exception(MCPError(code=-32601, message="x"), wire=True)
    assert policy.request_method("made/up", False, not_found) == n.OTHER
    assert policy.request_method("prompts/list", False, not_found) == "prompts/list"
    assert policy.request_method("notifications/made-up", True, policy.SUCCESS) == n.OTHER


def session_points() -> list[Any]:
    data = otel_perf.configure().pipeline.collect()
    assert data is not None
    return [
        point
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == n.MCP_SERVER_SESSION_DURATION
        for point in metric.data.data_points
    ]


def test_a_session_is_counted_once_and_its_duration_recorded_when_it_ends() -> None:
    recorder = otel_perf.configure().pipeline.recorder
    tracker = policy.SessionTracker()
    callbacks: list[Callable[[], None]] = []

    class Connection:
        """Stands for the SDK's per-connection object (held weakly)."""

    connection = Connection()
    tracker.opened(recorder, connection, callbacks.append, "pipe")
    tracker.opened(recorder, connection, callbacks.append, "pipe")  # a repeated initialize
    assert otel_perf.get_all_metrics()["system_metrics"]["active_sessions"] == 1
    assert len(callbacks) == 1
    callbacks[0]()
    callbacks[0]()  # the SDK runs it once; a second run changes nothing
    assert otel_perf.get_all_metrics()["system_metrics"]["active_sessions"] == 0
    (point,) = session_points()
    assert point.count == 1
    assert dict(point.attributes) == {n.NETWORK_TRANSPORT: "pipe"}


def test_a_session_whose_close_cannot_be_registered_is_not_counted() -> None:
    recorder = otel_perf.configure().pipeline.recorder

    def refuse(callback: Callable[[], None]) -> None:
        raise RuntimeError("closed")

    class Connection:
        pass

    policy.SessionTracker().opened(recorder, Connection(), refuse, None)
    assert otel_perf.get_all_metrics()["system_metrics"]["active_sessions"] == 0
    assert session_points() == []


def test_error_results_of_every_sdk_shape_are_recognised_on_every_call() -> None:
    """``isError`` of mcp 2.x / FastMCP results (``is_error``), mcp 1.x results (``isError``),
    raw mappings, and objects with neither; each asked twice (the second answer comes from the
    per-type memo of which attribute to read)."""
    from collections import UserDict

    from fastmcp.tools import ToolResult
    from mcp.types import CallToolResult, TextContent

    class OneX(pydantic.BaseModel):  # the mcp 1.x spelling
        isError: bool = False  # the wire name, as mcp 1.x spells it

    content = [TextContent(type="text", text="x")]
    cases: list[tuple[object, bool]] = [
        (CallToolResult(content=content, is_error=True), True),
        (CallToolResult(content=content), False),
        (ToolResult(content="x"), False),
        (OneX(isError=True), True),
        (OneX(), False),
        ({"isError": True}, True),
        ({"content": []}, False),
        (UserDict({"isError": True}), True),
        (object(), False),
    ]
    for _ in range(2):
        for result, expected in cases:
            assert policy.is_error_result(result) is expected, result
