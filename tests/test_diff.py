"""`mnc diff`: states added, removed and changed, and where a paused run may move to NEW."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnlang.ir.base import TypeIR
from mnlang.ir.compile import compile_file
from mnlang.ir.diff import ProgramDiff, diff_programs, resume_problems, type_compatible
from mnlang.ir.diff_report import diff_lines
from mnlang.ir.model import IRProgram

REFUND = Path(__file__).resolve().parent.parent / "examples" / "refund" / "refund.mn"
SOURCE = REFUND.read_text("utf-8")


def compiled(text: str = SOURCE) -> IRProgram:
    ir, diags = compile_file(REFUND, text)
    assert ir is not None, [f"{d.code} {d.message} {d.span}" for d in diags]
    return ir


def edit(old: str, new: str, text: str = SOURCE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def refund_diff(new_text: str) -> ProgramDiff:
    return diff_programs(compiled(), compiled(new_text))


def unsafe(diff: ProgramDiff) -> dict[str, list[str]]:
    (wf,) = diff.workflows
    return {v.state: v.problems for v in wf.resume if not v.safe}


def test_same_program() -> None:
    diff = refund_diff(SOURCE.replace("# a Python callable", "# reworded"))
    assert diff.same
    (wf,) = diff.workflows
    assert wf.status == "same" and all(v.safe for v in wf.resume)
    assert diff_lines(diff)[0].startswith("no change in meaning")


def test_an_inserted_log_keeps_every_old_state_resumable() -> None:
    diff = refund_diff(edit("  t = triage(", '  log "triage"\n  t = triage('))
    (wf,) = diff.workflows
    assert (wf.added, wf.removed) == (["log"], [])
    assert [(c.id, c.fields) for c in wf.changed] == [("if", ["else"])]
    assert unsafe(diff) == {}


def test_a_changed_effect_key_blocks_resuming_at_its_call() -> None:
    diff = refund_diff(edit('key: "refund:{order_id}"', 'key: "refund:{order_id}:{amount}"'))
    (wf,) = diff.workflows
    assert [(c.id, c.fields) for c in wf.changed] == [
        ("receipt", ["the `key` of `refund_payment`"])
    ]
    assert unsafe(diff) == {"receipt": ["the `key` of `refund_payment` changed"]}


def test_a_changed_checkpoint_blocks_resuming_there_only() -> None:
    diff = refund_diff(edit("timeout: 24h", "timeout: 48h"))
    assert unsafe(diff) == {"if#2/then/decision": ["its `timeout_ms` changed"]}


def test_a_new_variable_read_later_blocks_states_that_did_not_keep_it() -> None:
    diff = refund_diff(edit("  return receipt\n", '  log "done: {complaint}"\n  return receipt\n'))
    problem = "variable `complaint` is needed here but the old run does not keep it"
    assert unsafe(diff) == {
        sid: [problem]
        for sid in ("if#2", "if#2/then/decision", "if#2/then/if", "receipt", "notify")
    }


def test_a_record_gaining_a_required_field_breaks_its_variables() -> None:
    breaking = refund_diff(edit("  paid: bool\n", "  paid: bool\n  currency: str\n"))
    blocked = unsafe(breaking)
    assert "receipt" in blocked and "order" not in blocked  # `order` is assigned at `order`
    assert blocked["receipt"] == [
        "variable `order`: its type Order changed and old values do not fit"
    ]
    harmless = refund_diff(edit("  paid: bool\n", '  paid: bool\n  currency: str = "EUR"\n'))
    assert unsafe(harmless) == {}


def test_moving_a_pinned_state_into_a_try_is_reported() -> None:
    receipt = "  receipt = refund_payment(order.id, order.total)\n"
    pinned = edit(receipt, "  @pay" + receipt[1:])
    wrapped = edit(
        "  @pay" + receipt[1:],
        "  try {\n    @pay" + receipt[1:] + '  } catch any as e {\n    fail "{e.message}"\n  }\n',
        pinned,
    )
    problems = resume_problems(compiled(pinned), compiled(wrapped), "refund", "@pay")
    assert problems == ["`@pay` moved from the top level to the body of `try`"]


def test_removed_states_and_workflows() -> None:
    old = compiled()
    new = compiled(
        edit('  log "x"\n', "", SOURCE + '\nworkflow other() -> str {\n  log "x"\n  return ""\n}\n')
    )
    diff = diff_programs(old, new)
    statuses = {wf.name: wf.status for wf in diff.workflows}
    assert statuses == {"refund": "same", "other": "added"}
    back = diff_programs(new, old)
    removed = next(wf for wf in back.workflows if wf.name == "other")
    assert removed.status == "removed" and removed.removed == ["return"]
    assert all(not v.safe for v in removed.resume)
    assert resume_problems(old, new, "refund", "nowhere") == [
        "`nowhere` is not a state of `refund` in the old version"
    ]


def test_the_report_lists_changes_and_verdicts() -> None:
    text = "\n".join(diff_lines(refund_diff(edit("timeout: 24h", "timeout: 48h"))))
    assert "workflow refund: changed" in text
    assert "  ~ if#2/then/decision (checkpoint): timeout_ms" in text
    assert "    if#2/then/decision: its `timeout_ms` changed" in text


T = TypeIR


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (T(kind="int"), T(kind="float"), True),
        (T(kind="float"), T(kind="int"), False),
        (T(kind="str"), T(kind="optional", args=[T(kind="str")]), True),
        (T(kind="optional", args=[T(kind="str")]), T(kind="str"), False),
        (T(kind="null"), T(kind="optional", args=[T(kind="int")]), True),
        (T(kind="list", args=[T(kind="int")]), T(kind="list", args=[T(kind="float")]), True),
        (T(kind="map", args=[T(kind="str")]), T(kind="list", args=[T(kind="str")]), False),
        (T(kind="money"), T(kind="json"), True),
        (T(kind="unknown"), T(kind="money"), True),
        (
            T(kind="decision", name="a", members=["x"]),
            T(kind="decision", name="a", members=["x", "y"]),
            True,
        ),
        (
            T(kind="decision", name="a", members=["x", "y"]),
            T(kind="decision", name="a", members=["x"]),
            False,
        ),
    ],
)
def test_type_compatibility(old: TypeIR, new: TypeIR, ok: bool) -> None:
    empty = compiled()
    assert type_compatible(old, new, empty, empty) is ok


def test_enum_members_may_be_added_not_removed() -> None:
    old = compiled()
    more = compiled(edit("other }", "other, unknown }"))
    fewer = compiled(edit("wrong_item, other }", "other }"))
    category = T(kind="enum", name="Category")
    assert type_compatible(category, category, old, more)
    assert not type_compatible(category, category, old, fewer)
