"""docs/human.md runs as written: its `mn` files are written to a folder, and each `$`
command of its `console` blocks is run there in turn, on one journal, and must print
what the page shows after it.

In the expected text a line `...` stands for any number of lines, `...` inside a line
for any text on that line, and runs of spaces match any run of spaces (tables are
padded to their widest cell). `mnc` is this checkout's `python -m mnlang.cli`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.human.harness import ROOT, mnc_env

PAGE = ROOT / "docs" / "human.md"
_BLOCK = re.compile(r"^```(\w[\w-]*)\n(.*?)^```$", re.M | re.S)
_FILE = re.compile(r"^# file: (\S+)$")


@dataclass
class Command:
    line: str
    expected: list[str]


def page_files(text: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for tag, body in _BLOCK.findall(text):
        first = body.split("\n", 1)[0]
        found = _FILE.match(first)
        if tag == "mn" and found:
            files[found.group(1)] = body
    return files


def page_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    for tag, body in _BLOCK.findall(text):
        if tag != "console":
            continue
        for line in body.rstrip("\n").split("\n"):
            if line.startswith("$ "):
                commands.append(Command(line[2:], []))
            else:
                commands[-1].expected.append(line)
    return commands


def _pattern(line: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in line.split("...")]
    text = ".*".join(parts)
    return re.compile(re.sub(r"(\\ )+", r" +", text) + r"\Z")


def matches(expected: list[str], got: list[str]) -> bool:
    if not expected:
        return not got
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, got[i:]) for i in range(len(got) + 1))
    return bool(got) and bool(_pattern(head).match(got[0])) and matches(rest, got[1:])


def test_the_pages_sessions_run_as_shown(tmp_path: Path) -> None:
    text = PAGE.read_text("utf-8")
    for name, body in page_files(text).items():
        (tmp_path / name).write_text(body, "utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "mnc"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mnlang.cli "$@"\n', "utf-8")
    wrapper.chmod(0o755)
    env = mnc_env(tmp_path, USER="docs")
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    commands = page_commands(text)
    assert len(commands) >= 20
    for command in commands:
        done = subprocess.run(
            ["sh", "-c", command.line],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        got = (
            (done.stdout + done.stderr).rstrip("\n").split("\n")
            if done.stdout + done.stderr
            else []
        )
        assert matches(command.expected, got), (
            f"$ {command.line}\n--- expected\n"
            + "\n".join(command.expected)
            + "\n--- got\n"
            + "\n".join(got)
        )
