"""Error kinds for tool authors: raise one of these from a tool to say how it failed.

A workflow's `retry.on` and `catch` name error kinds, not Python classes. A tool says
which kind its failure is by raising the matching class::

    from mnlang.errors import Rejected, Transient

    def refund_payment(order_id: str, amount: str, *, key: str) -> dict[str, str]:
        response = bank.refund(order_id, amount, idempotency_key=key)
        if response.status == 429:
            raise Transient("bank is rate limiting")
        if response.status == 409:
            raise Rejected(f"bank refused the refund: {response.reason}")
        ...

Any other exception still has a kind (see `kind_of`), so a tool written without this
module works. The module imports nothing beyond the standard library's `typing`, so
importing it from a tool costs nothing.
"""

from __future__ import annotations

from typing import Any, Final

TIMEOUT: Final = "timeout"
TRANSIENT: Final = "transient"
TOOL_ERROR: Final = "tool_error"
MALFORMED_OUTPUT: Final = "malformed_output"
REJECTED: Final = "rejected"
VALUE_ERROR: Final = "value_error"
KEY_CONFLICT: Final = "key_conflict"
CHILD_FAILED: Final = "child_failed"

# The runtime enforces these, so no `catch` or `retry.on` can name them; a `finally`
# block still runs for cleanup.
CANCELLED: Final = "cancelled"
BUDGET_EXCEEDED: Final = "budget_exceeded"
DEADLINE_EXCEEDED: Final = "deadline_exceeded"

CATCHABLE_KINDS: Final = frozenset(
    {
        TIMEOUT,
        TRANSIENT,
        TOOL_ERROR,
        MALFORMED_OUTPUT,
        REJECTED,
        VALUE_ERROR,
        KEY_CONFLICT,
        CHILD_FAILED,
    }
)
UNCATCHABLE_KINDS: Final = frozenset({CANCELLED, BUDGET_EXCEEDED, DEADLINE_EXCEEDED})
ALL_KINDS: Final = CATCHABLE_KINDS | UNCATCHABLE_KINDS


class MnError(Exception):
    """A failure of a known kind; `message` is what the workflow sees as `e.message`."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ALL_KINDS:
            known = ", ".join(sorted(ALL_KINDS))
            raise ValueError(f"unknown error kind {kind!r}; known kinds: {known}")
        super().__init__(kind, message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind!r}, {self.message!r})"


class _FixedKind(MnError):
    """An `MnError` whose class implies its kind, so it is raised with a message only."""

    KIND: str = TOOL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(self.KIND, message)

    def __reduce__(self) -> tuple[Any, ...]:
        # `Exception` pickles as `cls(*self.args)`, and `args` holds the kind too; tools
        # that run with `isolation: process` send their exceptions back pickled.
        return (type(self), (self.message,))


class Timeout(_FixedKind):
    """The call did not finish in time; retrying may succeed."""

    KIND = TIMEOUT


class Transient(_FixedKind):
    """A passing failure (network drop, rate limit, 503); retrying should succeed."""

    KIND = TRANSIENT


class ToolError(_FixedKind):
    """The tool failed in a way that retrying will not fix."""

    KIND = TOOL_ERROR


class MalformedOutput(_FixedKind):
    """The output does not have the declared shape (most often a model reply)."""

    KIND = MALFORMED_OUTPUT


class Rejected(_FixedKind):
    """The receiving system refused the request (declined payment, denied access)."""

    KIND = REJECTED


class InvalidValue(_FixedKind):
    """A value was out of range or could not be converted (kind `value_error`)."""

    KIND = VALUE_ERROR


class KeyConflict(_FixedKind):
    """An idempotency key was reused with different arguments."""

    KIND = KEY_CONFLICT


class ChildFailed(_FixedKind):
    """A child workflow run failed."""

    KIND = CHILD_FAILED


def is_error_name(kind: str) -> bool:
    """Whether `kind` is a declared error name (`PaymentDeclined`, `payments.Declined`):
    its last part is capitalised and made of letters, digits and `_`; built-in kinds are
    lower case."""
    last = kind.rsplit(".", 1)[-1]
    return last[:1].isupper() and last.replace("_", "").isalnum()


class NamedError(MnError):
    """A failure with a name the workflow declares (`error PaymentDeclined`).

    `catch PaymentDeclined` and `retry: { on: [PaymentDeclined] }` take it; a name the
    program does not declare is a `tool_error` whose message names it. Raise it with
    `named`::

        from mnlang.errors import named

        def charge(trip: str, amount: str) -> str:
            ...
            if response.status == 402:
                raise named("PaymentDeclined", f"card declined: {response.reason}")
    """

    def __init__(self, name: str, message: str) -> None:
        if not is_error_name(name):
            raise ValueError(f"an error name is capitalised, as declared: not {name!r}")
        Exception.__init__(self, name, message)
        self.kind = name
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message))


def named(name: str, message: str) -> NamedError:
    """The exception a tool raises for the declared error `name`, with `message`."""
    return NamedError(name, message)


def kind_of(exc: BaseException) -> str:
    """The error kind of any exception a tool raised.

    `MnError` carries its kind (a `NamedError` its declared name); Python's `TimeoutError` (which includes `socket.timeout`
    and `asyncio.TimeoutError`) is `timeout`; `ConnectionError` (refused, reset, broken
    pipe) is `transient`; the HTTP client libraries' exceptions are judged by
    `mnlang.http_errors`; anything else is `tool_error`.
    """
    if isinstance(exc, MnError):
        return exc.kind
    from mnlang.http_errors import library_kind

    library = library_kind(exc)
    if library is not None:
        return library
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    if isinstance(exc, ConnectionError):
        return TRANSIENT
    return TOOL_ERROR
