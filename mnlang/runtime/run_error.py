"""`RunError`, the error every command reports with its help (exit 2), in a module of
its own so that the runtime's leaf modules (`config`) raise it without importing `run`."""

from __future__ import annotations


class RunError(Exception):
    """A run that cannot start or go on; `help` says what to do."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help
