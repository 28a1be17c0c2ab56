"""The examples and the standard library: each checks clean, and each example folder is whole.

An example folder `examples/<name>/` holds `<name>.mn` (its entry workflow is
the one named `<name>`), a `README.md`, `tools.py` with a Python function for
every `impl:`, `replies.json` with scripted model replies per agent, and
`input.json` with a sample input for the entry workflow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mnlang.checker import check
from mnlang.checker.program import Program
from mnlang.errors import MnError
from mnlang.syntax import ast

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STDLIB = ROOT / "stdlib"
REQUIRED_FILES = ("README.md", "tools.py", "replies.json", "input.json")


def example_dirs() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and any(p.glob("*.mn")))


def mn_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*/*.mn")) + sorted(STDLIB.glob("*.mn"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", mn_files(), ids=_name)
def test_checks_with_no_errors_and_no_warnings(path: Path) -> None:
    result = check(path)
    shown = "\n".join(f"{d.span}: {d.code} {d.message}" for d in result.diagnostics)
    assert result.program is not None, shown
    assert not result.diagnostics, shown


def test_there_are_at_least_four_examples_and_a_stdlib_module_beside_policies() -> None:
    names = {p.name for p in example_dirs()}
    assert {"refund", "research", "invoice", "pipeline"} <= names
    assert len(list(STDLIB.glob("*.mn"))) >= 2


# ---- the folder of each example -------------------------------------------------


def _program(folder: Path) -> Program:
    result = check(folder / f"{folder.name}.mn")
    assert result.program is not None, [d.message for d in result.diagnostics]
    return result.program


def _entry(program: Program, name: str) -> ast.WorkflowDecl:
    sym = program.root.scope.get(name)
    assert sym is not None and isinstance(sym.decl, ast.WorkflowDecl), f"no workflow `{name}`"
    return sym.decl


def _callables(program: Program, kinds: tuple[str, ...]) -> list[tuple[Path, ast.CallableDecl]]:
    """Tools, effects or agents declared in the example's own files (not the stdlib)."""
    found = []
    for sym in program.symbols.values():
        if sym.kind in kinds and not sym.module.dotted.startswith("std."):
            assert isinstance(sym.decl, ast.CallableDecl)
            found.append((sym.module.path, sym.decl))
    return found


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _impl(mn_path: Path, decl: ast.CallableDecl) -> Callable[..., Any]:
    entry = decl.options.get("impl")
    assert entry is not None and isinstance(entry.value, ast.StrLit)
    text = entry.value.constant
    assert text is not None
    module_name, _, function = text.partition(":")
    module = _load_module(mn_path.parent / f"{module_name}.py")
    impl = getattr(module, function, None)
    assert callable(impl), f"{decl.name.name}: `{text}` names no function"
    return impl  # type: ignore[no-any-return]


@pytest.mark.parametrize("folder", example_dirs(), ids=lambda p: p.name)
def test_example_folder_has_its_files(folder: Path) -> None:
    missing = [n for n in (f"{folder.name}.mn", *REQUIRED_FILES) if not (folder / n).is_file()]
    assert not missing, f"{folder.name} lacks {missing}"


@pytest.mark.parametrize("folder", example_dirs(), ids=lambda p: p.name)
def test_every_impl_is_a_function_with_the_declared_parameters(folder: Path) -> None:
    program = _program(folder)
    for mn_path, decl in _callables(program, ("tool", "effect")):
        signature = inspect.signature(_impl(mn_path, decl))
        positional = [p.name for p in signature.parameters.values() if p.kind is not p.KEYWORD_ONLY]
        assert positional == [p.name.name for p in decl.params], decl.name.name
        ctx = signature.parameters.get("ctx")
        assert ctx is not None and ctx.kind is ctx.KEYWORD_ONLY and ctx.default is None, (
            f"{decl.name.name} must take `*, ctx=None`"
        )


