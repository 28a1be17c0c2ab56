"""`mnc check` checks the Python behind tools and effects (mnlang.checker.impls): the
module exists, the function exists, its parameters match the declaration; functions
defined by `def` are read from source without running it; `--no-import` never imports."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang import api
from mnlang.cli import main

SOURCE = """
tool lookup(order_id: str, verbose: bool) -> str {
  impl: "tools:lookup"
}

effect pay(order_id: str, amount: money) -> str {
  impl: "tools:pay"
  key: "pay:{order_id}"
}

workflow w(order_id: str) -> str {
  a = lookup(order_id, false)
  b = pay(order_id, $1.00)
  return "{a} {b}"
}
"""


def folder_with(tmp_path: Path, tools: str | None, source: str = SOURCE) -> Path:
    (tmp_path / "main.mn").write_text(source, "utf-8")
    if tools is not None:
        (tmp_path / "tools.py").write_text(textwrap.dedent(tools), "utf-8")
    return tmp_path / "main.mn"


def codes(path: Path, allow_import: bool = True) -> list[tuple[str, int, str]]:
    report = api.check_files([path], allow_import=allow_import)
    return [
        (d.code, d.span.line if d.span else 0, d.message)
        for file in report.files
        for d in file.diagnostics
    ]


def test_matching_functions_pass(tmp_path: Path) -> None:
    main_mn = folder_with(
        tmp_path,
        """
        import asyncio

        def lookup(order_id, verbose=False, *, ctx=None):
            return order_id

        async def pay(order_id, amount, *, key):
            await asyncio.sleep(0)
            return key
        """,
    )
    assert codes(main_mn) == []


def test_a_missing_function_is_e126_with_a_suggestion(tmp_path: Path) -> None:
    main_mn = folder_with(
        tmp_path,
        """
        def lookup(order_id, verbose):
            return order_id

        def pay_order(order_id, amount):
            return order_id
        """,
    )
    [(code, line, message)] = codes(main_mn)
    assert code == "E126" and line == 7
    assert message == "`tools.py` has no function `pay` for `pay`"
    result = CliRunner().invoke(main, ["check", str(main_mn)])
    assert result.exit_code == 1
    assert "error[E126]" in result.output and "main.mn:7:9" in result.output
    assert 'impl: "tools:pay"' in result.output and "did you mean `pay_order`?" in result.output


def test_parameters_that_do_not_match_are_e127(tmp_path: Path) -> None:
    main_mn = folder_with(
        tmp_path,
        """
        def lookup(order_id):          # `verbose` is declared but not taken
            return order_id

        def pay(order_id, amount, currency, *, key):   # `currency` is required
            return key
        """,
    )
    found = codes(main_mn)
    assert [(c, line) for c, line, _ in found] == [("E127", 2), ("E127", 7)]
    assert "has no parameter `verbose`, which `lookup` declares" in found[0][2]
    assert "requires `currency`, which `pay` does not declare" in found[1][2]


def test_keyword_catch_all_and_positional_only(tmp_path: Path) -> None:
    main_mn = folder_with(
        tmp_path,
        """
        def lookup(**kwargs):
            return "x"

        def pay(order_id, amount, /):
            return "y"
        """,
    )
    found = codes(main_mn)
    assert [c for c, _, _ in found] == ["E127", "E127"]
    assert all("by position only" in m for _, _, m in found)


def test_a_missing_module_is_e125_unless_no_import(tmp_path: Path) -> None:
    # A module name no other test puts on sys.path: `tools` may be importable in a test
    # process that ran an example before (xdist shares processes between test files).
    main_mn = folder_with(tmp_path, None, SOURCE.replace('"tools:', '"absent_tools_e125:'))
    found = codes(main_mn)
    assert [(c, line) for c, line, _ in found] == [("E125", 3), ("E125", 7)]
    assert codes(main_mn, allow_import=False) == []
    result = CliRunner().invoke(main, ["check", str(main_mn), "--no-import"])
    assert result.exit_code == 0, result.output


def test_a_name_bound_by_import_is_imported_unless_no_import(tmp_path: Path) -> None:
    (tmp_path / "impl_helpers.py").write_text(
        "def lookup(order_id, verbose):\n    return order_id\n"
        "def make():\n    def pay(order_id):\n        return order_id\n    return pay\n",
        "utf-8",
    )
    main_mn = folder_with(
        tmp_path,
        """
        from impl_helpers import lookup, make
        (tmp := None)
        pay = make()
        """,
    )
    found = codes(main_mn)
    assert [(c, line) for c, line, _ in found] == [("E127", 6)]  # `amount` is not taken
    assert codes(main_mn, allow_import=False) == []


def test_a_module_that_fails_to_import_is_e128(tmp_path: Path) -> None:
    main_mn = folder_with(
        tmp_path,
        """
        import json
        raise RuntimeError("no database configured")
        lookup = pay = json.dumps
        """,
    )
    found = codes(main_mn)
    assert {c for c, _, _ in found} == {"E128"}
    assert "RuntimeError: no database configured" in found[0][2]
    assert codes(main_mn, allow_import=False) == []


def test_no_tool_code_runs_when_functions_are_defined_in_source(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    main_mn = folder_with(
        tmp_path,
        f"""
        open({str(marker)!r}, "w").close()

        def lookup(order_id, verbose):
            return order_id

        def pay(order_id, amount):
            return order_id
        """,
    )
    assert codes(main_mn) == []
    assert not marker.exists()


def test_json_format_carries_the_codes(tmp_path: Path) -> None:
    main_mn = folder_with(tmp_path, "def lookup(order_id, verbose):\n    pass\n")
    result = CliRunner().invoke(main, ["check", str(main_mn), "--format", "json"])
    found = json.loads(result.output)["diagnostics"]
    assert [d["code"] for d in found] == ["E126"]


def test_a_module_at_the_project_root_is_found_as_the_runtime_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug: `mnc check` looked for the module only beside the .mn file (E125), while
    # `mnc run` finds it at the project's root too (mnlang.modulepath.impl_module_file).
    # A module name nothing else puts on sys.path, so an installed lookup cannot find it.
    (tmp_path / "mnlang.toml").write_text('[project]\nname = "p"\n', "utf-8")
    (tmp_path / "root_tools_e125.py").write_text(
        "def lookup(order_id, verbose):\n    return order_id\n\n\n"
        "def pay(order_id, amount):\n    return order_id\n",
        "utf-8",
    )
    (tmp_path / "flows").mkdir()
    main_mn = tmp_path / "flows" / "main.mn"
    main_mn.write_text(SOURCE.replace('"tools:', '"root_tools_e125:'), "utf-8")
    monkeypatch.delenv("MNC_PATH", raising=False)
    assert codes(main_mn) == []


# ---- a large module's summary is cached (mnlang.checker.python_summary) ---------------


def _padded(tools: str) -> str:
    """`tools` followed by enough functions to be cached."""
    from mnlang.checker.python_summary import CACHED_FROM

    filler = "".join(f"def filler_{i}(a, b=1, *, c):\n    return a\n\n\n" for i in range(2000))
    text = textwrap.dedent(tools) + "\n\n" + filler
    assert len(text.encode()) >= CACHED_FROM
    return text


def test_a_large_modules_summary_is_read_from_the_cache_and_follows_its_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnlang.checker import python_summary

    cache = tmp_path / "cache"
    monkeypatch.setenv("MNC_CACHE_DIR", str(cache))
    folder = tmp_path / "flow"
    folder.mkdir()
    main_mn = folder_with(
        folder,
        _padded(
            "def lookup(order_id):\n    return order_id\n\ndef pay_order(order_id):\n    pass\n"
        ),
    )
    tools = folder / "tools.py"
    uncached = python_summary._summarize(tools.read_bytes(), tools)
    first = codes(main_mn, allow_import=False)
    assert [c for c, _, _ in first] == ["E127", "E126"]
    [entry] = cache.glob("pysummary-*.marshal")
    assert python_summary.read_summary(tools) == uncached
    # Read back, not parsed: parsing is made to fail, and the answer is the same.
    monkeypatch.setattr(python_summary.ast, "parse", _no_parse)
    assert codes(main_mn, allow_import=False) == first
    monkeypatch.undo()
    monkeypatch.setenv("MNC_CACHE_DIR", str(cache))
    # An edit of the module is seen, and rewrites the entry.
    edited = tools.read_text("utf-8").replace(
        "def pay_order(order_id)", "def pay(order_id, amount)"
    )
    tools.write_text(edited, "utf-8")
    assert [c for c, _, _ in codes(main_mn, allow_import=False)] == ["E127"]
    assert list(cache.glob("pysummary-*.marshal")) == [entry]
    # A module that stops parsing is read as unparsed (nothing to say without importing).
    tools.write_text(tools.read_text("utf-8") + "\ndef broken(:\n", "utf-8")
    assert codes(main_mn, allow_import=False) == []
    assert python_summary.read_summary(tools) is None
    # A damaged entry only costs the parse.
    tools.write_text(_padded("def lookup(order_id, verbose):\n    pass\n"), "utf-8")
    entry.write_bytes(b"\x00garbage")
    assert [c for c, _, _ in codes(main_mn, allow_import=False)] == ["E126"]


def _no_parse(*args: object, **kwargs: object) -> None:
    raise AssertionError("parsed, not read from the cache")


def test_without_a_writable_cache_a_large_module_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", "utf-8")
    monkeypatch.setenv("MNC_CACHE_DIR", str(blocker / "cache"))
    main_mn = folder_with(tmp_path, _padded("def lookup(order_id, verbose):\n    pass\n"))
    assert [c for c, _, _ in codes(main_mn, allow_import=False)] == ["E126"]
    assert [c for c, _, _ in codes(main_mn, allow_import=False)] == ["E126"]


def test_the_mcp_prefix_is_the_locks() -> None:
    from mnlang.checker.impls import MCP_PREFIX
    from mnlang.mcp.lock import IMPL_PREFIX

    assert MCP_PREFIX == IMPL_PREFIX
