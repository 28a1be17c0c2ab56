"""Deep programs: a big stack for the passes that walk a tree recursively.

The parser is a table-driven LALR automaton and takes any depth, but the checker,
formatter, IR builder and IR (de)serializer walk the tree recursively. Rather than
rewrite each of them as a loop, they run on a thread with a large C stack and a
raised recursion limit (`call_deep`), and `parse` refuses a tree deeper than those
walks are tested for (`mnlang.syntax.limits`, E015). This module imports nothing of
the parser: the runtime uses it to read and write deep IR.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

# The deepest tree `parse` lets through (E015 past it, `mnlang.syntax.limits`).
MAX_DEPTH = 12_000

# What one level of the deepest pass (the formatter) costs, with room to spare: the
# recursion limit inside `call_deep`, and the C stack of its thread (virtual memory:
# only the pages a deep program touches are ever used).
_DEEP_RECURSION_LIMIT = 40 * MAX_DEPTH
_DEEP_STACK_BYTES = 512 * 1024 * 1024

_T = TypeVar("_T")

_limit_lock = threading.Lock()
_deep_calls = 0
_saved_limit = 0


@contextmanager
def deeper(limit: int) -> Iterator[None]:
    """The recursion limit raised to at least `limit` while the block runs (in any thread;
    the old limit comes back when the last such block ends)."""
    global _deep_calls, _saved_limit
    with _limit_lock:
        if _deep_calls == 0:
            _saved_limit = sys.getrecursionlimit()
        _deep_calls += 1
        sys.setrecursionlimit(max(sys.getrecursionlimit(), limit))
    try:
        yield
    finally:
        with _limit_lock:
            _deep_calls -= 1
            if _deep_calls == 0:
                sys.setrecursionlimit(_saved_limit)


@contextmanager
def steady_recursion_limit() -> Iterator[None]:
    """The recursion limit held still while the block runs. CPython's `ast.parse` fails
    with `SystemError: AST constructor recursion depth mismatch` when another thread
    changes the limit while it builds the tree (`deeper` does, as runs start and end)."""
    with _limit_lock:
        yield


# What running a program needs on the caller's own stack: its expressions nest at most
# `MAX_NESTING` (mnlang.syntax.limits) levels of two or three frames each, chains are
# evaluated with a loop, and Python's own calls do not grow the C stack in between.
RUN_RECURSION_LIMIT = 10_000


def call_deep(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`fn(*args, **kwargs)` on a thread with a large stack and a raised recursion limit,
    returning its result or raising its exception in the caller."""
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as e:  # re-raised in the caller's thread
            error.append(e)

    with deeper(_DEEP_RECURSION_LIMIT):
        with _limit_lock:
            previous = threading.stack_size()
            try:
                threading.stack_size(_DEEP_STACK_BYTES)
                thread = threading.Thread(target=target, name="mnlang-deep", daemon=True)
            finally:
                threading.stack_size(previous)
        try:
            thread.start()
        except RuntimeError:  # no memory for such a stack here: run as deep as we can
            target()
        else:
            thread.join()
    if error:
        raise error[0]
    return result[0]
