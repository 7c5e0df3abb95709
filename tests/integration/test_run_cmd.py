"""Zero-code: ``otel-perf run -- python server.py`` instruments an unmodified server.

A real MCP client spawns the launcher as its stdio server; the launcher runs the unmodified
server script with otel-perf's bootstrap (in its own process when the script's interpreter is
its own, else exec'd with the bootstrap on PYTHONPATH); the test reads the server's own metrics
endpoint over HTTP (port 0, URL from ``--url-file``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_perf._cli.run import bootstrap_skipped, program_name
from tests.support.servers import harness

PLAIN_SERVER = harness.HERE / "plain_server.py"
OTEL_PERF = str(Path(sys.executable).parent / "otel-perf")

#: The three ways to start it: the console script and ``python -m otel_perf``.
LAUNCHERS = {"script": [OTEL_PERF], "module": [sys.executable, "-m", "otel_perf"]}


@pytest.mark.parametrize(
    ("kind", "launcher"),
    [("mcpserver", "module"), ("lowlevel", "script"), ("fastmcp", "script")],
)
async def test_unmodified_stdio_server_is_measured(
    kind: str, launcher: str, tmp_path: Path
) -> None:
    url_file = tmp_path / "url"
    sdk_file = tmp_path / "sdk-loaded-when-serving"
    command = [
        *LAUNCHERS[launcher],
        "run",
        "--url-file",
        str(url_file),
        "--",
        sys.executable,
        str(PLAIN_SERVER),
        kind,
    ]
    env = harness.child_env({"PLAIN_SERVER_SDK_FILE": str(sdk_file)})
    target = harness.stdio_target(kind, command, env)

    async def read() -> dict[str, object]:
        base = await harness.wait_for_file(url_file)
        return harness.fetch_json(f"{base}/metrics")

    async with harness.connect(kind, target, "legacy") as client:
        for x in range(2):
            assert await harness.call(kind, client, "ok", {"x": x}) == "ok"
        assert await harness.call(kind, client, "boom", {}) == harness.CRASH_OUTCOME[kind]
        assert await harness.call(kind, client, "flag_error", {}) == "is_error"
        document = await read()
    tools = document["tool_metrics"]
    # exact counts: a server built inside MCPServer/FastMCP is not instrumented a second time
    assert tools["ok"]["total_calls"] == 2
    assert tools["boom"]["error_types"] == {"ValueError": 1}
    assert tools["flag_error"]["error_types"] == {"tool_error": 1}
    assert document["system_metrics"]["active_sessions"] == 1
    # The handshake did not wait for the SDK: it starts after the first measurement.
    assert sdk_file.read_text() == "False"


def test_other_sitecustomize_still_runs_and_children_configure_on_first_use(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    )
    env = harness.child_env({"PYTHONPATH": f"{site}"})
    url_file = tmp_path / "url"
    child = "import otel_perf._state as s; print(s.runtime is None, s.instrumentation_installed)"
    program = (
        "import os, subprocess, sys, otel_perf._state as s\n"
        "print(s.runtime is not None)\n"
        "print(os.environ.get('PYTHONPATH'))\n"
        f"subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
    )
    result = subprocess.run(
        [OTEL_PERF, "run", "--url-file", str(url_file), sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    configured, pythonpath, in_child = result.stdout.splitlines()
    assert configured == "True"  # otel-perf was configured before the program ran
    # The program's own children (workers) keep the bootstrap: they install the hooks and
    # configure on first use, joining the program's server group (see "Many processes").
    assert pythonpath.split(os.pathsep)[1:] == [str(site)]
    assert in_child == "True True"
    assert marker.read_text() == "ran"
    assert url_file.read_text().startswith("http://127.0.0.1:")
    assert "otel-perf: metrics on http://127.0.0.1:" in result.stderr


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "--", "no-such-command-otel-perf"], 127, "command not found"),
        (["run"], 2, "no command given"),
    ],
)
def test_run_reports_bad_commands(argv: list[str], code: int, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_perf", *argv],
        env=harness.child_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code
    assert message in result.stderr


def test_the_launcher_loads_only_what_run_needs() -> None:
    # `otel-perf run` sits on the path to a stdio server's first handshake: before it execs the
    # server it must not load the other subcommands, the SDK or the recording code.
    script = (
        "import os, sys\n"
        "def fake_exec(file, args, env):\n"
        "    print(env['PYTHONPATH'])\n"
        "    print(' '.join(sorted(sys.modules)))\n"
        "    raise SystemExit(0)\n"
        "os.execvpe = fake_exec\n"
        "from otel_perf._cli.main import main\n"
        "main(['run', '--', 'python', 'server.py'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pythonpath, modules = done.stdout.splitlines()
    assert pythonpath.split(":")[0].endswith("bootstrap")
    loaded = modules.split()
    unwanted = (
        "otel_perf._cli.demo",
        "otel_perf._cli.top",
        "otel_perf._cli.view",
        "otel_perf._cli.fetch",
        "otel_perf._api",
        "otel_perf._recorder",
        "opentelemetry",
        "asyncio",
        "otel_perf._integrations.autoinstrument",
        "argparse",
        "logging",
    )
    assert [m for m in loaded if m.startswith(unwanted)] == []


#: What a program sees of how it was started (the last line tells how it ran).
PROBE = """\
import os, sys
print(sys.argv)
print(__file__, __name__, __spec__, __package__, type(__loader__).__name__)
print(sorted(globals()))
def typed(x: int) -> None: ...
print(sys.path[0], sys.modules["__main__"] is sys.modules[__name__], typed.__annotations__)
import otel_perf._state as s
print(s.runtime is not None, os.environ["PYTHONPATH"].split(os.pathsep)[0].endswith("bootstrap"))
if sys.argv[1:] == ["boom"]:
    raise ValueError("boom")
