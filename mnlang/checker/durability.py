"""Placeholder: replaced by the real pass."""

from mnlang.checker.program import Program
from mnlang.diagnostics import Diagnostics


def check_durability(program: Program, diags: Diagnostics) -> None:
    return None
