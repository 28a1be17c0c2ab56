"""`mnc check` looks at the Python behind each tool and effect (`impl: "module:function"`).

The module is found as the runtime finds it (`mnlang.modulepath.impl_module_file`): a
file `module.py` or `module/__init__.py` in the folder of the `.mn` file that declares
the tool, else in the project's root and module path and `MNC_PATH`, else an installed
module. Its source is parsed with Python's `ast`, never run: a function defined there by
`def` or `async def` is checked against the declaration at once. A name bound any other
way (imported, assigned, made by a decorator factory) can only be known by importing the
module, which is done unless `--no-import`; so is an installed module's lookup. What is
read of the source, and the cache that spares a large module's parse on the next check,
is `mnlang.checker.python_summary`. Checked:

- the module exists (E125) and can be imported when it has to be (E128);
- it has the function (E126);
- the function accepts every declared parameter by name, and every parameter it
  requires is declared, `ctx` and `key` aside, which the runtime passes itself (E127).

An `impl: "mcp:SERVER/TOOL"` is checked against the MCP lock instead
(`mnlang.checker.mcp_impls`, E170-E174).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
from pathlib import Path
from typing import Any

from mnlang.checker.program import Program, Symbol
from mnlang.checker.python_summary import PythonSummary, Signature, read_summary
from mnlang.diagnostics import Diagnostic, Diagnostics
from mnlang.modulepath import impl_module_file, module_file
from mnlang.syntax import ast as mn

PASSED_BY_RUNTIME = ("ctx", "key")
# `mnlang.mcp.lock.IMPL_PREFIX`, not imported from there to keep that module out of a check
# without MCP tools (tests/test_check_impls.py keeps the two equal).
MCP_PREFIX = "mcp:"


def check_impls(program: Program, *, allow_import: bool = True) -> list[Diagnostic]:
    out = Diagnostics()
    parsed: dict[Path, PythonSummary | None] = {}
    for symbol in [*program.symbols_of("tool"), *program.symbols_of("effect")]:
        _check_one(program, symbol, out, parsed, allow_import)
    return out.items


def _impl_entry(decl: mn.CallableDecl) -> mn.Entry | None:
    return decl.options.get("impl")


def _check_one(
    program: Program,
    symbol: Symbol,
    out: Diagnostics,
    parsed: dict[Path, PythonSummary | None],
    allow_import: bool,
) -> None:
    decl = symbol.decl
    assert isinstance(decl, mn.CallableDecl)
    impl = program.options.get(symbol.name, {}).get("impl")
    entry = _impl_entry(decl)
    if not isinstance(impl, str) or entry is None:
        return
    if impl.startswith(MCP_PREFIX):
        # Imported here: only a program with MCP tools reads the lock (`mnlang.mcp.lock`).
        from mnlang.checker.mcp_impls import check_mcp

        check_mcp(symbol, decl, impl, entry.value, program.options.get(symbol.name, {}), out)
        return
    module_name, _, function = impl.partition(":")
    if not module_name or not function:
        return
    at = entry.value
    path = _module_file(symbol.module.path.parent, program.root.path.parent, module_name)
    if path is None:
        if not allow_import:
            return
        path = _installed_file(module_name)
        if path is None:
            out.add(
                "E125",
                at,
                f"no Python module `{module_name}` for `{decl.name.name}`",
                notes=[f"looked for {module_name.replace('.', '/')}.py beside the .mn file, "
                       "in the project's module path and MNC_PATH, and for an installed "
                       "module"],
                help=f"create `{module_name.replace('.', '/')}.py` next to "
                f"`{symbol.module.path.name}`, or `mnc check --no-import` when the tools "
                "are installed elsewhere",
            )  # fmt: skip
            return
    if path not in parsed:
        parsed[path] = read_summary(path)
    summary = parsed[path]
    if summary is not None:
        found = summary.signature(function)
        if found is not None:  # a `def` or `async def`
            _compare(decl, at, function, path, found, out)
            return
        if function not in summary.bindings and not summary.dynamic:
            out.add(
                "E126",
                at,
                f"`{path.name}` has no function `{function}` for `{decl.name.name}`",
                help=_near(summary, function),
            )
            return
    if not allow_import:
        return
    signature = _imported(module_name, path, function, decl, at, out)
    if signature is not None:
        _compare(decl, at, function, path, signature, out)


@functools.lru_cache(maxsize=256)
def _module_file(folder: Path, root: Path, module: str) -> Path | None:
    """As the runtime finds it from `folder` (the .mn file's), `root` the program's folder."""
    impl_dir = Path(os.path.relpath(folder.resolve(), root.resolve())).as_posix()
    hit = impl_module_file(folder, module, impl_dir, folder)
    return hit[0].resolve() if hit is not None else None


@functools.lru_cache(maxsize=256)
def _installed_file(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    origin = spec.origin
    return Path(origin) if origin and origin.endswith(".py") else Path(module)


def _near(summary: PythonSummary, name: str) -> str | None:
    import difflib

    functions = list(summary.functions)
    close = difflib.get_close_matches(name, functions, n=1, cutoff=0.5)
    if close:
        return f"did you mean `{close[0]}`?"
    if functions:
        return f"its functions: {', '.join(f'`{f}`' for f in functions[:8])}"
    return None


def _from_inspect(function: Any) -> Signature | None:
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    empty = inspect.Parameter.empty
    return Signature(
        accepted=frozenset(p.name for p in params if p.kind in named),
        required=tuple(p.name for p in params if p.kind in named and p.default is empty),
        positional_only=tuple(
            p.name
            for p in params
            if p.kind == inspect.Parameter.POSITIONAL_ONLY and p.default is empty
        ),
        any_keyword=any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params),
    )


def _imported(
    module_name: str,
    path: Path,
    function: str,
    decl: mn.CallableDecl,
    at: mn.Node,
    out: Diagnostics,
) -> Signature | None:
    from mnlang.runtime.tools import ModuleRef, load_module

    ref = (
        ModuleRef(module_name, str(path), str(path.parent))
        if path.is_file() and path.name != "__init__.py"
        else ModuleRef(module_name, None, None)
    )
    try:
        module = load_module(ref)
    except Exception as e:
        out.add(
            "E128",
            at,
            f"cannot import `{module_name}` for `{decl.name.name}`: {type(e).__name__}: {e}",
            help="fix the module, or `mnc check --no-import` to check without importing it",
        )
        return None
    found = getattr(module, function, None)
    if not callable(found):
        out.add("E126", at, f"`{module_name}` has no function `{function}` for `{decl.name.name}`")
        return None
    return _from_inspect(found)


def _compare(
    decl: mn.CallableDecl, at: mn.Node, function: str, path: Path, sig: Signature, out: Diagnostics
) -> None:
    where = f"`{function}` in `{path.name}`"
    declared = [p.name.name for p in decl.params]
    for param in decl.params:
        name = param.name.name
        if name not in sig.accepted and name not in sig.positional_only and not sig.any_keyword:
            out.add(
                "E127",
                param.name,
                f"{where} has no parameter `{name}`, which `{decl.name.name}` declares",
                notes=note_text(sig),
                help=f"add `{name}` to the function, or rename the parameter to match it",
            )
    for name in sig.required:
        if name not in declared and name not in PASSED_BY_RUNTIME:
            out.add(
                "E127",
                at,
                f"{where} requires `{name}`, which `{decl.name.name}` does not declare",
                notes=note_text(sig),
                help=f"declare `{name}` on `{decl.name.name}`, or give it a default in Python",
            )
    for name in sig.positional_only:
        out.add(
            "E127",
            at,
            f"{where} takes `{name}` by position only; the runtime passes arguments by name",
            help=f"drop the `/` from the signature of `{function}`",
        )


def note_text(sig: Signature) -> list[str]:
    names = sorted(sig.accepted)
    return [f"the function takes: {', '.join(names) if names else 'no named parameters'}"]


def impl_docstring(folder: Path, impl: str) -> str | None:
    """The docstring of an `impl` function in a module beside the .mn file (in `folder`)."""
    from mnlang.impl_source import function_docstring  # the editor's hover only

    module, _, function = impl.partition(":")
    path = module_file(folder, module) if module and function else None
    return function_docstring(path, function) if path is not None else None
