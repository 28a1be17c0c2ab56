"""Which Python a tool or effect may name as its `impl`: the checker's rule, applied again
whenever an IR is loaded (from a file or from the journal), since an IR's hash is not a
signature and a crafted file could name anything.

A program is code (docs/runtime.md, "Trust model"): this does not make a hostile program
safe. It refuses the entry points that turn a run's input straight into code or a shell
command, so that a tool declared `impl: "os:system"` is a mistake caught at once, and an
IR edited to import from anywhere on the disk is refused.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

IMPL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
# A tool of an MCP server (`mnlang.mcp`): `mcp:SERVER/TOOL`, TOOL as the server names it.
MCP_IMPL = re.compile(r"mcp:[a-z_][A-Za-z0-9_]*/[^\s/]+")

# Modules every function of which runs code or commands, or loads code.
_MODULES = frozenset(
    {
        "subprocess",
        "pty",
        "runpy",
        "code",
        "codeop",
        "importlib",
        "ctypes",
        "pickle",
        "marshal",
        "shelve",
        "multiprocessing",
        "pdb",
        "commands",
        "popen2",
    }
)
# Single functions: `module:function`, or `module:prefix*`.
_FUNCTIONS = (
    "builtins:eval",
    "builtins:exec",
    "builtins:compile",
    "builtins:__import__",
    "builtins:breakpoint",
    "os:system",
    "os:popen",
    "os:exec*",
    "os:spawn*",
    "os:posix_spawn*",
    "os:fork*",
    "os:startfile",
    "posix:system",
    "posix:exec*",
    "posix:posix_spawn*",
    "posix:fork*",
    "nt:system",
    "nt:spawn*",
)

# The standard library's own tools live in the installed package, outside the program's
# folder: the only `impl_dir` allowed to climb out of it.
_PACKAGE_TOOLS = "mnlang.stdlib_tools."


def impl_problem(impl: str) -> str | None:
    """Why `impl` may not implement a tool or effect, or `None`."""
    if MCP_IMPL.fullmatch(impl):
        return None
    if not IMPL.fullmatch(impl):
        return f'`impl` must be `"module:function"`, not `"{impl}"`'
    module, _, function = impl.partition(":")
    top = module.split(".")[0]
    if top in _MODULES or module in _MODULES:
        return f"`{impl}` runs code or commands (module `{module}`): not a tool"
    for refused in _FUNCTIONS:
        want_module, _, want = refused.partition(":")
        if module != want_module:
            continue
        if function == want or (want.endswith("*") and function.startswith(want[:-1])):
            return f"`{impl}` runs code or commands: not a tool"
    return None


def impl_dir_problem(impl_dir: str, impl: str) -> str | None:
    """Why a compiled tool's folder may not be used, or `None`: it must lie inside the
    program's folder (relative, no `..`), except for the standard library's tools."""
    if PurePosixPath(impl_dir).is_absolute() or PureWindowsPath(impl_dir).is_absolute():
        return f"`impl_dir` `{impl_dir}` is absolute"
    if ".." in PurePosixPath(impl_dir).parts and not impl.startswith(_PACKAGE_TOOLS):
        return f"`impl_dir` `{impl_dir}` climbs out of the program's folder"
    return None
