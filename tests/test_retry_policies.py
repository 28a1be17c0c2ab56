"""Retries people write (docs/language.md, "Retry policies"): `attempts: unlimited` bounded by
`max_elapsed` (or the run's deadline), and several entries, one per error kind, each counting
its own attempts; both kept across a crash. In-memory backoffs run on a virtual clock, which
skips the waits and counts them as time that passed."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from test_crash import CRASH, Scenario, crash_in_process_at, drive_in_process
from test_runtime import RECORDER, Program

from mnlang.checker import check
from mnlang.checker.options import UNLIMITED, RetryPolicy
from mnlang.checker.retries import worst_case_tries
from mnlang.fmt import format_source
from mnlang.graph.dot import workflow_dot
from mnlang.ir.compile import compile_file
from mnlang.ir.decl_options import retry_policy
from mnlang.ir.diff import diff_programs
from mnlang.ir.hashing import canonical, program_hash
from mnlang.ir.load import dump_ir, parse_ir
from mnlang.ir.model import IRProgram
from mnlang.lsp.hover import describe
from mnlang.models.scripted import ScriptedProvider, check_script
from mnlang.models.setup import ModelSetup
from mnlang.runtime.clock import VirtualClock
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.retry import count, judge, new_tally
from mnlang.runtime.run import RunOutcome, start_run
from mnlang.stores.sqlite import SQLiteStore

FLAKY = """
from mnlang.errors import Timeout, Transient, named

def flaky(fails, *, ctx):
    record("flaky", attempt=ctx.attempt)
    if ctx.attempt <= fails:
        raise Transient(f"try {ctx.attempt} failed")
    return f"answered on try {ctx.attempt}"

def down(*, ctx):
    record("down", attempt=ctx.attempt)
    raise Transient("the service is down")

def script(kinds, *, ctx):
    record("script", attempt=ctx.attempt)
    if ctx.attempt > len(kinds):
        return f"answered on try {ctx.attempt}"
    kind = kinds[ctx.attempt - 1]
    if kind == "transient":
        raise Transient(f"try {ctx.attempt}: busy")
    if kind == "timeout":
        raise Timeout(f"try {ctx.attempt}: slow")
    if kind == "Declined":
        raise named("Declined", f"try {ctx.attempt}: declined")
    raise ValueError(f"try {ctx.attempt}: broken")
"""


def make(tmp_path: Path, source: str) -> Program:
    return Program(tmp_path / "p", source, RECORDER + FLAKY)


def run(p: Program, given: dict[str, Any], clock: VirtualClock) -> RunOutcome:
    name = next(w for w in p.ir.workflows if "." not in w)
    config = RuntimeConfig(commit_ms=0, clock=clock)
    return start_run(p.store, p.ir, name, given, run_id="r", config=config)


def tries(p: Program, name: str) -> list[int]:
    return [c["attempt"] for c in p.calls() if c["name"] == name]


def test_an_unlimited_retry_succeeds_on_its_twelfth_try(tmp_path: Path) -> None:
    p = make(
        tmp_path,
        """
        tool flaky(fails: int) -> str {
          impl: "tools:flaky"
          retry: { attempts: unlimited, backoff: 1s, factor: 1, max_elapsed: 1h, on: [transient] }
        }

        workflow go(fails: int) -> str {
          r = flaky(fails)
          return r
        }
        """,
    )
    clock = VirtualClock()
    out = run(p, {"fails": 11}, clock)
    assert out.status == "completed", out.error
    assert out.result == "answered on try 12"
    assert tries(p, "flaky") == list(range(1, 13))
    delays = [e.data["delay_ms"] for e in p.events("r", "retry")]
    assert delays == [1000] * 11
    assert clock.skipped > 10  # the eleven backoffs, skipped (less what passed meanwhile)


def test_max_elapsed_ends_the_retries_and_the_failure_says_so(tmp_path: Path) -> None:
    p = make(
        tmp_path,
        """
        tool down() -> str {
          impl: "tools:down"
          retry: { attempts: unlimited, backoff: 1s, factor: 1, max_elapsed: 4500ms, on: [transient] }
        }

        workflow go() -> str {
          r = down()
          return r
        }
        """,
    )
    out = run(p, {}, VirtualClock())
    assert out.status == "failed"
    # Tries at 0 s, 1 s, 2 s, 3 s and 4 s: a sixth, at 5 s, would start after 4.5 s.
    assert tries(p, "down") == [1, 2, 3, 4, 5]
    assert out.error is not None
    assert out.error["kind"] == "transient"
    message = out.error["message"]
    assert message.startswith("the service is down (gave up after 5 tries")
    assert "`max_elapsed: 4.5s`" in message
    [failed] = p.events("r", "call_failed")
    assert failed.data["message"] == message


PER_KIND = """
error Declined

