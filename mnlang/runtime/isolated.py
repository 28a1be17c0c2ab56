"""The child process of an `isolation: process` tool call.

Reads a pickled `(ModuleRef, function name, kwargs)` from stdin, calls the function and
writes a pickled `("ok", result)` or `("error", exception)` to stdout. An exception that
cannot be pickled is sent as its kind and message instead. An async function is awaited
on a loop of its own; its timeout is the parent's, which kills this process.
"""

from __future__ import annotations

import inspect
import pickle
import sys

from mnlang.errors import kind_of
from mnlang.runtime.tools import await_call, load_module


def main() -> None:
    ref, function_name, kwargs = pickle.loads(sys.stdin.buffer.read())
    try:
        result = getattr(load_module(ref), function_name)(**kwargs)
        if inspect.isawaitable(result):
            result = await_call(result)
        answer = pickle.dumps(("ok", result))
    except Exception as e:
        try:
            answer = pickle.dumps(("error", e))
            pickle.loads(answer)
        except Exception:
            answer = pickle.dumps(("error", (kind_of(e), f"{type(e).__name__}: {e}")))
    sys.stdout.buffer.write(answer)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
