"""The formatter: a module's AST and comments printed in the one canonical layout.

`format_source` refuses a file with syntax errors (it returns their diagnostics)
and checks its own output: the result must parse to the same AST, so a bug in
the formatter can never change what a file means.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnlang.deep import call_deep
from mnlang.diagnostics import Diagnostic
from mnlang.fmt.doc import render
from mnlang.fmt.equivalence import same_meaning
from mnlang.fmt.layout import Layout
from mnlang.syntax.parser import parse


class FormatterBug(Exception):
    """The formatted text would not mean what the source meant; nothing is written."""


@dataclass
class Formatted:
    """The formatted text, or None with the syntax errors that prevented formatting."""

    text: str | None
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return self.text is not None


def format_source(text: str, file: str = "<string>") -> Formatted:
    """Format the text of a `.mn` file."""
    return call_deep(_format_source, text, file)


def _format_source(text: str, file: str) -> Formatted:
    module, diagnostics = parse(text, file)
    if module is None:
        return Formatted(None, diagnostics)
    out = render(Layout(module).document()).strip("\n")
    out = out + "\n" if out else ""
    again, _ = parse(out, file)
    if again is None or not same_meaning(module, again):
        raise FormatterBug(f"formatting {file} would change its meaning")
    return Formatted(out, diagnostics)


__all__ = ["Formatted", "FormatterBug", "format_source"]
