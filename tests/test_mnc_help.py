"""`mnc --help` is printed from a kept text without importing click (`mnlang.mnc`):
it must be, byte for byte, what click prints, as a real `mnc` process, at every terminal
width and in every environment, and click must still answer wherever its text differs."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path
from subprocess import CompletedProcess

import pytest

import mnlang.cli
from mnlang import mnc_help

ROOT = Path(mnlang.cli.__file__).parent.parent.parent

# What pip's console script for `mnc = "mnlang.mnc:run"` holds, and the same script
# calling the click group directly, as `mnc` did before the shortcut.
SCRIPT = """import re
import sys
from {module} import {function}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({function}())
"""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(`mnc` as installed, `mnc` straight to click), each a file named `mnc`."""
    base = tmp_path_factory.mktemp("scripts")
    made = []
    for folder, module, function in (
        ("entry", "mnlang.mnc", "run"),
        ("click", "mnlang.cli", "main"),
    ):
        path = base / folder / "mnc"
        path.parent.mkdir()
        path.write_text(SCRIPT.format(module=module, function=function), "utf-8")
        made.append(path)
    return made[0], made[1]


def environment(**given: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MNC_") and k not in ("COLUMNS", "LINES", "NO_COLOR")
    }
    env.update(given)
    return env


def run_traced(script: Path, argv: list[str], env: dict[str, str]) -> CompletedProcess[bytes]:
    """The script run with `-X importtime`: its stderr also says what it imported."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(script), *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=False,
    )


def run_piped(script: Path, argv: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    done = run_traced(script, argv, env)
    return done.returncode, done.stdout, strip_importtime(done.stderr)


def strip_importtime(stderr: bytes) -> bytes:
    return b"".join(
        line for line in stderr.splitlines(keepends=True) if not line.startswith(b"import time:")
    )


def imported_click(script: Path, argv: list[str], env: dict[str, str]) -> bool:
    done = run_traced(script, argv, env)
    return any(line.split(b"|")[-1].strip() == b"click" for line in done.stderr.splitlines())


def test_the_kept_text_is_what_click_renders_now() -> None:
    assert mnc_help.rendered() == mnc_help.TEXT, (
        "the kept `mnc --help` is stale: run `python -m mnlang.mnc_help` "
        "(then `ruff format mnlang/mnc_help.py`)"
    )
    # No character whose bytes depend on the output's encoding, no escape to strip.
    assert mnc_help.TEXT.isascii() and "\x1b" not in mnc_help.TEXT


ENVIRONMENTS = [
    {},
    {"COLUMNS": "80"},
    {"COLUMNS": "81"},
    {"COLUMNS": "200"},
    {"COLUMNS": "79"},
    {"COLUMNS": "64"},
    {"COLUMNS": "30"},
    {"COLUMNS": "0"},
    {"COLUMNS": "-5"},
    {"COLUMNS": "wide"},
    {"NO_COLOR": "1"},
    {"TERM": "dumb"},
    {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"},
    {"LC_ALL": "C", "LANG": "C"},
    {"PYTHONIOENCODING": "ascii"},
    {"LANGUAGE": "de", "LANG": "de_DE.UTF-8"},
]


@pytest.mark.parametrize(
    "given", ENVIRONMENTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "plain"
)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_piped_help_is_clicks_byte_for_byte(
    scripts: tuple[Path, Path], given: dict[str, str], flag: str
) -> None:
    entry, direct = scripts
    env = environment(**given)
    assert run_piped(entry, [flag], env) == run_piped(direct, [flag], env)


def test_the_shortcut_is_taken_only_where_the_text_is_clicks(scripts: tuple[Path, Path]) -> None:
    """Without this the test above could compare click with click."""
    entry, _ = scripts
    assert not imported_click(entry, ["--help"], environment())
    assert not imported_click(entry, ["-h"], environment(COLUMNS="120"))
    assert imported_click(entry, ["--help"], environment(COLUMNS="79"))
    assert imported_click(entry, ["--help", "runs"], environment())
    assert imported_click(entry, ["runs", "--help"], environment())
    assert imported_click(entry, ["--version"], environment())


def test_other_command_lines_answer_as_before(scripts: tuple[Path, Path]) -> None:
    entry, direct = scripts
    for argv in (["--version"], ["runs", "--help"], ["--help", "--help"], ["chek"], []):
        env = environment()
        assert run_piped(entry, argv, env) == run_piped(direct, argv, env), argv


def run_in_terminal(script: Path, columns: int, env: dict[str, str]) -> tuple[int, bytes]:
    """`mnc --help` with its output on a terminal `columns` wide (a pseudo-terminal)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    with subprocess.Popen(
        [sys.executable, str(script), "--help"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=ROOT,
    ) as process:
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed: EIO on Linux
                break
            if not chunk:
                break
            out += chunk
        code = process.wait()
    os.close(leader)
    return code, out


@pytest.mark.parametrize("columns", [200, 81, 80, 79, 60, 40])
def test_help_on_a_terminal_is_clicks_byte_for_byte(
    scripts: tuple[Path, Path], columns: int
) -> None:
    entry, direct = scripts
    env = environment(TERM="xterm-256color")
    got = run_in_terminal(entry, columns, env)
    assert got == run_in_terminal(direct, columns, env)
    assert got[0] == 0 and b"Usage: mnc" in got[1]


def test_a_closed_pipe_exits_as_click_does(scripts: tuple[Path, Path]) -> None:
    entry, direct = scripts
    outcomes = []
    for script in (entry, direct):
        reader, writer = os.pipe()
        os.close(reader)  # nobody will read: writing fails with EPIPE
        done = subprocess.run(
            [sys.executable, str(script), "--help"],
            stdout=writer,
            capture_output=False,
            stderr=subprocess.PIPE,
            env=environment(),
            cwd=ROOT,
            check=False,
        )
        os.close(writer)
        outcomes.append((done.returncode, done.stderr))
    assert outcomes[0] == outcomes[1]
