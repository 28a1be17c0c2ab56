"""Issue 16, item 9: `startswith`, `endswith`, `matches`, `replace`, `range`, and durations
given as text or ISO 8601 in a workflow's JSON input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnlang import api
from mnlang.runtime.builtins import PURE, RANGE_LIMIT
from mnlang.runtime.convert import ConversionError, _duration
from mnlang.runtime.failures import StepFailure

FLOW = textwrap.dedent(
    """\
    workflow shape(raw: str, n: int, delay: duration) -> json {
      squares = for i in range(n) {
        yield i * i
      }
      return {
        "starts": startswith(raw, "evt_"),
        "ends": endswith(raw, "_x"),
        "matches": matches(raw, "evt_[a-z]+_x"),
        "part": matches(raw, "[a-z]+"),
        "replaced": replace(raw, "_", "-"),
        "squares": squares,
        "between": range(3, 6),
        "delay_ms": delay / 1ms,
      }
    }
    """
)


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "shape.mn"
    path.write_text(FLOW)
    return path


@pytest.mark.parametrize(
    ("delay", "ms"), [(1500, 1500), ("2s", 2000), ("1h30m", 5_400_000), ("PT2.5S", 2500)]
)
def test_the_builtins_and_a_duration_input_in_a_run(
    flow: Path, tmp_path: Path, delay: object, ms: int
) -> None:
    outcome = api.start_run(
        flow, {"raw": "evt_abc_x", "n": 4, "delay": delay}, db=tmp_path / "j.db"
    )
    assert outcome.status == "completed", outcome.error
    assert outcome.result == {
        "starts": True,
        "ends": True,
        "matches": True,
        "part": False,  # the whole text must match
        "replaced": "evt-abc-x",
        "squares": [0, 1, 4, 9],
        "between": [3, 4, 5],
        "delay_ms": ms,
    }


def test_a_bad_duration_input_is_refused_before_the_run_starts(flow: Path, tmp_path: Path) -> None:
    from mnlang.runtime.run import InputError

    with pytest.raises(InputError) as refused:
        api.start_run(flow, {"raw": "x", "n": 1, "delay": "2 seconds"}, db=tmp_path / "j.db")
    assert refused.value.message == (
        'input `input.delay`: expected a duration: milliseconds (1500), text such as "2s", "1500ms" '
        'or "1h30m", or ISO 8601 such as "PT2S"; got \'2 seconds\''
    )
    assert not (tmp_path / "j.db").exists()  # refused before a journal was even created


def test_run_time_misuse_is_a_value_error() -> None:
    with pytest.raises(StepFailure, match="not a regular expression"):
        PURE["matches"]("a", "(")
    with pytest.raises(StepFailure, match="non-empty text to replace"):
        PURE["replace"]("a", "", "b")
    with pytest.raises(StepFailure, match=f"over the limit of {RANGE_LIMIT}"):
        PURE["range"](0, RANGE_LIMIT + 1)
    assert PURE["range"](5, 2) == []


@given(st.integers(min_value=0, max_value=10**9))
def test_a_duration_reads_back_from_each_text_form(ms: int) -> None:
    seconds, rest = divmod(ms, 1000)
    assert _duration(f"{ms}ms", "x").ms == ms
    assert _duration(f"PT{seconds}.{rest:03d}S", "x").ms == ms
    hours, left = divmod(ms, 3_600_000)
    minutes, left = divmod(left, 60_000)
    secs, millis = divmod(left, 1000)
    assert _duration(f"{hours}h{minutes}m{secs}s{millis}ms", "x").ms == ms


def test_calendar_durations_are_refused_with_the_reason() -> None:
    with pytest.raises(ConversionError, match="years and months have no fixed length"):
        _duration("P1M", "input.d")
