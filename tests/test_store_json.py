"""`dump`, the stores' JSON writer, writes objects and arrays with msgspec and everything
else with `json`: whatever the path, it must refuse what `json` (allow_nan off) refuses
and write text that reads back as `json`'s text does."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnlang.stores.base import DamagedRow
from mnlang.stores.common import dump, load


@dataclass
class Point:
    x: int


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


@given(values)
def test_dump_agrees_with_json(value: Any) -> None:
    if _non_finite(value):
        with pytest.raises(ValueError):
            dump(value)
        return
    text = dump(value)
    assert json.loads(text) == json.loads(_JSON.encode(value))


@pytest.mark.parametrize(
    "value",
    [
        {"spawn": None, "n": float("nan")},
        [None, [float("inf")]],
        {"a": [1, None, {"b": -math.inf}]},
    ],
)
def test_a_non_finite_float_beside_a_null_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        dump(value)


@pytest.mark.parametrize(
    "inner",
    [object(), {1, 2}, Decimal("1.50"), b"raw", datetime(2026, 12, 6), UUID(int=7), Point(1)],
    ids=["object", "set", "decimal", "bytes", "datetime", "uuid", "dataclass"],
)
def test_a_value_that_is_not_json_gets_jsons_error(inner: Any) -> None:
    """msgspec would write most of these (as an array or a string): the journal refuses
    them as `json` does, rather than store a value that reads back as another."""
    for value in ({"x": inner}, [inner]):
        with pytest.raises(TypeError, match="not JSON serializable"):
            dump(value)


def test_tuples_and_number_keys_are_written_as_json_writes_them() -> None:
    assert dump({"t": (1, None), 1: "a"}) == '{"t":[1,null],"1":"a"}'
    assert dump([2**80, "é\u2028"]) == _JSON.encode([2**80, "é\u2028"])


json_texts = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
).map(lambda value: json.dumps(value, ensure_ascii=False))


@given(json_texts | st.sampled_from(["1e400", "[-1e999, NaN]", "123456789012345678901234567890"]))
def test_load_reads_what_json_reads(text: str) -> None:
    """`load` reads with msgspec where it can and with `json` where msgspec refuses (NaN,
    numbers out of range): either way the value is `json`'s, down to int against float."""
    assert json.dumps(load(text)) == json.dumps(json.loads(text))


@pytest.mark.parametrize("text", ['{"a": ', "[1,]", '"\\ud800', "{" * 100_000])
def test_a_text_that_is_not_json_is_a_damaged_row(text: str) -> None:
    with pytest.raises(DamagedRow):
        load(text, "r1", "state")
