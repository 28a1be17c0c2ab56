"""`mnc fmt`: format files in place, or check or show what formatting would change.

Paths are `.mn` files, folders (searched recursively for `.mn` files, skipping
hidden folders) or `-` for standard input (formatted to standard output).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mnlang.diagnostics import Diagnostic
from mnlang.fmt import FormatterBug, format_source
from mnlang.report import Located, Sources, plain, render_full
from mnlang.sources import read_source

STDIN = "-"


@dataclass
class FmtOutcome:
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: int = 0


def mn_files(given: str) -> Iterator[Path]:
    """The `.mn` files a path names: itself, or those under a folder in name order."""
    path = Path(given)
    if not path.is_dir():
        yield path
        return
    for found in sorted(path.rglob("*.mn")):
        relative = found.relative_to(path).parts[:-1]
        if not any(part.startswith(".") or part == "node_modules" for part in relative):
            yield found


def run_fmt(
    paths: Sequence[str],
    *,
    check: bool,
    diff: bool,
    stdin: IO[str],
    stdout: IO[str],
    stderr: IO[str],
) -> int:
    """Format `paths`; the exit code is 1 when a file has errors or, with `check`, would
    change, else 0. Files are written only without `check` and `diff`."""
    outcome = FmtOutcome()
    write = not check and not diff
    for given in paths:
        if given == STDIN:
            _format_stdin(stdin, stdout, stderr, check, diff, outcome)
            continue
        for path in mn_files(given):
            _format_file(path, stdout, stderr, write, check, diff, outcome)
    if any(p != STDIN for p in paths):
        _summary(outcome, stderr, write)
    return 1 if outcome.failed or (check and outcome.changed) else 0


def _format_stdin(
    stdin: IO[str], stdout: IO[str], stderr: IO[str], check: bool, diff: bool, out: FmtOutcome
) -> None:
    text = stdin.read()
    formatted = _format(text, "<stdin>", stderr, out)
    if formatted is None:
        return
    if formatted == text:
        out.unchanged += 1
    else:
        out.changed.append(STDIN)
    if diff:
        stdout.write(_diff(text, formatted, "<stdin>"))
    elif check:
        if formatted != text:
            stdout.write("would reformat <stdin>\n")
    else:
        stdout.write(formatted)


def _format_file(
    path: Path,
    stdout: IO[str],
    stderr: IO[str],
    write: bool,
    check: bool,
    diff: bool,
    out: FmtOutcome,
) -> None:
    text, problem = read_source(path)
    if problem is not None:
        _report([problem], str(path), Sources(), stderr)
        out.failed += 1
        return
    assert text is not None
    formatted = _format(text, str(path), stderr, out)
    if formatted is None:
        return
    if formatted == text:
        out.unchanged += 1
        return
    out.changed.append(str(path))
    if diff:
        stdout.write(_diff(text, formatted, str(path)))
    if check and not diff:
        stdout.write(f"would reformat {path}\n")
    if write:
        path.write_text(formatted, "utf-8")
        stderr.write(f"reformatted {path}\n")


def _format(text: str, name: str, stderr: IO[str], out: FmtOutcome) -> str | None:
    """The formatted text, or None after reporting why the file cannot be formatted."""
    try:
        result = format_source(text, name)
    except FormatterBug as e:
        stderr.write(f"error: {e}; the file is left as it is (please report this)\n")
        out.failed += 1
        return None
    if result.text is None:
        _report(result.diagnostics, name, Sources({name: text}), stderr)
        out.failed += 1
        return None
    return result.text


def _report(diagnostics: list[Diagnostic], name: str, sources: Sources, stderr: IO[str]) -> None:
    lines = []
    for d in diagnostics:
        lines += render_full(Located(d, name), sources)
        lines.append([])
    stderr.write(plain(lines))


def _diff(before: str, after: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{name} (original)",
            tofile=f"{name} (formatted)",
        )
    )


def _summary(out: FmtOutcome, stderr: IO[str], wrote: bool) -> None:
    changed = len(out.changed)
    verb = "reformatted" if wrote else "would be reformatted"
    parts = [f"{_files(changed)} {verb}"] if changed else []
    if out.unchanged:
        parts.append(f"{_files(out.unchanged)} left unchanged")
    if out.failed:
        parts.append(f"{_files(out.failed)} could not be formatted")
    stderr.write((", ".join(parts) or "no .mn files found") + "\n")


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"