@pytest.mark.parametrize("folder", example_dirs(), ids=lambda p: p.name)
def test_input_fits_the_entry_workflow(folder: Path) -> None:
    workflow = _entry(_program(folder), folder.name)
    given = json.loads((folder / "input.json").read_text("utf-8"))
    params = {p.name.name: p for p in workflow.params}
    assert set(given) <= set(params), f"unknown inputs {sorted(set(given) - set(params))}"
    required = {name for name, p in params.items() if p.default is None}
    assert required <= set(given), f"missing inputs {sorted(required - set(given))}"


@pytest.mark.parametrize("folder", example_dirs(), ids=lambda p: p.name)
def test_replies_script_every_agent_with_the_declared_fields(folder: Path) -> None:
    program = _program(folder)
    replies = json.loads((folder / "replies.json").read_text("utf-8"))
    agents = {decl.name.name: decl for _, decl in _callables(program, ("agent",))}
    assert set(replies) == set(agents), "replies.json must script exactly the example's agents"
    for name, decl in agents.items():
        assert isinstance(replies[name], list) and replies[name], f"no replies for `{name}`"
        record = _record_decl(program, decl.returns.name)
        for reply in replies[name]:
            if record is None:
                continue
            fields = {f.name.name: f for f in record.fields}
            assert set(reply) <= set(fields), f"{name}: unknown fields {set(reply) - set(fields)}"
            required = {n for n, f in fields.items() if f.default is None and not f.type.optional}
            assert required <= set(reply), f"{name}: reply lacks {required - set(reply)}"


def _record_decl(program: Program, type_name: str) -> ast.TypeDecl | None:
    for sym in program.symbols.values():
        if sym.kind == "type" and sym.decl.name.name == type_name:
            assert isinstance(sym.decl, ast.TypeDecl)
            return sym.decl
    return None


# ---- effects report to the ledger ---------------------------------------------------


class _Ctx:
    """What the runtime passes as `ctx`: the run, the step, the attempt and the key."""

    def __init__(self, key: str) -> None:
        self.run_id = "run-test"
        self.step_id = "step-test"
        self.attempt = 1
        self.key = key


def _sample(program: Program, ref: ast.TypeRef) -> Any:
    """A plain Python value of a declared type, as the runtime hands it to a tool."""
    if ref.optional:
        return None
    samples: dict[str, Any] = {
        "str": "sample",
        "int": 2,
        "float": 0.5,
        "bool": True,
        "money": Decimal("12.50"),
        "duration": 1000,
        "json": {"n": 1},
        "list": [],
        "map": {},
    }
    if ref.name in samples:
        return samples[ref.name]
    record = _record_decl(program, ref.name)
    if record is not None:
        return {f.name.name: _sample(program, f.type) for f in record.fields}
    for sym in program.symbols.values():
        if sym.kind == "enum" and sym.decl.name.name == ref.name:
            assert isinstance(sym.decl, ast.EnumDecl)
            return sym.decl.members[0].name
    raise AssertionError(f"no sample for type {ref.name}")


@pytest.mark.parametrize("folder", example_dirs(), ids=lambda p: p.name)
def test_each_effect_call_appends_one_ledger_line_with_its_key(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(ledger))
    program = _program(folder)
    effects = _callables(program, ("effect",))
    assert effects, f"{folder.name} declares no effect"
    for count, (mn_path, decl) in enumerate(effects, 1):
        args = [_sample(program, p.type) for p in decl.params]
        # A receiver may refuse the sample (no hotel 2): the call was sent all the same.
        with contextlib.suppress(MnError):
            _impl(mn_path, decl)(*args, ctx=_Ctx(f"key-{decl.name.name}"))
        rows = [json.loads(line) for line in ledger.read_text("utf-8").splitlines()]
        assert len(rows) == count, f"{decl.name.name} must append exactly one ledger line"
        assert rows[-1]["key"] == f"key-{decl.name.name}"
        assert set(rows[-1]["args"]) == {p.name.name for p in decl.params}
