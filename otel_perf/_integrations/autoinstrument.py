"""Zero-code instrumentation: configure otel-perf and instrument every MCP server a process builds.

``otel-perf run -- python server.py`` starts the command with
``otel_perf/_integrations/bootstrap`` first on ``PYTHONPATH``. Its ``sitecustomize`` calls
:func:`bootstrap` before the program runs, the way ``opentelemetry-instrument`` does it:

1. configure otel-perf from the environment (the endpoint starts; its URL goes to stderr and,
   when asked, to a file);
2. install post-import hooks that patch the constructors of the low-level ``Server``
   (``mcp.server.lowlevel.server``, in mcp 1.x and 2.x), ``mcp.server.MCPServer`` (mcp 2.x) and
   ``fastmcp.FastMCP`` (FastMCP 3.x and 4.x) the moment their modules are imported, so every
   server built afterwards is instrumented. Nothing is imported early: a program that never
   imports ``fastmcp`` does not pay for it.

A server built inside another one's constructor (``MCPServer`` and ``fastmcp.FastMCP`` each
build a low-level ``Server``) is left to the outer one, so each request is counted once. mcp
1.x's own ``mcp.server.fastmcp.FastMCP`` is the exception on purpose: it is measured through
the low-level ``Server`` it builds, which is instrumented before FastMCP registers its tool
handler, so the tool function goes through the public ``call_tool`` decorator (see
:mod:`otel_perf._integrations.mcp_v1`). Nothing here raises into the program: a failure is one
warning and the program runs uninstrumented.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from otel_perf import _state
from otel_perf._integrations import bootstrap_paths
from otel_perf._integrations.bootstrap_paths import BOOTSTRAPPED_ENV
from otel_perf._log import logger, warn_once
from otel_perf._settings import log_level, url_file

#: The bootstrap directory, as a path (see :mod:`otel_perf._integrations.bootstrap_paths`).
BOOTSTRAP_DIR: Final = Path(bootstrap_paths.BOOTSTRAP_DIR)

_SERVER_MODULE: Final = "mcp.server.lowlevel.server"
_MCPSERVER_MODULE: Final = "mcp.server.mcpserver.server"
_FASTMCP_MODULE: Final = "fastmcp.server.server"

# True while an MCPServer or FastMCP constructor runs: the low-level Server it builds inside is
# instrumented through the outer server instead.
_building_outer: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "otel_perf_building_outer_server", default=False
)


def _instrument(server: object, integration: str) -> None:
    try:
        importlib.import_module(integration).instrument(server)
    except Exception as exc:
        warn_once(
            f"auto:{integration}",
            "otel-perf: could not instrument an MCP server automatically (%s: %s); it runs "
            "without metrics",
            type(exc).__name__,
            exc,
        )


def _patch_init(cls: type, integration: str, *, outer: bool) -> None:
    """Wrap ``cls.__init__`` so that every new instance is instrumented (once)."""
    original: Callable[..., None] = cls.__init__  # type: ignore[misc]
    if getattr(original, "__otel_perf_patched__", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if outer:
            token = _building_outer.set(True)
            try:
                original(self, *args, **kwargs)
            finally:
                _building_outer.reset(token)
        else:
            original(self, *args, **kwargs)
            if _building_outer.get():
                return
        # The outermost constructor of a subclass chain finishes instrumenting; calling
        # instrument() on an instrumented server again is a no-op.
        _instrument(self, integration)

    __init__.__otel_perf_patched__ = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


def _on_server_module(module: ModuleType) -> None:
    cls = getattr(module, "Server", None)
    if isinstance(cls, type):
        _patch_init(cls, "otel_perf.mcp", outer=False)


def _on_mcpserver_module(module: ModuleType) -> None:
    cls = getattr(module, "MCPServer", None)
    if isinstance(cls, type):
        _patch_init(cls, "otel_perf.mcp", outer=True)


def _on_fastmcp_module(module: ModuleType) -> None:
    cls = getattr(module, "FastMCP", None)
    if isinstance(cls, type):
        _patch_init(cls, "otel_perf.fastmcp", outer=True)


_HOOKS: Final[dict[str, Callable[[ModuleType], None]]] = {
    _SERVER_MODULE: _on_server_module,
    _MCPSERVER_MODULE: _on_mcpserver_module,
    _FASTMCP_MODULE: _on_fastmcp_module,
}


class _HookedLoader(importlib.abc.Loader):
    """Runs the real loader, then the hook; everything else is the real loader's."""

    def __init__(self, loader: importlib.abc.Loader, hook: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            self._hook(module)
        except Exception as exc:
            warn_once("auto:hook", "otel-perf: post-import hook failed (%s)", exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders find a hooked module, then wraps its
    loader so the hook runs right after the module executes."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        hook = _HOOKS.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _HookedLoader(spec.loader, hook)
            return spec
        return None


def install_hooks() -> None:
    """Patch the server classes now if their modules are loaded, else as they get imported."""
    with _state.instrumentation_lock:
        if _state.instrumentation_installed:
            return
        _state.instrumentation_installed = True
        sys.meta_path.insert(0, _PostImportFinder())
        for name, hook in _HOOKS.items():
            module = sys.modules.get(name)
            if module is not None:
                hook(module)


def _announce(url: str | None) -> None:
    if url is None:
        return
    print(f"otel-perf: metrics on {url}/metrics", file=sys.stderr, flush=True)  # noqa: T201
    written = url_file(os.environ)
    if written is not None:
        target = Path(written)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(url)
        partial.replace(target)  # readers never see half a URL


def _log_to_stderr(level: int | None) -> None:
    """``otel-perf run --log-level``: otel-perf's own messages to stderr at that level.

    Never stdout: a stdio MCP server speaks its protocol there.
    """
    if level is None:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # the program's own logging setup must not print them twice


def bootstrap() -> None:
    """What ``otel-perf run`` does inside the started program; never raises.

    The program ``otel-perf run`` started configures at once: its endpoint starts and is
    announced. The Python processes it starts in turn (uvicorn and gunicorn workers, the
    ``--reload`` worker, ``multiprocessing`` children, any ``python`` it runs) inherit the
    bootstrap on ``PYTHONPATH`` and only install the hooks and the signal handlers: each
    configures when it first records, joins its server's group (the ``OTEL_PERF_GROUP`` it
    inherits) and hands its numbers over to the one endpoint (see "Many processes").
    """
    try:
        descendant = BOOTSTRAPPED_ENV in os.environ
        os.environ[BOOTSTRAPPED_ENV] = "1"
        _log_to_stderr(log_level(os.environ))

        logger.debug("otel-perf: zero-code instrumentation starting in pid %d", os.getpid())
        # Hooks first: their flag also tells the console exporter, started by configure(),
        # that stdout may be a stdio server's protocol channel (otel_perf._stdio).
        install_hooks()
        if descendant:
            # Before the program installs its own: uvicorn puts back the handlers it found
            # after its graceful shutdown and raises the signal again; ours then hand over.
            from otel_perf import _signals  # noqa: PLC0415

            _signals.install()
        else:
            from otel_perf._configure import configure_for_launcher  # noqa: PLC0415

            metrics = configure_for_launcher()
            _announce(metrics.url)
            logger.debug("otel-perf: configured; MCP servers built from now on are measured")
    except Exception as exc:
        logger.warning("otel-perf: zero-code instrumentation failed (%s); running without it", exc)
