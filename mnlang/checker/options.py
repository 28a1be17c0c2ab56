"""Placeholder: replaced by the real pass."""

from mnlang.checker.program import Program
from mnlang.diagnostics import Diagnostics


def check_options(program: Program, diags: Diagnostics) -> None:
    return None