tool script(kinds: list[str]) -> str {
  impl: "tools:script"
  retry: [
    { on: [transient, timeout], attempts: 3, backoff: 10ms },
    { on: [Declined], attempts: 2 },
  ]
}

workflow go(kinds: list[str]) -> str {
  r = script(kinds)
  return r
}
"""


def test_each_entry_counts_its_own_attempts(tmp_path: Path) -> None:
    """Three failures, which `attempts: 3` alone would end at, but neither entry's own
    attempts run out: the fourth try is made."""
    p = make(tmp_path, PER_KIND)
    kinds = ["transient", "Declined", "timeout"]
    out = run(p, {"kinds": kinds}, VirtualClock())
    assert out.status == "completed", out.error
    assert out.result == "answered on try 4"
    retries = p.events("r", "retry")
    assert [e.data["kind"] for e in retries] == kinds
    # Each entry's backoff grows with its own count: the Declined entry has no backoff.
    assert [e.data["delay_ms"] for e in retries] == [10, 0, 20]


def test_an_entry_that_runs_out_ends_the_call(tmp_path: Path) -> None:
    p = make(tmp_path, PER_KIND)
    out = run(p, {"kinds": ["Declined", "transient", "Declined", "transient"]}, VirtualClock())
    assert out.status == "failed"
    assert out.error is not None and out.error["kind"] == "Declined"
    assert tries(p, "script") == [1, 2, 3]


def test_a_kind_no_entry_lists_is_not_retried(tmp_path: Path) -> None:
    p = make(tmp_path, PER_KIND)
    out = run(p, {"kinds": ["transient", "tool_error"]}, VirtualClock())
    assert out.status == "failed"
    assert out.error is not None and out.error["kind"] == "tool_error"
    assert tries(p, "script") == [1, 2]


RETRIES = Scenario("retries", CRASH / "retries.mn", CRASH / "retries_input.json", short_wait_s=5.0)


def _ending(report_store: Any) -> tuple[str, Any, list[int]]:
    report, store = report_store
    failed = [e.data["attempt"] for e in store.read_journal("crash-run") if e.kind == "call_failed"]
    return report.status, report.result, failed


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_resumed_after_a_crash_keeps_its_counts(tmp_path: Path, when: str) -> None:
    """Crashed at every commit, before and after it, the run ends as the uninterrupted run
    does: the tool's second transient failure (its third try) ends it, the effect's second
    Declined (its fourth) ends the run. Had the counts been lost, the resumed run would
    retry them, and the next tries succeed."""
    reference, store, _, commits = drive_in_process(RETRIES, tmp_path / "ref", None)
    expected = _ending((reference, store))
    store.close()
    assert expected[0] == "failed"
    assert expected[2] == [3, 4]
    assert commits >= 4
    for at in range(1, commits + 1):
        report, store, _ = crash_in_process_at(RETRIES, tmp_path / f"{when}{at}", at, when)
        assert len(report.crashes) == 1
        assert _ending((report, store)) == expected, at
        store.close()


# --- the worst case the checker prices --------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    backoff_s=st.integers(1, 30),
    factor=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    max_delay_s=st.none() | st.integers(1, 120),
    jitter=st.booleans(),
    bound_s=st.integers(1, 1800),
    seed=st.text(max_size=8),
)
def test_the_priced_tries_bound_the_tries_made(
    backoff_s: int,
    factor: float,
    max_delay_s: int | None,
    jitter: bool,
    bound_s: int,
    seed: str,
) -> None:
    """Whatever the jitter draws, and with tries that take no time at all, an unlimited
    retry stopped at `max_elapsed` makes no more tries than the checker prices."""
    checked = RetryPolicy(
        attempts=UNLIMITED,
        backoff_ms=backoff_s * 1000,
        factor=factor,
        max_delay_ms=max_delay_s * 1000 if max_delay_s is not None else None,
        jitter=jitter,
        max_elapsed_ms=bound_s * 1000,
    )
    policy = retry_policy(checked)
    priced = worst_case_tries(checked, None)
    assert priced is not None
    tally = new_tally(policy, lambda: 0)
    assert tally is not None
    now, attempt = 0, 1
    while True:
        verdict = judge(policy, "timeout", attempt, tally, now, seed)
        if verdict.delay_ms is None:
            break
        count(tally, verdict)
        now += verdict.delay_ms
        attempt += 1
        assert attempt <= priced
    assert verdict.why  # it stopped at `max_elapsed`


def test_unlimited_tries_are_priced_by_max_elapsed_or_the_deadline() -> None:
    every_second = RetryPolicy(attempts=UNLIMITED, backoff_ms=1000, factor=1)
    assert worst_case_tries(every_second, 60_000) == 61
    assert worst_case_tries(every_second, None) is None
    assert worst_case_tries(replace(every_second, max_elapsed_ms=10_000), 60_000) == 11
    assert worst_case_tries(replace(every_second, jitter=True), 60_000) == 121
    doubling = RetryPolicy(attempts=UNLIMITED, backoff_ms=1000, max_delay_ms=8000)
    # 1 + 2 + 4 = 7 s, then a try each 8 s in the 53 s left: 3 + 6 retries.
    assert worst_case_tries(doubling, 60_000) == 10
    # A list: one try, plus each entry's retries.
    listed = replace(
        RetryPolicy(attempts=5, on=("timeout",)),
        more=(RetryPolicy(attempts=3, on=("rejected",)), every_second),
    )
    assert worst_case_tries(listed, 60_000) == 1 + 4 + 2 + 60


# --- the IR, `mnc graph`, `mnc diff`, `mnc fmt` and the hover -------------------------------

SHOWN = """
error Declined

