"""The VS Code extension in `vscode-syntax/`: its TextMate grammar stays in step with the
language (keywords, error kinds, builtin types and functions), its manifest points at files
that exist, and its npm tests (grammar unit assertions, snapshots of every example, the
extension's own node tests) pass when node is installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mnlang.checker.builtins import BUILTINS
from mnlang.checker.options import ERROR_KINDS, UNCATCHABLE_KINDS
from mnlang.checker.types import PRIMITIVES
from mnlang.syntax.tokens import KEYWORDS

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "vscode-syntax"
GRAMMAR = EXTENSION / "syntaxes" / "mn.tmLanguage.json"
_ALTERNATIVES = re.compile(r"\\b\(\?:([\w|]+)\)\\b")


def grammar() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GRAMMAR.read_text("utf-8"))
    return data


def words(patterns: list[dict[str, Any]]) -> set[str]:
    """The words of `\\b(?:a|b|c)\\b` alternations in the patterns' regexes."""
    found: set[str] = set()
    for pattern in patterns:
        for match in _ALTERNATIVES.finditer(pattern.get("match", "")):
            found.update(match.group(1).split("|"))
    return found


def test_the_grammar_highlights_exactly_the_reserved_words() -> None:
    keywords = words(grammar()["repository"]["keywords"]["patterns"])
    assert keywords == set(KEYWORDS), (
        f"add to syntaxes/mn.tmLanguage.json: {sorted(set(KEYWORDS) - keywords)}; "
        f"not reserved: {sorted(keywords - set(KEYWORDS))}"
    )


def test_every_reserved_word_is_a_terminal_of_the_lark_grammar() -> None:
    declared = set(re.findall(r"\b[A-Z_]+\b", (ROOT / "grammar" / "mnlang.lark").read_text()))
    assert set(KEYWORDS.values()) <= declared


def test_the_grammar_knows_the_error_kinds_types_and_builtins() -> None:
    repo = grammar()["repository"]
    kinds = words(repo["catch-clause"]["patterns"])
    assert kinds == {*ERROR_KINDS, *UNCATCHABLE_KINDS, "any"}
    assert words(repo["error-kind-list"]["patterns"]) == kinds
    assert words(repo["type"]["patterns"]) == {*PRIMITIVES, "list", "map"}
    builtins = re.search(r"\\b\(([\w|]+)\)", repo["call"]["patterns"][0]["match"])
    assert builtins is not None
    assert set(builtins.group(1).split("|")) == set(BUILTINS)


def test_the_manifest_points_at_the_grammar_and_language_configuration() -> None:
    manifest = json.loads((EXTENSION / "package.json").read_text("utf-8"))
    (language,) = manifest["contributes"]["languages"]
    (contributed,) = manifest["contributes"]["grammars"]
    assert language["id"] == contributed["language"] == "mn"
    assert language["extensions"] == [".mn"]
    assert contributed["scopeName"] == grammar()["scopeName"] == "source.mn"
    assert (EXTENSION / contributed["path"]).resolve() == GRAMMAR
    config = json.loads((EXTENSION / language["configuration"]).read_text("utf-8"))
    assert config["comments"]["lineComment"] == "#"
    assert all("string" in pair["notIn"] for pair in config["autoClosingPairs"])
    assert (EXTENSION / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]


def test_every_example_and_stdlib_module_has_a_grammar_snapshot() -> None:
    sources = [*ROOT.glob("examples/*/*.mn"), *ROOT.glob("stdlib/*.mn")]
    snap = EXTENSION / "tests" / "snap"
    missing = [
        str(p.relative_to(ROOT))
        for p in sources
        if not (snap / p.name).is_file() or not (snap / f"{p.name}.snap").is_file()
    ]
    assert not missing, f"run `npm run snap:examples` in vscode-syntax/ for {missing}"


def test_the_npm_grammar_and_extension_tests_pass() -> None:
    npm = shutil.which("npm")
    installed = (EXTENSION / "node_modules" / ".bin" / "vscode-tmgrammar-test").exists()
    if npm is None or not installed:
        if os.environ.get("CI") and npm is not None:
            pytest.fail("CI must run `npm ci` in vscode-syntax/ before the tests")
        pytest.skip("node and `npm ci` in vscode-syntax/ are needed for the grammar tests")
    result = subprocess.run(
        [npm, "test"], cwd=EXTENSION, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