if sys.argv[1:] == ["exit"]:
    sys.exit(3)
print("run" in sys.orig_argv)
"""


@pytest.mark.parametrize("args", [["a", "-u"], ["boom"], ["exit"]])
def test_a_script_of_the_same_python_runs_in_the_launcher_as_python_runs_it(
    tmp_path: Path, args: list[str]
) -> None:
    # No second interpreter for `otel-perf run -- <this python> script.py`: the launcher runs
    # the script itself, and the script cannot tell (but for sys.orig_argv).
    script = tmp_path / "probe.py"
    script.write_text(PROBE)

    def start(*prefix: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, sys.executable, *flags, "probe.py", *args],
            env=harness.child_env({}),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    plain, ours = start(), start(OTEL_PERF, "run", "--")
    assert ours.returncode == plain.returncode == {"boom": 1, "exit": 3}.get(args[0], 0)
    plain_lines, our_lines = plain.stdout.splitlines(), ours.stdout.splitlines()
    # argv, __file__ and co., globals, sys.path[0], annotations evaluated (no __future__ of ours)
    assert our_lines[:4] == plain_lines[:4]
    assert plain_lines[4] == "False False"
    assert our_lines[4] == "True True"  # configured first; its children get the bootstrap
    if args == ["boom"]:  # reported as Python reports it, from the script's own frame
        traceback = ours.stderr[ours.stderr.index("Traceback") :]
        assert traceback == plain.stderr
    elif args != ["exit"]:
        assert our_lines[5] == "True"  # in the launcher's process
        with_flag = start(OTEL_PERF, "run", "--", flags=("-u",))
        assert with_flag.stdout.splitlines()[5] == "False"  # options: exec'd, as asked


SERVICE_PROGRAM = (
    "import sys, otel_perf\n"
    "from opentelemetry.sdk.resources import SERVICE_NAME\n"
    "provider = otel_perf.configure().meter_provider\n"
    "print(provider._sdk_config.resource.attributes[SERVICE_NAME])\n"
)


@pytest.mark.parametrize(
    ("extra_env", "expected"),
    [
        ({}, "weather_server"),
        ({"OTEL_SERVICE_NAME": "chosen"}, "chosen"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-resource"}, "from-resource"),
    ],
)
def test_service_name_defaults_to_the_program(
    tmp_path: Path, extra_env: dict[str, str], expected: str
) -> None:
    script = tmp_path / "weather_server.py"
    script.write_text(SERVICE_PROGRAM)
    result = subprocess.run(
        [OTEL_PERF, "run", "--", sys.executable, "-u", str(script)],
        env=harness.child_env({"METRICS_JSON_ENDPOINT_ENABLED": "false", **extra_env}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == expected  # never unknown_service:python3


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--log-level", "DEBUG", "--"],
        ["--log-level", "debug", "run", "--"],
    ],
)
def test_log_level_reaches_the_program(argv: list[str]) -> None:
    result = subprocess.run(
        [OTEL_PERF, *argv, sys.executable, "-c", "print('program output')"],
        env=harness.child_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == "program output\n"  # otel-perf's messages never go to stdout
    assert "DEBUG otel_perf: otel-perf: zero-code instrumentation starting" in result.stderr


def test_unknown_log_level_is_refused() -> None:
    result = subprocess.run(
        [OTEL_PERF, "run", "--log-level", "LOUD", "--", sys.executable, "-c", "pass"],
        env=harness.child_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown log level 'LOUD'" in result.stderr


@pytest.mark.parametrize("flags", [["-I"], ["-Iu"], ["-E"], ["-s", "-S"]])
def test_python_flags_that_skip_the_bootstrap_are_warned_about(flags: list[str]) -> None:
    program = "import otel_perf._state as s; print(s.runtime is not None)"
    result = subprocess.run(
        [OTEL_PERF, "run", "--", sys.executable, *flags, "-c", program],
        env=harness.child_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "otel-perf run: warning: python -" in result.stderr
    assert "nothing is instrumented" in result.stderr
    if flags == ["-I"]:  # the program ran, uninstrumented: that is what the warning is about
        assert result.stdout.strip() == "False"


def test_program_names() -> None:
    assert program_name(["python3.12", "-X", "dev", "app.py"]) == "app"
    assert program_name(["python", "-Wignore", "-m", "pkg.server", "--x"]) == "pkg.server"
    assert program_name(["python", "-mpkg"]) == "pkg"
    assert program_name(["python", "-c", "pass"]) == "python"
    assert program_name(["uvicorn", "app:app"]) == "uvicorn"
    assert bootstrap_skipped(["python3", "-I", "x.py"]) == "-I (isolated mode)"
    assert bootstrap_skipped(["python3", "x.py", "-I"]) is None  # the script's own argument
    assert bootstrap_skipped(["node", "-I"]) is None


@pytest.mark.parametrize("form", ["-c", "script"])  # exec'd, and run in the launcher
def test_a_global_provider_set_by_another_sitecustomize_is_recorded_through(
    tmp_path: Path, form: str
) -> None:
    """``opentelemetry-instrument``-style setups run first, so otel-perf finds their provider."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "metrics.set_meter_provider(MeterProvider())\n"
    )
    program = (
        "import otel_perf\n"
        "from opentelemetry import metrics\n"
        "print(otel_perf.configure().meter_provider is metrics.get_meter_provider())\n"
    )
    script = tmp_path / "server.py"
    script.write_text(program)
    started = ["-c", program] if form == "-c" else [str(script)]
    result = subprocess.run(
        [OTEL_PERF, "run", "--", sys.executable, *started],
        env=harness.child_env({"PYTHONPATH": str(site)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "True", result.stderr
