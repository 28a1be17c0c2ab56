"""`mnc check`: exit codes, formats, unreadable inputs, and what it imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mnlang.cli import main
from mnlang.stores import open_store
from mnlang.stores.base import NewRun

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund" / "refund.mn"

CLEAN = "type A {\n  x: int\n}\n"
SYNTAX_ERROR = "type A {\n  x = int\n}\n"
# An unused result is a warning (W101), not an error.
WARNING = (
    "tool f(x: int) -> int {\n"
    '  impl: "tools:f"\n'
    "}\n"
    "workflow w(x: int) -> int {\n"
    "  y = f(x)\n"
    "  return x\n"
    "}\n"
)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clean.mn").write_text(CLEAN, "utf-8")
    (tmp_path / "broken.mn").write_text(SYNTAX_ERROR, "utf-8")
    (tmp_path / "warns.mn").write_text(WARNING, "utf-8")
    (tmp_path / "tools.py").write_text("def f(x):\n    return x\n", "utf-8")  # its `impl`
    return tmp_path


def assert_no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output


def test_clean_file_passes(files: Path) -> None:
    result = run("check", "clean.mn")
    assert result.exit_code == 0
    assert result.output == "all checks passed\n"


def test_the_refund_example_passes() -> None:
    result = run("check", str(REFUND))
    assert result.exit_code == 0, result.output


def test_errors_exit_1_with_a_full_report(files: Path) -> None:
    result = run("check", "clean.mn", "broken.mn")
    assert result.exit_code == 1
    assert result.output.splitlines()[:5] == [
        "error[E012]: expected `:` after `x`, found `=`",
        " --> broken.mn:2:5",
        "  |",
        "2 |   x = int",
        "  |     ^",
    ]
    assert result.output.endswith("found 1 error in 1 file\n")


def test_warnings_pass_unless_strict(files: Path) -> None:
    result = run("check", "warns.mn")
    assert result.exit_code == 0, result.output
    assert "warning[W101]" in result.output
    assert result.output.endswith("found 1 warning in 1 file\n")
    strict = run("check", "--strict", "warns.mn")
    assert strict.exit_code == 1
    assert strict.output.endswith("found 1 warning in 1 file (warnings fail with --strict)\n")


def test_concise_format(files: Path) -> None:
    result = run("check", "--format", "concise", "broken.mn", "warns.mn")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "broken.mn:2:5: error[E012] expected `:` after `x`, found `=`"
    assert lines[1].startswith("warns.mn:5:3: warning[W101] ")
    assert lines[2] == "found 1 error and 1 warning in 2 files"


def test_json_format(files: Path) -> None:
    result = run("check", "--format", "json", "broken.mn", "missing.mn", "clean.mn")
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["summary"] == {"errors": 2, "warnings": 0, "files_checked": 3}
    first, second = document["diagnostics"]
    assert first["code"] == "E012" and first["severity"] == "error"
    assert first["span"]["line"] == 2 and first["span"]["col"] == 5
    assert first["file"] == str(files / "broken.mn")
    assert second["code"] == "E090" and second["span"] is None and second["file"] == "missing.mn"


def test_missing_file(files: Path) -> None:
    result = run("check", "nope.mn")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "error[E090]: file not found: `nope.mn`" in result.output


def test_a_directory_is_refused(files: Path) -> None:
    (files / "flows").mkdir()
    result = run("check", "flows")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "error[E091]: `flows` is a directory" in result.output
    assert "help: pass `.mn` files, e.g. `mnc check flows/*.mn`" in result.output


def test_not_utf8(files: Path) -> None:
    (files / "latin1.mn").write_bytes(b"type A {\n  caf\xe9: int\n}\n")
    result = run("check", "latin1.mn")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "error[E092]" in result.output and " --> latin1.mn:2:6" in result.output


def test_empty_file_warns(files: Path) -> None:
    (files / "empty.mn").write_text("", "utf-8")
    result = run("check", "empty.mn")
    assert result.exit_code == 0
    assert "warning[W001]: empty file: nothing to check" in result.output
    assert run("check", "--strict", "empty.mn").exit_code == 1


def test_a_10_mb_file(files: Path) -> None:
    with (files / "huge.mn").open("wb") as f:
        f.truncate(10 * 1024 * 1024)
    result = run("check", "huge.mn")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "error[E093]: `huge.mn` is 10.0 MB; the limit is 8 MB" in result.output


def test_a_file_checked_twice_reports_once(files: Path) -> None:
    result = run("check", "--format", "concise", "broken.mn", "broken.mn")
    assert result.output.count("error[E012]") == 1


def test_usage_errors_exit_2() -> None:
    assert run("check").exit_code == 2
    assert run("check", "--format", "xml", "a.mn").exit_code == 2
    assert run("nonsense").exit_code == 2


def test_no_colour_unless_asked(files: Path) -> None:
    assert "\x1b[" not in run("check", "broken.mn").output
    coloured = run("check", "--color", "always", "broken.mn").output
    assert "\x1b[" in coloured and "error[E012]" in coloured


def test_help_and_version() -> None:
    assert "check" in run("--help").output
    assert run("--version").output.startswith("mnc, version ")


def test_a_real_mnc_process(tmp_path: Path) -> None:
    (tmp_path / "broken.mn").write_text(SYNTAX_ERROR, "utf-8")
    mnc = Path(sys.executable).with_name("mnc")
    command = [str(mnc)] if mnc.exists() else [sys.executable, "-m", "mnlang.cli"]
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [*command, "check", "broken.mn"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("error[E012]: expected `:` after `x`, found `=`\n --> broken.mn")
    assert done.stderr == ""


def imported_after(code: str, tmp_path: Path) -> set[str]:
    """Top-level packages imported by a fresh interpreter running `code`."""
    program = (
        f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))\n"
    )
    env = {**os.environ, "MNC_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())
    return modules | {m.split(".")[0] for m in modules}


MODEL_SDKS = {"openai", "anthropic", "mcp"}
"""Imported only when an agent uses their provider (or an MCP tool runs)."""


def test_importing_the_cli_stays_light(tmp_path: Path) -> None:
    loaded = imported_after("import mnlang.cli", tmp_path)
    assert not loaded & {"rich", "pydantic", "graphviz", "lark", "sqlite_utils", *MODEL_SDKS}
    assert "mnlang.checker" not in loaded


def test_mnlang_and_mnc_help_import_no_model_sdk(tmp_path: Path) -> None:
    help_ = (
        "import contextlib, io\n"
        "from mnlang.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"  # the help names `openai`
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    for code in ("import mnlang", "import mnlang.api", help_):
        assert not imported_after(code, tmp_path) & MODEL_SDKS, code


def test_mnc_check_imports_no_heavy_packages(tmp_path: Path) -> None:
    run_check = (
        "from mnlang.cli import main\n"
        "try:\n"
        f"    main(['check', {str(REFUND)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    cold = imported_after(run_check, tmp_path)  # an empty cache: Lark builds the tables
    warm = imported_after(run_check, tmp_path)
    assert "lark" in cold
    assert not warm & {"rich", "pydantic", "graphviz", "lark", "sqlite_utils", *MODEL_SDKS}


def test_journal_commands_import_sqlite_utils_only_to_create_a_journal(tmp_path: Path) -> None:
    """sqlite-utils builds and migrates the schema; reading an existing journal (`mnc runs`,
    `mnc show`) goes without it, and without rich, pydantic or the checker."""
    journal = tmp_path / "journal.db"

    def command(*args: str) -> str:
        return (
            "import os\n"
            f"os.environ['MNC_DB'] = {str(journal)!r}\n"
            "from mnlang.cli import main\n"
            "try:\n"
            f"    main({list(args)!r})\n"
            "except SystemExit:\n"
            "    pass\n"
        )

    # A read command never creates the journal (so it has nothing to migrate either).
    assert "sqlite_utils" not in imported_after(command("runs"), tmp_path)
    assert not journal.exists()
    with open_store(journal) as store:
        store.create_run(NewRun(run_id="r1", workflow="w", args={}))
    for args in (("runs",), ("show", "r1")):
        loaded = imported_after(command(*args), tmp_path)
        assert not loaded & {"sqlite_utils", "rich", "pydantic", "graphviz", "lark"}, args
        assert "mnlang.checker" not in loaded
