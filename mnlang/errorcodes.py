"""Every diagnostic code in one table: code, severity and a short title.

Codes group by stage: E0xx files and syntax, E1xx names and imports, E2xx
types, E3xx durability, E4xx approval, E5xx checkpoints and waits, W1xx
hygiene, W6xx cost.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Severity = Literal["error", "warning"]


class ErrorCode(msgspec.Struct, frozen=True):
    code: str
    severity: Severity
    title: str


_TABLE: list[tuple[str, str]] = [
    # files and syntax
    ("E001", "unterminated string"),
    ("E002", "unexpected character"),
    ("E003", "bad string literal or interpolation"),
    ("E010", "syntax error"),
    ("E011", "missing `:` after an option or field name"),
    ("E012", "`=` where `:` is expected"),
    ("E013", "unclosed bracket"),
    ("E014", "bad number, money or duration literal"),
    ("E015", "nested too deeply"),
    ("E090", "file not found"),
    ("E091", "not a regular file"),
    ("E092", "file is not UTF-8 text"),
    ("E093", "file too large"),
    ("E094", "bad price table"),
    ("E095", "bad IR file"),
    ("E096", "JSON input refused"),
    # names and imports
    ("E101", "unknown name"),
    ("E102", "duplicate declaration"),
    ("E103", "unknown type"),
    ("E104", "module not found"),
    ("E105", "import cycle"),
    ("E106", "unknown imported name"),
    ("E107", "unknown field"),
    ("E108", "unknown enum member"),
    ("E109", "duplicate state id"),
    ("E115", "tool implementation runs code or commands"),
    ("E125", "tool module not found"),
    ("E126", "tool function not found"),
    ("E127", "tool function parameters do not match"),
    ("E128", "tool module cannot be imported"),
    # MCP servers as tools (against mcp.lock.json)
    ("E170", "MCP lock file missing or unreadable"),
    ("E171", "MCP tool not in the lock"),
    ("E172", "MCP tool parameters do not match"),
    ("E173", "MCP tool that changes things declared as a tool"),
    ("E174", "isolation: process on an MCP tool"),
    # secrets
    ("E130", "secret in an effect key"),
    ("E131", "secret given to an agent"),
    ("E132", "secret in a published value"),
    # scenarios: answers matched by arguments, keyed payloads
    ("E140", "unknown parameter in a mocked answer"),
    ("E141", "malformed mocked answer"),
    ("E142", "secret parameter matched by a mocked answer"),
    ("E143", "keyed payload without `key` or `payload`"),
    # types
    ("E201", "type mismatch"),
    ("E202", "wrong number of arguments"),
    ("E203", "condition is not `bool`"),
    ("E204", "missing return"),
    ("E205", "non-exhaustive `match`"),
    ("E206", "optional used before it is narrowed"),
    ("E207", "variable possibly unassigned"),
    ("E208", "unknown option"),
    ("E209", "money mixed with float"),
    ("E210", "operator not defined for these types"),
    ("E211", "missing required option"),
    ("E212", "invalid option value"),
    ("E213", "step inside an expression"),
    ("E214", "not callable"),
    ("E215", "`yield` outside a collecting loop"),
    ("E216", "missing or duplicate record field"),
    ("E217", "misplaced statement"),
    ("E230", "object key is not plain text"),
    ("E231", "duplicate key in an object"),
    ("E232", "`run` used as a value"),
    ("E233", "bad regular expression"),
    ("E234", "`start` of something other than a workflow"),
    ("E240", "retries without a bound"),
    ("E241", "unlimited attempts without a backoff of at least 1s"),
    ("E242", "retry list entry without `on`"),
    ("E243", "error kind retried by two entries"),
    ("E250", "a tool in `tools:` called other than with bound parameters"),
    ("E251", "a bound parameter the tool does not have"),
    ("E252", "a parameter's description with `{...}`"),
    ("E253", "a bad list of models"),
    ("E254", "an agent's provider is not known here"),
    ("E255", "a scenario reply for a model the agent does not list"),
    ("E260", "`cache` on an agent that may call effects"),
    ("E261", "`conversation` is not a `list[Turn]` parameter"),
    # durability
    ("E301", "effect without `key` or `once`"),
    ("E302", "`once` effect with `retry`"),
    ("E303", "bad idempotency key template"),
    ("E304", "effect key does not vary in a loop"),
    ("E305", "parallel branches produce the same key"),
    ("E306", "parallel branches depend on each other"),
    ("E307", "unbounded loop"),
    ("E308", "recursive workflow"),
    ("E320", "unknown error name"),
    ("E321", "error name used as a value"),
    ("E322", "`return` in `on_failure`"),
    ("E323", "bad `reconcile` option"),
    ("E324", "`settle` without `reconcile`"),
    # approval
    ("E401", "effect needs approval on this path"),
    # checkpoints and waits
    ("E501", "checkpoint without timeout"),
    ("E502", "checkpoint timeout without `on_timeout`"),
    ("E503", "`on_timeout` is not one of the options"),
    ("E504", "wait without timeout"),
    ("E505", "duplicate checkpoint name"),
    ("E506", "`approval` on an effect that requires none"),
    # correlated signals
    ("E510", "event wait in a loop without a varying correlation key"),
    ("E511", "two waits for one event without correlation keys"),
    ("E512", "correlation key is not a `str` or `int`"),
    ("E513", "`callback_token` for no wait of the workflow"),
    # select
    ("E520", "empty `select`"),
    ("E521", "two `select` arms on the same event and key"),
    ("E522", "`select` without an `after` arm"),
    ("E523", "two `after` arms in one `select`"),
    ("E524", "own timeout on a `select` arm"),
    # quorum joins
    ("E540", "quorum of fewer than one item"),
    ("E541", "quorum larger than the items"),
    # hygiene
    ("W001", "empty file"),
    ("W101", "unused result"),
    ("W102", "unreachable code"),
    ("W103", "shadowed name"),
    ("W104", "unused import"),
    # cost
    ("W601", "worst-case cost over budget"),
    ("W602", "no price for model"),
]

CODES: dict[str, ErrorCode] = {
    code: ErrorCode(code, "warning" if code.startswith("W") else "error", title)
    for code, title in _TABLE
}
