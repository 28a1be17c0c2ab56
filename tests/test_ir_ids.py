"""Stable state ids: which ids change when the refund example is edited in common ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnlang.ir.compile import compile_file

REFUND = Path(__file__).resolve().parent.parent / "examples" / "refund" / "refund.mn"
SOURCE = REFUND.read_text("utf-8")

ORIGINAL = [
    "order",
    "if",
    "if/then/fail",
    "t",
    "if#2",
    "if#2/then/decision",
    "if#2/then/if",
    "if#2/then/if/then/notify",
    "if#2/then/if/then/fail",
    "receipt",
    "notify",
    "return",
]

RECEIPT = "  receipt = refund_payment(order.id, order.total)\n"
FINAL_NOTIFY = '  notify(order.customer, "Refunded {receipt.amount}.")\n'


def ids_of(text: str) -> list[str]:
    ir, diags = compile_file(REFUND, text)
    assert ir is not None, [f"{d.code} {d.message} {d.span}" for d in diags]
    return list(ir.workflows["refund"].states)


def edit(old: str, new: str, text: str = SOURCE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_the_original_ids() -> None:
    assert ids_of(SOURCE) == ORIGINAL


def test_inserting_a_statement_before_others_renames_nothing() -> None:
    text = edit(
        "  order = fetch_order(order_id)\n", '  log "start"\n  order = fetch_order(order_id)\n'
    )
    assert ids_of(text) == ["log", *ORIGINAL]


def test_a_second_call_after_the_first_gets_the_next_number() -> None:
    text = edit(FINAL_NOTIFY, FINAL_NOTIFY + '  notify(order.customer, "Thank you.")\n')
    assert ids_of(text) == [*ORIGINAL[:11], "notify#2", "return"]


def test_a_call_inserted_before_one_with_the_same_label_takes_its_id() -> None:
    text = edit(RECEIPT, '  notify(order.customer, "Refunding.")\n' + RECEIPT)
    # The new call is now `notify`; the old final `notify` became `notify#2`.
    assert ids_of(text) == [*ORIGINAL[:9], "notify", "receipt", "notify#2", "return"]


def test_wrapping_in_if_moves_the_statement_under_the_new_if() -> None:
    wrapped = (
        "  if order.total > $0 {\n  " + RECEIPT + '  } else {\n    fail "nothing to refund"\n  }\n'
    )
    text = edit(RECEIPT, wrapped)
    assert ids_of(text) == [
        *ORIGINAL[:9],
        "if#3",
        "if#3/then/receipt",
        "if#3/else/fail",
        "notify",
        "return",
    ]


def test_an_explicit_id_survives_wrapping() -> None:
    pinned = edit(RECEIPT, "  @payout" + RECEIPT[1:])
    assert ids_of(pinned) == [*ORIGINAL[:9], "@payout", "notify", "return"]
    wrapped = (
        "  if order.total > $0 {\n    @payout"
        + RECEIPT[1:]
        + '  } else {\n    fail "nothing"\n  }\n'
    )
    text = edit("  @payout" + RECEIPT[1:], wrapped, pinned)
    assert ids_of(text) == [*ORIGINAL[:9], "if#3", "@payout", "if#3/else/fail", "notify", "return"]


def test_renaming_a_variable_renames_only_its_state() -> None:
    text = SOURCE.replace("  t = triage(", "  tri = triage(")
    text = text.replace("t.confidence", "tri.confidence").replace("t.category", "tri.category")
    text = text.replace("show: [order, t]", "show: [order, tri]")
    assert ids_of(text) == [("tri" if i == "t" else i) for i in ORIGINAL]


def test_an_if_inserted_before_other_ifs_renumbers_them() -> None:
    text = edit("  t = triage(", '  if order.total == $0 {\n    log "free"\n  }\n  t = triage(')
    assert ids_of(text) == [
        "order",
        "if",
        "if/then/fail",
        "if#2",
        "if#2/then/log",
        "t",
        "if#3",
        "if#3/then/decision",
        "if#3/then/if",
        "if#3/then/if/then/notify",
        "if#3/then/if/then/fail",
        "receipt",
        "notify",
        "return",
    ]


def test_an_edit_inside_a_body_leaves_the_outer_ids() -> None:
    text = edit(
        '      fail "refund rejected by {decision.by}"\n',
        '      log "rejected"\n      fail "refund rejected by {decision.by}"\n',
    )
    assert ids_of(text) == [*ORIGINAL[:8], "if#2/then/if/then/log", *ORIGINAL[8:]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '  try {\n    x = lookup(a)\n  } catch timeout as e {\n    log "t"\n  } catch transient, timeout {\n'
            '    log "u"\n  } finally {\n    log "f"\n  }\n  return ""\n',
            [
                "try",
                "try/body/x",
                "try/catch_timeout/log",
                "try/catch_transient/log",
                "try/finally/log",
                "return",
            ],
        ),
        (
            "  parallel {\n    x = lookup(a)\n    {\n      y = lookup(a)\n      lookup(y)\n    }\n    lookup(a)\n  }\n"
            "  return x\n",
            [
                "parallel",
                "parallel/x",
                "parallel/y",
                "parallel/lookup",
                "parallel/lookup#2",
                "return",
            ],
        ),
        (
            "  xs = for c in [a, a] {\n    s = lookup(c)\n    yield s\n  }\n  return xs[0]\n",
            ["xs", "xs/s", "xs/yield", "return"],
        ),
    ],
    ids=["try", "parallel", "for"],
)
def test_body_segments(tmp_path: Path, body: str, expected: list[str]) -> None:
    source = tmp_path / "s.mn"
    source.write_text(
        'tool lookup(a: str) -> str {\n  impl: "tools:lookup"\n}\n\n'
        "workflow w(a: str) -> str {\n" + body + "}\n",
        "utf-8",
    )
    ir, diags = compile_file(source)
    assert ir is not None, [f"{d.code} {d.message}" for d in diags]
    assert list(ir.workflows["w"].states) == expected
