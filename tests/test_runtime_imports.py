"""`mnlang/runtime/` has no import cycle: its helpers see the interpreter through narrow
protocols (`runtime/ports.py`), never by importing it.

Every import counts, wherever it is written: at the top, under `if TYPE_CHECKING:`, or
inside a function (a lazy import only hides a cycle from the interpreter, not from the
reader)."""

from __future__ import annotations

import ast
from pathlib import Path

import mnlang.runtime

RUNTIME = Path(mnlang.runtime.__file__).parent


def imported_modules(tree: ast.Module, package: str, modules: set[str]) -> set[str]:
    """The modules of `package` (by short name) that a module's code imports."""
    found: set[str] = set()
    prefix = package + "."
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from . import x`, `from .x import y`
                base = package if node.level == 1 else package.rsplit(".", node.level - 1)[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            # `from package import x` imports the module `x` when there is one
            names = [f"{source}.{alias.name}" for alias in node.names] + [source]
        else:
            continue
        for name in names:
            if name.startswith(prefix):
                short = name[len(prefix) :].split(".")[0]
                if short in modules:
                    found.add(short)
    return found


def import_graph(directory: Path, package: str) -> dict[str, set[str]]:
    """Each module of the package directory -> the package's modules it imports."""
    files = {path.stem: path for path in sorted(directory.glob("*.py"))}
    modules = set(files)
    return {
        name: imported_modules(ast.parse(path.read_text(), str(path)), package, modules) - {name}
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each group of modules that import each other (Tarjan's strongly
    connected components), as the path `a -> b -> ... -> a`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for after in sorted(graph[node]):
            if after not in index:
                connect(after)
                low[node] = min(low[node], low[after])
            elif after in on_stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_path_within(graph, set(component)) for component in components]


def _path_within(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A cycle from the first module of a component back to itself, inside it."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for after in sorted(graph[node] & component):
            if after == start:
                return [*paths[node], start]
            if after not in paths:
                paths[after] = [*paths[node], after]
                queue.append(after)
    raise AssertionError(f"no cycle through {start}")  # a component of two or more has one


def test_runtime_has_no_import_cycle() -> None:
    graph = import_graph(RUNTIME, "mnlang.runtime")
    assert graph.get("interpreter"), "the graph was not read"
    found = [" -> ".join(cycle) for cycle in cycles(graph)]
    assert not found, "import cycles in mnlang/runtime/: " + "; ".join(found)


def test_no_helper_imports_the_interpreter() -> None:
    graph = import_graph(RUNTIME, "mnlang.runtime")
    helpers = ["agents", "call_state", "faults", "pauses", "config", "ports"]
    assert [h for h in helpers if "interpreter" in graph[h]] == []


def test_a_cycle_through_type_checking_and_lazy_imports_is_found(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
    )
    (tmp_path / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "c.py").write_text("import pkg.a\nfrom pkg import d\n")
    (tmp_path / "d.py").write_text("import os\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"__init__": set(), "a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    graph["c"].discard("a")
    assert cycles(graph) == []
