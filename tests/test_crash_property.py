"""A property: for random small workflows and inputs, stopping the run at any commit and
resuming it gives what the uninterrupted run gives (the in-process harness of
`test_crash.py`, with its ledger checks).

The workflows are sequences of steps drawn from: a pure tool call, a keyed effect, a
`for` loop of effects, an `if`, a `parallel for` of tools and effects, and a `try`
around a tool that fails for some inputs.
"""

from __future__ import annotations

from pathlib import Path

import test_crash as crash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnlang.ir.compile import compile_file

HEADER = """
tool bump(n: int) -> int {
  impl: "prop_tools:bump"
}

tool fragile(n: int) -> int {
  impl: "prop_tools:fragile"
}

effect put(k: str, n: int) -> int {
  impl: "prop_tools:put"
  key: "put:{k}"
}
"""

TOOLS = """
import json, os
from mnlang.errors import Rejected

def bump(n):
    return n + 1

def fragile(n):
    if n % 3 == 0:
        raise Rejected(f"{n} is a multiple of 3")
    return n % 7

def put(k, n, *, ctx):
    with open(os.environ["MNC_EXAMPLE_LEDGER"], "a") as f:
        f.write(json.dumps({"key": ctx.key}) + "\\n")
    return n * 2 % 11
"""

OPS = ("tool", "effect", "loop", "if", "map", "try")


def render(ops: list[str]) -> str:
    body: list[str] = []
    for i, op in enumerate(ops):
        if op == "tool":
            body += [f"v{i} = bump(total)", f"total = total + v{i}"]
        elif op == "effect":
            body += [f'w{i} = put("e{i}", total)', f"total = total + w{i}"]
        elif op == "loop":
            body += [
                f"for j{i} in [1, 2, 3] {{",
                f'  u{i} = put("l{i}:{{j{i}}}", j{i} + total)',
                f"  total = total + u{i}",
                "}",
            ]
        elif op == "if":
            body += [
                "if total % 2 == 0 {",
                "  total = total + 1",
                "} else {",
                "  total = total * 3",
                "}",
            ]
        elif op == "map":
            body += [
                f"ys{i} = parallel for q{i} in [1, 2, 3, 4] limit 2 {{",
                f"  z{i} = bump(q{i})",
                f'  p{i} = put("m{i}:{{q{i}}}", z{i})',
                f"  yield z{i} + p{i}",
                "}",
                f"total = total + sum(ys{i})",
            ]
        else:
            body += [
                "try {",
                f"  f{i} = fragile(total)",
                "} catch rejected as e {",
                f"  f{i} = 100",
                "}",
                f"total = total + f{i}",
            ]
    lines = "\n".join("  " + line for line in body)
    return f"{HEADER}\nworkflow prop(seed: int) -> int {{\n  total = seed\n{lines}\n  return total\n}}\n"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=6),
    seed=st.integers(min_value=0, max_value=50),
    fraction=st.floats(min_value=0, max_value=1),
    when=st.sampled_from(["before", "after"]),
)
def test_resume_after_a_crash_equals_the_uninterrupted_run(
    tmp_path_factory: object, ops: list[str], seed: int, fraction: float, when: str
) -> None:
    folder = Path(tmp_path_factory.mktemp("prop"))  # type: ignore[attr-defined]
    (folder / "prop.mn").write_text(render(ops), "utf-8")
    (folder / "prop_tools.py").write_text(TOOLS, "utf-8")
    (folder / "input.json").write_text(f'{{"seed": {seed}}}', "utf-8")
    ir, diagnostics = compile_file(folder / "prop.mn")
    assert ir is not None, [str(d) for d in diagnostics]
    scenario = crash.Scenario(f"prop-{id(ir)}", folder / "prop.mn", folder / "input.json")
    crash._programs[scenario.source] = ir
    reference, store, ledger, commits = crash.drive_in_process(scenario, folder / "ref", None)
    ref_calls = crash.ledger_calls(ledger)
    store.close()
    at = 1 + int(fraction * (commits - 1))
    report, store, ledger = crash.crash_in_process_at(scenario, folder / "crash", at, when)
    assert len(report.crashes) == 1
    crash.check_against(reference, report, store, ledger, scenario, ref_calls)
    store.close()
