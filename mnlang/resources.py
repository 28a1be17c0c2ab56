"""Where shipped data lives: inside the wheel (`mnlang/_data/`), or at the repo root in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_path(name: str) -> Path:
    """The path of a shipped folder or file: `grammar`, `stdlib` or `prices.json`."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name, _PACKAGE / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"mnlang installation is missing its `{name}` data")
