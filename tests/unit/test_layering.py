"""The package's layering, read from its source: imports form no circle, state is the ground.

Every import statement counts, wherever it stands: at the top, inside a function (a lazy
import) or under ``if TYPE_CHECKING:`` (an annotation's import is still a dependency a reader
has to follow). docs/architecture.md describes the layers these tests hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import otel_perf

PACKAGE = Path(otel_perf.__file__).resolve().parent


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["otel_perf", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a package's ``__init__`` counts as its name)."""
    modules = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import mod`` imports the module pkg.mod, else a name of pkg
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for imported in targets:
                module = imported
                while module and module not in modules:  # a name of a module: the module
                    module = module.rpartition(".")[0]
                if module and module != name:
                    graph[name].add(module)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_lazy_and_annotation_imports() -> None:
    graph = import_graph()
    assert "otel_perf._configure" in graph["otel_perf._api"]  # at the top
    assert "otel_perf._metrics" in graph["otel_perf._configure"]  # lazy, and TYPE_CHECKING
    assert "otel_perf._multiprocess" in graph["otel_perf._metrics"]  # a package, lazily
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_imports_form_no_circle() -> None:
    assert circles(import_graph()) == []


def test_state_is_the_ground_it_imports_nothing_of_otel_perf() -> None:
    graph = import_graph()
    assert graph["otel_perf._state"] == set()
    # and the modules that keep nothing but read it stand on it
    for user in ("otel_perf._log", "otel_perf._configure", "otel_perf._api", "otel_perf._exit"):
        assert "otel_perf._state" in graph[user]
