"""Reading an `impl` function's docstring from its module's source, never importing it.

Used by the runtime (the tool description the model gets when a declaration has no
`description:`) and by the editor's hover; kept out of the IR so that a docstring edit
does not change a program's hash.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class FunctionDoc:
    """A docstring split for the model: the description, and each parameter's own from its
    `Args:` (Google), `:param x:` (reST) or `Parameters` (NumPy) section."""

    text: str
    params: dict[str, str] = field(default_factory=dict)


def function_doc(path: Path, function: str) -> FunctionDoc | None:
    """`function_docstring`, split: with a parameters section, `text` is the docstring
    without it; without one, the docstring as written."""
    docstring = function_docstring(path, function)
    if docstring is None:
        return None
    import docstring_parser  # lazily: only a run describing tools or a hover needs it

    try:
        parsed = docstring_parser.parse(docstring)
    except docstring_parser.ParseError:
        return FunctionDoc(docstring)
    params = {p.arg_name: p.description for p in parsed.params if p.description}
    if not params:
        return FunctionDoc(docstring)
    text = "\n\n".join(t for t in (parsed.short_description, parsed.long_description) if t)
    return FunctionDoc(text, params)
