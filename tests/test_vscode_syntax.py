"""The VS Code extension in `vscode-syntax/`: its TextMate grammar stays in step with the
language (keywords, error kinds, builtin types and functions), its manifest points at files
that exist, its npm tests (grammar unit assertions, snapshots of every example, the
extension's own node tests) pass when node is installed, and `vsce package` makes a small
.vsix of it without a warning."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
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
    # `main` is the bundle `npm run bundle` makes of extension.js (before packaging).
    assert manifest["main"] == "./dist/extension.js"
    assert "extension.js --bundle" in manifest["scripts"]["bundle"]
    assert manifest["scripts"]["vscode:prepublish"] == "npm run bundle"
    assert (EXTENSION / "extension.js").is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    assert "@vscode/vsce" in manifest["devDependencies"]
    assert "private" not in manifest
    assert manifest["license"] == "MIT"  # the project's (pyproject.toml)
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text("utf-8")


def test_every_example_and_stdlib_module_has_a_grammar_snapshot() -> None:
    sources = [*ROOT.glob("examples/*/*.mn"), *ROOT.glob("stdlib/*.mn")]
    snap = EXTENSION / "tests" / "snap"
    missing = [
        str(p.relative_to(ROOT))
        for p in sources
        if not (snap / p.name).is_file() or not (snap / f"{p.name}.snap").is_file()
    ]
    assert not missing, f"run `npm run snap:examples` in vscode-syntax/ for {missing}"


def npm_installed(tool: str) -> str:
    """npm, once `npm ci` has installed `tool` in vscode-syntax/ (else the test is skipped,
    or fails in CI, which installs them)."""
    npm = shutil.which("npm")
    installed = (EXTENSION / "node_modules" / ".bin" / tool).exists()
    if npm is None or not installed:
        if os.environ.get("CI") and npm is not None:
            pytest.fail("CI must run `npm ci` in vscode-syntax/ before the tests")
        pytest.skip(f"node and `npm ci` in vscode-syntax/ are needed for {tool}")
    return npm


def test_the_npm_grammar_and_extension_tests_pass() -> None:
    npm = npm_installed("vscode-tmgrammar-test")
    result = subprocess.run(
        [npm, "test"], cwd=EXTENSION, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_vsce_packages_a_small_vsix_without_warnings(tmp_path: Path) -> None:
    """`vsce package` (what CI and a user run) on a copy of the extension, so the bundle it
    makes first does not race the node tests' own: no warning, and the .vsix holds the
    manifest, grammar, language configuration and bundled client, and none of the tests,
    snapshots, sources or node_modules."""
    npm_installed("vsce")
    copy = tmp_path / "vscode-syntax"
    shutil.copytree(EXTENSION, copy, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (copy / "node_modules").symlink_to(EXTENSION / "node_modules", target_is_directory=True)
    out = tmp_path / "mnlang.vsix"
    result = subprocess.run(
        [str(copy / "node_modules" / ".bin" / "vsce"), "package", "--out", str(out)],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "WARNING" not in output and "ERROR" not in output, output[-4000:]
    with zipfile.ZipFile(out) as vsix:
        names = set(vsix.namelist())
        manifest = json.loads(vsix.read("extension/package.json"))
        client = vsix.read("extension/dist/extension.js").decode("utf-8")
    assert {
        "extension/package.json",
        "extension/syntaxes/mn.tmLanguage.json",
        "extension/language-configuration.json",
        "extension/dist/extension.js",
        "extension/readme.md",
        "extension/LICENSE.txt",
    } <= names, names
    assert not [n for n in names if "/tests/" in n or n.endswith(".snap")], names
    assert not [n for n in names if "node_modules" in n or n == "extension/extension.js"]
    assert manifest["main"] == "./dist/extension.js"
    # The language client is inside the bundle, with the requests quick fixes come by.
    assert '"lsp"' in client and "textDocument/codeAction" in client
    assert out.stat().st_size < 200_000, out.stat().st_size
