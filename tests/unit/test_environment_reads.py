"""Every environment variable is read by the settings modules, and configure() compares it.

A variable read anywhere else is one ``configure()`` cannot see change: it would be ignored by
a second ``configure()`` and picked up silently by whatever reads it next. These tests change
each variable that used to be read elsewhere, check that ``configure()`` restarts with it and
that the running instance uses the value it compared, and read the package's source for any
other read of the environment.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME

import otel_perf
from otel_perf._settings import load_settings

PACKAGE = Path(otel_perf.__file__).resolve().parent


def _resource(metrics: otel_perf.Metrics) -> dict[str, object]:
    provider = metrics.meter_provider
    assert isinstance(provider, MeterProvider)
    return dict(provider._sdk_config.resource.attributes)


@pytest.mark.parametrize(
    ("variable", "first", "second", "field", "expected"),
    [
        ("OTEL_PERF_GROUP", "server-a", "server-b", "group", "server-b"),
        ("OTEL_PERF_GROUP", "server-a", " off ", "group", "off"),
        ("XDG_RUNTIME_DIR", "{tmp}/a", "{tmp}/b", "runtime_dir", "{tmp}/b"),
        ("OTEL_SERVICE_NAME", "svc-a", "svc-b", "service_name", "svc-b"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=a",
            "team=b, region = eu%2Dwest",
            "resource_attributes",
            (("team", "b"), ("region", "eu-west")),
        ),
    ],
)
def test_configure_notices_a_change_of_the_variable(
    variable: str,
    first: str,
    second: str,
    field: str,
    expected: object,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv(variable, first.format(tmp=tmp_path))
    before = otel_perf.configure(json_enabled=False)
    assert otel_perf.configure(json_enabled=False) is before
    monkeypatch.setenv(variable, second.format(tmp=tmp_path))
    after = otel_perf.configure(json_enabled=False)
    assert after is not before  # restarted with the new value, like any other setting
    assert otel_perf.configure(json_enabled=False) is after
    wanted = expected.format(tmp=tmp_path) if isinstance(expected, str) else expected
    assert getattr(after.settings, field) == wanted


def test_empty_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "OTEL_PERF_GROUP",
        "XDG_RUNTIME_DIR",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
    ):
        monkeypatch.setenv(variable, "  ")
    settings, warnings = load_settings(os.environ)
    assert warnings == []
    assert settings.group is None
    assert settings.runtime_dir is None
    assert settings.service_name is None
    assert settings.resource_attributes == ()


def test_the_resource_is_the_configured_one_until_configure_sees_a_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-a")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=a,service.name=ignored")
    metrics = otel_perf.configure(json_enabled=False)
    resource = _resource(metrics)
    assert resource[SERVICE_NAME] == "svc-a"  # OTEL_SERVICE_NAME wins, as the OTel spec says
    assert resource["team"] == "a"
    assert resource["telemetry.distro.name"] == "otel-perf"

    # Changed behind configure()'s back: reset_metrics() keeps the configured resource ...
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-b")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=b,extra=1")
    otel_perf.get_collector().reset_metrics()
    resource = _resource(metrics)
    assert (resource[SERVICE_NAME], resource["team"]) == ("svc-a", "a")
    assert "extra" not in resource

    # ... and the next configure() sees the change and restarts with it.
    restarted = otel_perf.configure(json_enabled=False)
    assert restarted is not metrics
    resource = _resource(restarted)
    assert (resource[SERVICE_NAME], resource["team"], resource["extra"]) == ("svc-b", "b", "1")


@pytest.mark.skipif(os.name != "posix", reason="server groups are POSIX-only (see _multiprocess)")
def test_a_group_written_for_the_children_is_the_one_configure_compares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_PERF_GROUP", raising=False)
    metrics = otel_perf.configure(json_port=0)
    written = os.environ.get("OTEL_PERF_GROUP")  # derived, for the children to inherit
    assert written
    assert metrics.settings.group == written
    assert otel_perf.configure(json_port=0) is metrics  # no restart for our own write


@pytest.mark.skipif(os.name != "posix", reason="server groups are POSIX-only (see _multiprocess)")
def test_the_runtime_directory_configured_is_where_the_endpoint_leaves_its_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uid = os.getuid()
    for name in ("a", "b"):
        (tmp_path / name).mkdir(mode=0o700)
    monkeypatch.setenv("OTEL_PERF_GROUP", "files")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "a"))
    first = otel_perf.configure(json_port=0)
    assert first.port is not None
    mine = tmp_path / "a" / f"otel-perf-{uid}"
    assert list((mine / "endpoints").glob(f"{os.getpid()}-{first.port}.json"))
    assert (mine / "files-0").is_dir()  # the group's directory, for this port setting

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "b"))
    second = otel_perf.configure(json_port=0)
    assert second is not first
    assert second.port is not None
    theirs = tmp_path / "b" / f"otel-perf-{uid}"
    assert list((theirs / "endpoints").glob(f"{os.getpid()}-{second.port}.json"))
    assert (theirs / "files-0").is_dir()


# --- nothing else reads the environment -----------------------------------------------------

#: The settings modules: the only ones that read variables (each of their readers takes the
#: environment as an argument, so the rest of the package hands it ``os.environ``).
SETTINGS_MODULES = {"_settings.py", "_export/settings.py"}

#: Functions of the settings modules that read the environment they are given.
SETTINGS_READERS = {"load_settings", "log_level", "url_file", "runtime_dir", "client_token"}

#: Every other use of ``os.environ`` in the package, and why it is not a setting read.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # The launcher builds the started program's environment from its own: a copy, then
    # otel-perf's additions (PYTHONPATH, the URL file, the log level, the service name).
    ("_cli/run.py", "dict(os.environ)"): "otel-perf run copies its environment for the program",
    # A script of the launcher's own interpreter runs in the launcher's process: its
    # environment becomes the program's, and a launcher under the bootstrap execs instead.
    ("_cli/run.py", "os.environ.update(env)"): "the program's environment, run in process",
    ("_cli/run.py", "BOOTSTRAPPED_ENV in os.environ"): "bootstrap marker",
    # Whether the OpenTelemetry API would load a MeterProvider by itself: the API's variable,
    # read by the API; otel-perf only asks whether it is there (to skip loading the SDK).
    ("_configure.py", "bool(os.environ.get(_PROVIDER_ENV))"): "the OpenTelemetry API's own",
    # The terminal's width is rich's convention, not otel-perf configuration.
    ("_cli/view.py", '"COLUMNS" not in os.environ'): "rich's own COLUMNS convention",
    # A process marker, not configuration: written by the bootstrap, read by the processes it
    # starts, to tell them they are descendants (they install hooks but do not announce).
    ("_integrations/autoinstrument.py", "BOOTSTRAPPED_ENV in os.environ"): "bootstrap marker",
    ("_integrations/autoinstrument.py", "os.environ[BOOTSTRAPPED_ENV]"): "bootstrap marker",
    # The group a process derives is written into its environment so that the processes it
    # starts inherit it (behaviour, see docs/architecture.md). The group itself is a setting.
    ("_multiprocess/__init__.py", "resolve_group(settings.group, os.environ)"): "write-back",
}


def _environment_uses(path: Path) -> list[str]:
    """Each expression of ``path`` that uses ``os.environ``/``os.getenv`` other than by handing
    ``os.environ`` to a settings reader, as source text."""
    source = path.read_text()
    tree = ast.parse(source, str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    uses: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            assert not {a.name for a in node.names} & {"environ", "getenv", "environb"}, path
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "environb", "getenv", "putenv", "unsetenv")
        ):
            continue
        parent = parents[node]
        if (
            isinstance(parent, ast.Call)
            and node in parent.args
            and isinstance(parent.func, (ast.Name, ast.Attribute))
            and (parent.func.id if isinstance(parent.func, ast.Name) else parent.func.attr)
            in SETTINGS_READERS
        ):
            continue
        while isinstance(parents.get(parent), (ast.Subscript, ast.Attribute, ast.Call)):
            parent = parents[parent]
        if isinstance(parents.get(parent), (ast.Compare, ast.Call)):
            parent = parents[parent]
        text = ast.get_source_segment(source, parent) or ast.dump(parent)
        uses.append((parent.lineno, parent.col_offset, text))
    return [text for _, _, text in sorted(uses)]


def test_the_reader_finds_reads_of_every_shape(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "a = os.environ.get('X')\n"
        "b = os.environ['X']\n"
        "c = 'X' in os.environ\n"
        "d = os.getenv('X')\n"
        "e = load_settings(os.environ)\n"  # handed to a settings reader: not a use
        "f = dict(os.environ)\n"
    )
    assert _environment_uses(sample) == [
        "os.environ.get('X')",
        "os.environ['X']",
        "'X' in os.environ",
        "os.getenv('X')",
        "dict(os.environ)",
    ]


def test_only_the_settings_modules_read_the_environment() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in SETTINGS_MODULES:
            continue
        for use in _environment_uses(path):
            found[(relative, use)] = EXCEPTIONS.get((relative, use), "NOT A SETTINGS MODULE")
    assert found == EXCEPTIONS
