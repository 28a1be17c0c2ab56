"""The `mnc` program's entry point: `mnc --help` (or `-h`) alone is answered with the text
click prints for it, kept in `mnlang.mnc_help`, without importing click, which is
most of that command's start-up (click takes ~24 ms of its ~59 ms, beside 12 ms for
`python -c pass`). Every other command line goes to the click group, `mnlang.cli.main`.

The kept text is click's rendering at its widest (78 columns), so the shortcut is taken
only where click would print exactly that: the program is named `mnc` (not `python -m
mnlang.cli`) and its terminal has 80 columns or more, or its output is not a terminal.
tests/test_mnc_help.py compares the two byte for byte as real processes, at several
terminal widths and environments, and fails when the kept text is stale.
"""

from __future__ import annotations

import os
import sys

WIDEST = 80
"""From this many terminal columns on, click renders help at its widest (`HelpFormatter`:
`max(min(columns, 80) - 2, 50)`)."""


def run() -> None:
    """`mnc`."""
    if sys.argv[1:] in (["--help"], ["-h"]) and _click_prints_kept_text():
        from mnlang.mnc_help import TEXT

        try:
            sys.stdout.write(TEXT)
            sys.stdout.flush()
        except BrokenPipeError:
            # As click does when the reader went away: exit 1, and keep the interpreter's
            # last flush of the closed pipe from complaining.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(1) from None
        raise SystemExit(0)
    from mnlang.cli import main

    main()


def _click_prints_kept_text() -> bool:
    """Whether click would name the program `mnc` (`click.utils._detect_program_name`: run
    as a script, not with `python -m`) and render help at its widest."""
    main_module = sys.modules.get("__main__")
    if getattr(main_module, "__package__", None) not in (None, ""):
        return False
    return os.path.basename(sys.argv[0]) == "mnc" and terminal_columns() >= WIDEST


def terminal_columns() -> int:
    """`shutil.get_terminal_size().columns` (what click measures), without importing
    shutil and the compression modules it imports: `COLUMNS` when it is a positive
    number, else the width of the terminal on standard output, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns
