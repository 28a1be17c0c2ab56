"""`mnc` imports a command's module only when that command is asked for: its help, and the
list in `mnc --help`, must read exactly as they would with every command imported (the
eager group below, built the way `mnlang.cli` built it before it went lazy). And the
start-up of `mnc --help` must stay free of the heavy packages."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mnlang.cli
from mnlang.cli import main

CLI = Path(mnlang.cli.__file__).parent
ROOT = CLI.parent.parent

# Every top-level command, as `mnc` registered them eagerly.
EAGER = (
    "authoring.check",
    "authoring.fmt_command",
    "authoring.compile_command",
    "authoring.graph",
    "authoring.diff",
    "running.run_command",
    "running.resume",
    "running.worker",
    "running.workers",
    "running.schedules_group",
    "running.upgrade",
    "running.db_group",
    "running.gc",
    "people.approve",
    "people.reject",
    "people.signal_command",
    "people.cancel",
    "people.retry",
    "reading.runs",
    "reading.show",
    "reading.get",
    "reading.log",
    "reading.metrics",
    "replaying.replay_command",
    "replaying.fork_command",
    "observing.export_group",
    "observing.deliveries_group",
    "tools.test_command",
    "tools.bench",
    "tools.lsp_command",
    "tools.ui_command",
    "project_commands.init",
    "tools.serve_command",
    "mcp_commands.mcp_group",
)
# Packages `mnc --help` must not import: each costs tens of milliseconds at start-up.
HEAVY = {
    "pydantic",
    "pydantic_core",
    "rich",
    "sqlite_utils",
    "lark",
    "httpx2",
    "anthropic",
    "openai",
    "mcp",
    "graphviz",
    "starlette",
    "pygls",
}


def command_of(dotted: str) -> click.Command:
    module, attribute = dotted.split(".")
    command = getattr(importlib.import_module(f"mnlang.cli.{module}"), attribute)
    assert isinstance(command, click.Command)
    return command


def eager_group() -> click.Group:
    assert main.callback is not None
    group = click.Group(
        "main",
        callback=main.callback,
        params=list(main.params),
        help=main.help,
        context_settings=main.context_settings,
    )
    for dotted in EAGER:
        group.add_command(command_of(dotted))
    return group


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command under `group` (itself first), as the words that name it."""
    yield prefix
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


def help_text(group: click.Group, words: tuple[str, ...], width: int) -> str:
    result = CliRunner().invoke(
        group, [*words, "--help"], prog_name="mnc", terminal_width=width, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_listed_once() -> None:
    eager = eager_group()
    assert sorted(eager.commands) == main.list_commands(click.Context(main))
    assert len(eager.commands) == len(EAGER)


def test_no_command_of_the_cli_modules_is_left_out() -> None:
    """A command written in a module of `mnlang/cli/` is registered, at the top (EAGER) or
    inside a group, so that the table cannot silently miss a new one."""
    eager = eager_group()
    reachable: set[int] = set()
    stack: list[click.Command] = list(eager.commands.values())
    while stack:
        command = stack.pop()
        reachable.add(id(command))
        if isinstance(command, click.Group):
            stack.extend(command.commands.values())
    for path in sorted(CLI.glob("*.py")):
        if path.stem.startswith("__"):  # the group itself; `python -m` (it runs `mnc`)
            continue
        module = importlib.import_module(f"mnlang.cli.{path.stem}")
        for name, value in vars(module).items():
            if isinstance(value, click.Command):
                assert id(value) in reachable, f"mnlang.cli.{path.stem}.{name} is not registered"


@pytest.mark.parametrize("width", [50, 64, 80])
def test_help_of_every_command_is_as_with_every_command_imported(width: int) -> None:
    eager = eager_group()
    paths = list(command_paths(eager))
    assert len(paths) > len(EAGER)  # the groups' commands too
    for words in paths:
        assert help_text(main, words, width) == help_text(eager, words, width), words


def test_an_unknown_command_is_refused_as_before() -> None:
    for group in (main, eager_group()):
        result = CliRunner().invoke(group, ["chek"], prog_name="mnc")
        assert result.exit_code == 2
        assert "No such command 'chek'." in result.output


def imported_by(argv: list[str], exit_code: int = 0, **environ: str) -> set[str]:
    """The modules a real `mnc` process imported (`python -X importtime`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(environ)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mnlang.cli", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == exit_code, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "click" in names, "importtime printed nothing"
    return names


def test_mnc_help_imports_no_heavy_package_and_no_command_module() -> None:
    names = imported_by(["--help"])
    assert {n.split(".")[0] for n in names} & HEAVY == set()
    commands = {n for n in names if n.startswith("mnlang.cli.")}
    assert commands <= {"mnlang.cli.__main__"}


def test_a_command_imports_only_its_own_module() -> None:
    names = imported_by(["runs", "--help"])
    commands = {n for n in names if n.startswith("mnlang.cli.")} - {"mnlang.cli.__main__"}
    assert commands == {"mnlang.cli.reading", "mnlang.cli.shared"}
    assert {n.split(".")[0] for n in names} & HEAVY == set()


def test_running_a_compiled_ir_file_imports_neither_parser_nor_checker(tmp_path: Path) -> None:
    refund = ROOT / "examples" / "refund"
    ir = tmp_path / "refund.json"
    subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "compile", str(refund / "refund.mn"), "-o", str(ir)],
        check=True,
        capture_output=True,
    )
    names = imported_by(
        [
            "run",
            str(ir),
            "--models",
            f"scripted:{refund / 'replies.json'}",
            "--input",
            '{"order_id": "o-1002", "complaint": "The mug arrived with a crack."}',
        ],
        exit_code=3,  # waiting for the manager, as in demo.sh
        MNC_DB=str(tmp_path / "journal.db"),
        MNC_EXAMPLE_LEDGER=str(tmp_path / "ledger.jsonl"),
    )
    assert "mnlang.runtime.run" in names
    assert not {n for n in names if n.startswith(("mnlang.checker", "mnlang.syntax", "lark"))}
