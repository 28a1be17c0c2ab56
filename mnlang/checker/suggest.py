"""Did-you-mean suggestions for unknown names and option keys, in words and as a fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import msgspec

from mnlang.diagnostics import Fix, replacement
from mnlang.span import Span


class Suggestion(msgspec.Struct, frozen=True):
    """The help line naming the closest candidate and the fix that writes it in place of
    the word; both None when nothing is close."""

    help: str | None
    fix: Fix | None


NO_SUGGESTION = Suggestion(None, None)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A help line naming the closest candidate, or None when nothing is close."""
    match = closest(word, candidates)
    return f"did you mean `{match}`?" if match else None


def suggest(at: Span, word: str, candidates: Iterable[str]) -> Suggestion:
    """The suggestion for `word`, written at `at` (the span of the word itself)."""
    match = closest(word, candidates)
    if match is None:
        return NO_SUGGESTION
    # A type's span holds its arguments too (`Ordr[str]`): the word is where it starts.
    word_span = Span(
        at.file, at.line, at.col, at.line, at.col + len(word), at.start, at.start + len(word)
    )
    return Suggestion(f"did you mean `{match}`?", replacement(word_span, match))
