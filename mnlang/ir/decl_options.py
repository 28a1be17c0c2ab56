"""Reading a declaration's options as the checker resolved them (`Program.options`).

The option pass stores durations as int milliseconds or "never", money as
`Decimal`, retry as a `RetryPolicy`, `key`/`prompt` as `ast.StrLit`, calls
(`compensate`, `run`) as `ast.Call`, `tools` as qualified names and nested
blocks (`limit`) as dicts. These helpers turn them into IR values.
"""

from __future__ import annotations

from typing import Any

from mnlang.checker.options import RetryPolicy
from mnlang.checker.program import Program, Symbol
from mnlang.ir.base import RetryIR


def declaration_options(program: Program, symbol: Symbol) -> dict[str, Any]:
    """The resolved options of a declaration (empty when it has none)."""
    return dict(program.options.get(symbol.name, {}))


def retry_policy(value: RetryPolicy | None) -> RetryIR:
    """A resolved retry policy as the IR states it; no policy means a single try."""
    policy = value if value is not None else RetryPolicy()
    return RetryIR(
        attempts=policy.attempts,
        backoff_ms=policy.backoff_ms,
        factor=float(policy.factor),
        max_delay_ms=policy.max_delay_ms,
        jitter=policy.jitter,
        on=list(policy.on),
        max_elapsed_ms=policy.max_elapsed_ms,
        more=[retry_policy(entry) for entry in policy.more] or None,
    )


def duration_ms(value: Any) -> int | None:
    """A duration option in milliseconds; None for `never` or when absent."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def names(value: Any) -> list[str]:
    """An option that is one name or a list of names, as a list."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]