tool poll(id: str) -> str {
  impl: "tools:poll"
  retry: [
    { on: [transient, timeout], attempts: 3, backoff: 10ms },
    { on: [Declined], attempts: unlimited, backoff: 1s, max_elapsed: 1h },
  ]
}

workflow watch(id: str) -> str {
  s = poll(id)
  return s
}
"""


def compiled(tmp_path: Path, source: str) -> IRProgram:
    path = tmp_path / "watch.mn"
    path.write_text(source, "utf-8")
    ir, diagnostics = compile_file(path)
    assert ir is not None, [str(d) for d in diagnostics]
    return ir


def test_the_ir_states_each_entry_and_loads_back(tmp_path: Path) -> None:
    ir = compiled(tmp_path, SHOWN)
    written = json.loads(dump_ir(ir))["tools"]["poll"]["retry"]
    assert written["attempts"] == 3 and "max_elapsed_ms" not in written
    assert written["more"] == [
        {
            "attempts": "unlimited",
            "backoff_ms": 1000,
            "factor": 2.0,
            "jitter": False,
            "on": ["Declined"],
            "max_elapsed_ms": 3_600_000,
        }
    ]
    again = parse_ir(dump_ir(ir))
    assert again.tools["poll"].retry == ir.tools["poll"].retry
    assert program_hash(again) == ir.hash


def test_a_policy_without_the_new_options_keeps_its_hash(tmp_path: Path) -> None:
    """The fields are left out of the content hash while unused (the golden IR of the
    examples checks the same for whole programs)."""
    plain = SHOWN.replace(
        SHOWN[SHOWN.index("[\n") : SHOWN.index("]\n}") + 1], "{ attempts: 3, backoff: 10ms }"
    )
    data = canonical(compiled(tmp_path, plain).tools["poll"].retry)
    assert set(data) == {"attempts", "backoff_ms", "factor", "max_delay_ms", "jitter", "on"}


def test_graph_labels_show_each_entry(tmp_path: Path) -> None:
    dot = workflow_dot(compiled(tmp_path, SHOWN), "watch")
    assert "retry 3x on transient, timeout, backoff 10ms" in dot
    assert "retry unlimited on Declined, backoff 1s, within 1h" in dot


def test_diff_reports_a_changed_entry_and_refuses_to_move_a_run_waiting_there(
    tmp_path: Path,
) -> None:
    old = compiled(tmp_path, SHOWN)
    new = compiled(tmp_path, SHOWN.replace("max_elapsed: 1h", "max_elapsed: 2h"))
    (wf,) = diff_programs(old, new).workflows
    assert [(c.id, c.fields) for c in wf.changed] == [("s", ["retry"])]
    verdicts = {v.state: v.problems for v in wf.resume if not v.safe}
    assert verdicts == {"s": ["its `retry` changed"]}


def test_fmt_keeps_a_retry_list_one_entry_per_line() -> None:
    text = dedent(SHOWN).lstrip("\n")
    result = format_source(text)
    assert result.text == text


def test_hover_shows_each_entry(tmp_path: Path) -> None:
    path = tmp_path / "watch.mn"
    path.write_text(SHOWN, "utf-8")
    program = check(path).program
    assert program is not None
    text = describe(program, program.symbols["poll"])
    assert "**retry**, by the first entry whose kinds match, each counting its own:" in text
    assert "- 3 attempts, first delay 10ms, times 2 after each, on `transient`, `timeout`" in text
    assert (
        "- unlimited attempts, first delay 1s, times 2 after each, within 1h of the first" in text
    )


# --- effects and agents keep the same counts ------------------------------------------------


def test_an_effect_counts_its_retries_per_entry(tmp_path: Path) -> None:
    p = make(
        tmp_path,
        """
        error Declined

        effect book(kinds: list[str]) -> str {
          impl: "tools:script"
          key: "book:{kinds}"
          retry: [{ on: [transient], attempts: 2 }, { on: [Declined], attempts: 2 }]
        }

        workflow go(kinds: list[str]) -> str {
          r = book(kinds)
          return r
        }
        """,
    )
    out = run(p, {"kinds": ["transient", "Declined"]}, VirtualClock())
    assert out.status == "completed", out.error
    assert out.result == "answered on try 3"
    assert [e.data["kind"] for e in p.events("r", "retry")] == ["transient", "Declined"]
    # A second transient failure would end it: its entry has had its two tries.
    out = start_run(
        p.store,
        p.ir,
        "go",
        {"kinds": ["transient", "Declined", "transient"]},
        run_id="r2",
        config=RuntimeConfig(commit_ms=0, clock=VirtualClock()),
    )
    assert out.status == "failed" and out.error is not None
    assert out.error["kind"] == "transient"


AGENT = """
type Triage {
  label: str
}

