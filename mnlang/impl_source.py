"""Reading an `impl` function's docstring from its module's source, never importing it.

Used by the runtime (the tool description the model gets when a declaration has no
`description:`) and by the editor's hover; kept out of the IR so that a docstring edit
does not change a program's hash.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mnlang.deep import steady_recursion_limit


def parse_python(path: Path) -> ast.Module:
    """The module at `path` as a syntax tree (OSError, SyntaxError, ValueError as
    `ast.parse` raises them), parsed while no other thread moves the recursion limit."""
    source = path.read_bytes()
    with steady_recursion_limit():
        return ast.parse(source, str(path))


def function_docstring(path: Path, function: str) -> str | None:
    """The docstring of the module-level `def`/`async def` named `function` in the file at
    `path` (its last definition); None when the file cannot be read or has none."""
    try:
        tree = parse_python(path)
    except (OSError, SyntaxError, ValueError):
        return None
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            found = node
    return ast.get_docstring(found) if found is not None else None
