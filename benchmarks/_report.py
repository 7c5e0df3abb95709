"""What a benchmark section produces (rows, targets, notes) and how RESULTS.md is written."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Row:
    """One measured figure: ``median`` (and ``minimum`` where rounds exist) in ``unit``."""

    name: str
    median: float
    unit: str
    minimum: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Target:
    """A required ratio (or count) with its limit; ``at_most`` False means "at least"."""

    name: str
    measured: float
    limit: float
    at_most: bool = True
    detail: str = ""
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit


@dataclass
class Section:
    """The outcome of one part of the harness."""

    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(
        self, name: str, median: float, unit: str, minimum: float | None = None, note: str = ""
    ) -> None:
        self.rows.append(Row(name, median, unit, minimum, note))

    def target(self, target: Target) -> None:
        self.targets.append(target)


def fmt(value: float | None, unit: str = "") -> str:
    """A figure with sensible precision for a table cell."""
    if value is None:
        return "-"
    if unit in ("x", "ratio"):
        return f"{value:.3f}"
    if float(value).is_integer() and unit in ("", "tools"):
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH is the point
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _cpu_model() -> str:
    """The processor's model name and clock as the kernel reports them (Linux), else the
    platform's guess: ratios of tight loops differ between processor models."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            fields = {
                key.strip(): value.strip()
                for key, _, value in (line.partition(":") for line in cpuinfo)
                if key.strip() in ("model name", "cpu MHz")
            }
    except OSError:
        return platform.processor() or "unknown"
    model = fields.get("model name") or platform.processor() or "unknown"
    mhz = fields.get("cpu MHz")
    return f"{model}, {float(mhz):,.0f} MHz" if mhz and mhz.replace(".", "", 1).isdigit() else model


def environment() -> list[tuple[str, str]]:
    """The facts a reader needs to weigh the figures."""
    try:
        load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("git commit", _git_commit()),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("platform", platform.platform()),
        ("cpu", _cpu_model()),
        ("cpu count", str(os.cpu_count())),
        ("load average at start (1/5/15 min)", load),
        ("opentelemetry-sdk", _package_version("opentelemetry-sdk")),
        ("prometheus_client", _package_version("prometheus_client")),
        ("otel-perf", _package_version("otel-perf")),
    ]


def render(
    sections: list[Section],
    *,
    command: str,
    env: list[tuple[str, str]],
    elapsed_s: float,
    quick: bool,
) -> str:
    """The whole RESULTS.md text."""
    targets = [(section, target) for section in sections for target in section.targets]
    met = sum(target.met for _, target in targets)
    lines = [
        "# otel-perf benchmark results",
        "",
        f"Produced by `{command}` in {elapsed_s:.0f} s"
        + (" (quick mode: too few iterations to trust)." if quick else "."),
        "Every figure in a row comes from the same run; every ratio is the median, over",
        "interleaved rounds, of the per-round ratio of two subjects measured side by side,",
        "because the machine is shared and noisy. Absolute times are only indicative.",
        "",
        "## Environment",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in env),
        "",
        f"## Targets ({met} of {len(targets)} met)",
        "",
        "| target | limit | measured | met |",
        "|---|---|---|---|",
    ]
    for _section, target in targets:
        relation = "≤" if target.at_most else "≥"
        lines.append(
            f"| {target.name} | {relation} {fmt(target.limit, target.unit)}{_suffix(target.unit)}"
            f" | {fmt(target.measured, target.unit)}{_suffix(target.unit)}"
            f" | {'yes' if target.met else '**NO**'} |"
        )
    for section in sections:
        lines += ["", f"## {section.title}", "", section.description, ""]
        if section.rows:
            lines += ["| | min | median | unit | note |", "|---|---|---|---|---|"]
            lines += [
                f"| {row.name} | {fmt(row.minimum, row.unit)} | {fmt(row.median, row.unit)}"
                f" | {row.unit} | {row.note} |"
                for row in section.rows
            ]
        if section.targets:
            lines.append("")
            for target in section.targets:
                verdict = "met" if target.met else "NOT met"
                detail = f" {target.detail}" if target.detail else ""
                lines.append(
                    f"- **{target.name}**: {fmt(target.measured, target.unit)}"
                    f"{_suffix(target.unit)} ({verdict}).{detail}"
                )
        if section.notes:
            lines.append("")
            lines += [f"- {note}" for note in section.notes]
    lines.append("")
    return "\n".join(lines)


def _suffix(unit: str) -> str:
    return "x" if unit == "x" else f" {unit}" if unit else ""


def python_command() -> str:
    exe = Path(sys.executable)
    try:
        shown = exe.relative_to(ROOT)
    except ValueError:
        shown = exe
    return str(shown)