agent triage(text: str) -> Triage {
  model: "gpt-5.4-mini"
  prompt: "Classify: {text}"
  max_tokens: 50
  retry: [
    { on: [malformed_output], attempts: unlimited, backoff: 1s, factor: 1, max_elapsed: 2500ms },
    { on: [transient], attempts: 3 },
  ]
}

workflow classify(text: str) -> str {
  t = triage(text)
  return t.label
}
"""


def test_an_agent_stops_at_max_elapsed_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "flow.mn"
    path.write_text(AGENT, "utf-8")
    ir, diagnostics = compile_file(path)
    assert ir is not None, [str(d) for d in diagnostics]
    bad = {"$text": "{]"}
    models = ModelSetup(
        spec="scripted", override=ScriptedProvider(check_script({"triage": [bad] * 6}, "s"), "s")
    )
    config = RuntimeConfig(models=models, commit_ms=0, clock=VirtualClock())
    with SQLiteStore(tmp_path / "journal.db") as store:
        out = start_run(store, ir, "classify", {"text": "x"}, run_id="a", config=config)
        assert out.status == "failed" and out.error is not None
        assert out.error["kind"] == "malformed_output"
        # Requests at 0 s, 1 s and 2 s; a fourth, at 3 s, would start after 2.5 s.
        assert "gave up after 3 tries" in out.error["message"]
        assert "`max_elapsed: 2.5s`" in out.error["message"]
        retried = [e for e in store.read_journal("a") if e.kind == "retry"]
        assert [e.data["attempt"] for e in retried] == [1, 2]
