"""What `mnc check` reads of a tool module's Python source (E126, E127), and its cache.

The checker needs, of a module's source: whether it parses; each module-level name's last
binding statement, and that statement's signature when it is a `def`/`async def` (a name
bound inside `if`/`try`/`with`, or by an import or an assignment, is "something else");
whether names may appear that no statement binds (`import *`, a module `__getattr__`);
and its module-level functions in order, for E126's hint.

Why a cache: `ast.parse` costs about half a millisecond per kilobyte of source (0.15 s of
CPU for the 300 KB, 5,000-function tools file of `benchmarks/check_speed.py`, more than
checking the 7,000-line program that names them), while reading a summary back costs about
a millisecond. A module of `CACHED_FROM` bytes or more has its summary stored in the
parser's cache folder (`mnlang.syntax.lalr.cache_dir`), one file per module path, holding
the interpreter's version (what `ast.parse` accepts depends on it) and the module's whole
source beside the summary: a summary is used only when both are equal to the current ones,
byte for byte, so the cache is keyed on all it depends on (no hash, no modification time),
and a changed module overwrites its entry. Smaller modules are parsed every time (a few
milliseconds at most), so tests and examples leave nothing in the cache. A missing,
unreadable or read-only cache only costs the parse.
"""

from __future__ import annotations

import ast
import contextlib
import marshal
import os
import sys
import zlib
from pathlib import Path

import msgspec

from mnlang.deep import steady_recursion_limit
from mnlang.syntax.lalr import cache_dir

# Bump when the summary's layout or what it is computed from changes.
_FORMAT = 2
CACHED_FROM = 32 * 1024


class Signature(msgspec.Struct, frozen=True):
    """What a call by keyword needs of a function."""

    accepted: frozenset[str]
    required: tuple[str, ...]
    positional_only: tuple[str, ...]
    any_keyword: bool


# A function's signature as stored: accepted names, required, positional-only, `**kwargs`.
RawSignature = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], bool]


class PythonSummary(msgspec.Struct, frozen=True):
    """A parsed module's names, as the checker reads them."""

    # Each module-level name's last binding: a function's signature, or None for anything
    # else. Kept as stored, and made a `Signature` only for the names a program asks about
    # (a 5,000-function module's would cost more than reading it back).
    bindings: dict[str, RawSignature | None]
    dynamic: bool  # `import *` or a module-level `__getattr__`
    functions: tuple[str, ...]  # module-level `def`/`async def` names, in source order

    def signature(self, name: str) -> Signature | None:
        """The signature of the function `name` is bound to, None when it is not a function."""
        raw = self.bindings.get(name)
        if raw is None:
            return None
        accepted, required, positional_only, any_keyword = raw
        return Signature(frozenset(accepted), required, positional_only, any_keyword)


def read_summary(path: Path) -> PythonSummary | None:
    """The summary of the module at `path`; None when it cannot be read or parsed."""
    try:
        source = path.read_bytes()
    except OSError:
        return None
    if len(source) < CACHED_FROM:
        return _summarize(source, path)
    entry = _cache_file(path)
    if entry is not None:
        cached = _load(entry, source)
        if cached is not None:
            return cached[0]
    summary = _summarize(source, path)
    if entry is not None:
        _store(entry, source, summary)
    return summary


def _summarize(source: bytes, path: Path) -> PythonSummary | None:
    try:
        with steady_recursion_limit():  # see `steady_recursion_limit`
            tree = ast.parse(source, str(path))
    except (SyntaxError, ValueError):
        return None
    owners: dict[str, ast.stmt] = {}
    _bindings(tree.body, owners)
    bindings: dict[str, RawSignature | None] = {
        name: _from_ast(owner.args)
        if isinstance(owner, ast.FunctionDef | ast.AsyncFunctionDef)
        else None
        for name, owner in owners.items()
    }
    functions = tuple(
        n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    return PythonSummary(bindings, _dynamic(tree), functions)


def _bindings(body: list[ast.stmt], out: dict[str, ast.stmt], top: ast.stmt | None = None) -> None:
    """Each name the statements bind at module level, to its last binding statement (a
    binding inside `if`/`try`/`with` maps to that compound statement)."""
    for node in body:
        owner = top or node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out[node.name] = owner
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                out[alias.asname or alias.name.split(".")[0]] = owner
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        out[name.id] = owner
        elif isinstance(node, ast.If | ast.Try | ast.With):
            inner = [n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]
            for handler in getattr(node, "handlers", []):
                inner += handler.body
            _bindings(inner, out, owner)


def _dynamic(tree: ast.Module) -> bool:
    """Whether names may appear that no statement binds: `import *` or `__getattr__`."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return True
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return True
    return False


def _from_ast(args: ast.arguments) -> RawSignature:
    positional = [*args.posonlyargs, *args.args]
    first_default = len(positional) - len(args.defaults)
    required = [
        a.arg for i, a in enumerate(positional) if i >= len(args.posonlyargs) and i < first_default
    ]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    return (
        tuple(a.arg for a in [*args.args, *args.kwonlyargs]),
        tuple(required),
        tuple(a.arg for i, a in enumerate(args.posonlyargs) if i < first_default),
        args.kwarg is not None,
    )


# ---- the cache -----------------------------------------------------------------------


def _cache_file(path: Path) -> Path | None:
    directory = cache_dir()
    if directory is None:
        return None
    where = str(path.resolve()).encode("utf-8", "surrogateescape")
    # The path only names the entry (a crc32 and the length keep names short; two paths
    # sharing a name take turns, each rewriting it); what is in it is checked in `_load`.
    return directory / f"pysummary-{_FORMAT}-{zlib.crc32(where):08x}-{len(where)}.marshal"


def _load(entry: Path, source: bytes) -> tuple[PythonSummary | None] | None:
    """`(summary,)` as stored for exactly this source and interpreter, else None."""
    try:
        data = marshal.loads(entry.read_bytes())
        form, version, stored_source, summary = data
        if form != _FORMAT or version != sys.version or stored_source != source:
            return None
        if summary is None:
            return (None,)
        bindings, dynamic, functions = summary
        return (PythonSummary(bindings, dynamic, functions),)
    except (OSError, ValueError, EOFError, TypeError):
        return None


def _store(entry: Path, source: bytes, summary: PythonSummary | None) -> None:
    """Write the entry whole or not at all; failing to cache only costs time later."""
    data = None
    if summary is not None:
        data = (summary.bindings, summary.dynamic, summary.functions)
    tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(marshal.dumps((_FORMAT, sys.version, source, data)))
        os.replace(tmp, entry)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
