"""The tools' error API: every class carries its kind, and any exception maps to a kind."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable

import pytest

from mnlang import errors
from mnlang.errors import (
    ChildFailed,
    InvalidValue,
    KeyConflict,
    MalformedOutput,
    MnError,
    Rejected,
    Timeout,
    ToolError,
    Transient,
    kind_of,
)

CLASS_KINDS = [
    (Timeout, "timeout"),
    (Transient, "transient"),
    (ToolError, "tool_error"),
    (MalformedOutput, "malformed_output"),
    (Rejected, "rejected"),
    (InvalidValue, "value_error"),
    (KeyConflict, "key_conflict"),
    (ChildFailed, "child_failed"),
]


@pytest.mark.parametrize(("cls", "kind"), CLASS_KINDS)
def test_each_class_carries_its_kind(cls: Callable[[str], MnError], kind: str) -> None:
    exc = cls("it broke")
    assert isinstance(exc, MnError)
    assert exc.kind == kind
    assert exc.message == "it broke"
    assert str(exc) == "it broke"
    assert kind_of(exc) == kind


def test_classes_cover_exactly_the_catchable_kinds() -> None:
    assert {kind for _, kind in CLASS_KINDS} == errors.CATCHABLE_KINDS
    assert {"cancelled", "budget_exceeded", "deadline_exceeded"} == errors.UNCATCHABLE_KINDS
    assert not errors.CATCHABLE_KINDS & errors.UNCATCHABLE_KINDS


def test_generic_error_takes_any_known_kind() -> None:
    exc = MnError("budget_exceeded", "run spent $0.51 of $0.50")
    assert kind_of(exc) == "budget_exceeded"
    assert repr(exc) == "MnError('budget_exceeded', 'run spent $0.51 of $0.50')"


def test_unknown_kind_is_refused_with_the_known_ones_listed() -> None:
    with pytest.raises(ValueError, match=r"unknown error kind 'flaky'.*transient"):
        MnError("flaky", "sometimes")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError("slow"), "timeout"),
        (ConnectionError("down"), "transient"),
        (ConnectionResetError("reset"), "transient"),
        (BrokenPipeError("pipe"), "transient"),
        (ConnectionRefusedError("refused"), "transient"),
        (KeyError("id"), "tool_error"),
        (ValueError("bad"), "tool_error"),
        (OSError("disk"), "tool_error"),
        (RuntimeError("boom"), "tool_error"),
    ],
)
def test_kind_of_maps_python_exceptions(exc: BaseException, kind: str) -> None:
    assert kind_of(exc) == kind


@pytest.mark.parametrize(("cls", "kind"), CLASS_KINDS)
def test_errors_survive_pickling(cls: Callable[[str], MnError], kind: str) -> None:
    # Tools with `isolation: process` send their exceptions back to the runtime pickled.
    back = pickle.loads(pickle.dumps(cls("lost in transit")))
    assert type(back) is cls
    assert (back.kind, back.message) == (kind, "lost in transit")


def test_generic_error_survives_pickling() -> None:
    back = pickle.loads(pickle.dumps(MnError("rejected", "no")))
    assert (type(back), back.kind, back.message) == (MnError, "rejected", "no")


def test_module_is_import_light() -> None:
    code = (
        "import sys, mnlang.errors; print(sorted(m for m in sys.modules if m.startswith('mnlang')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['mnlang', 'mnlang.errors']"
