"""Which MCP SDKs are installed, and install advice that never changes them.

Read from the installed distributions' metadata (``importlib.metadata``): nothing is imported.
Every message otel-perf prints that names an install command comes from here, so that a user on
mcp 1.x is never told to run a command that would upgrade their server to mcp 2.x (the ``mcp``
and ``fastmcp`` extras accept either generation, see ``pyproject.toml``).
"""

from __future__ import annotations

import importlib.metadata
from typing import Final

#: The SDK generations otel-perf measures (major versions of the ``mcp`` distribution).
MCP_GENERATIONS: Final = (1, 2)
#: The FastMCP generations :mod:`otel_perf.fastmcp` measures (FastMCP 3.x runs on mcp 1.x).
FASTMCP_GENERATIONS: Final = (3, 4)


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def major(version: str | None) -> int | None:
    """The major version number of ``version`` (``"1.30.0"`` -> 1); ``None`` if unreadable."""
    if not version:
        return None
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def mcp_generation() -> int | None:
    """1 or 2 for the installed ``mcp`` package (any other major as is); ``None``: not installed."""
    return major(installed_version("mcp"))


def unsupported_message(module: str, distribution: str, supported: tuple[int, ...]) -> str | None:
    """Why ``module`` cannot measure the installed ``distribution``; ``None`` if it is absent.

    Names no install command: every command that would make it supported would also change the
    user's SDK (an upgrade across a generation breaks servers written for the old one).
    """
    version = installed_version(distribution)
    if version is None:
        return None
    generations = " and ".join(f"{g}.x" for g in supported)
    return (
        f"{module} measures {distribution} {generations}; this environment has {distribution} "
        f"{version}, which it does not support. Your server keeps running unmeasured; "
        "@otel_perf.track_tool on your tool functions works with any SDK."
    )


def missing_message(module: str, distribution: str, extra: str, exc: BaseException) -> str:
    """The error for ``module`` when ``distribution`` cannot be imported (``exc``)."""
    return (
        f"{module} needs the {distribution} package, which could not be imported ({exc}); "
        f"install it with: pip install 'otel-perf[{extra}]'"
    )


def import_failure_message(
    module: str, distribution: str, extra: str, supported: tuple[int, ...], exc: BaseException
) -> str:
    """Why importing ``module`` failed with ``exc``: an unsupported generation, or a missing SDK.

    Only a missing SDK gets an install command (see :func:`unsupported_message`).
    """
    if major(installed_version(distribution)) not in (None, *supported):
        message = unsupported_message(module, distribution, supported)
        if message is not None:
            return message
    return missing_message(module, distribution, extra, exc)
