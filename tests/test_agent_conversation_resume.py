"""An agent with a `conversation:` whose call waits for an approval, as the support-agent
example's assistant does: its prompt is its own (not the conversation's first user
turn) for scripted replies and replay, its arguments are the ones it started with after
the wait (a `now()` among them is not taken again), and such a run replays `same` (the
approval decided again by its effect's name) and is written back as a scenario
(`mnc test --from-run`) that decides it by that name."""

from __future__ import annotations

from pathlib import Path

from mnlang.ir.compile import compile_file
from mnlang.models.base import ModelRequest
from mnlang.replay.engine import replay_recording
from mnlang.replay.recording import Recording, recording_from_store
from mnlang.testing.runner import run_scenario

SOURCE = """
import std.chat { Role, Turn }

effect book(hotel: int) -> str {
  impl: "tools:book"
  key: "book:{hotel}"
  requires: approval
}

agent desk(time: timestamp, history: list[Turn], text: str) -> str {
  model: "gpt-5.4-mini"
  system: "It is {time}."
  prompt: "{text}"
  conversation: history
  tools: [book]
  max_turns: 3
  max_tokens: 100
}

workflow chat(first: str, second: str) -> str {
  a = desk(now(), [], first)
  said = Turn { role: Role.user, content: first }
  b = desk(now(), [said, Turn { role: Role.assistant, content: a }], second)
  return "{a} / {b}"
}

scenario two_turns {
  run: chat("book hotel 1", "thanks")
  replies: {
    desk: [
      prompt_has("thanks", "you are welcome"),
      prompt_has("book hotel", book(1)),
      prompt_has("book hotel", "booked"),
    ]
  }
  tools: { book: ["done"] }
  decisions: { book: approve }
  expect: { output: "booked / you are welcome" }
}
"""

TOOLS = """
def book(hotel, *, ctx=None):
    return "done"
"""


def recorded(tmp_path: Path) -> Recording:
    (tmp_path / "flow.mn").write_text(SOURCE, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    program, diagnostics = compile_file(tmp_path / "flow.mn")
    assert program is not None, [d.message for d in diagnostics]
    recordings: list[Recording] = []
    result = run_scenario(
        program,
        program.scenarios["two_turns"],
        "flow.mn",
        lambda store, run_id: recordings.append(recording_from_store(store, run_id)),
    )
    assert result.passed, result
    return recordings[0]


def test_the_prompt_of_a_request_is_the_agents_not_the_conversations_first_turn() -> None:
    request = ModelRequest(
        agent="desk",
        model="m",
        messages=[
            {"role": "system", "content": "s"},
            {"role": "user", "content": "book hotel 1"},
            {"role": "assistant", "content": "booked"},
            {"role": "user", "content": "thanks"},
            {"role": "user", "content": "Your reply could not be used: ..."},
        ],
        output_schema={},
        conversation=2,
    )
    assert request.prompt == "thanks"


def test_a_resumed_call_keeps_its_arguments_and_the_run_replays_same(tmp_path: Path) -> None:
    recording = recorded(tmp_path)
    events = recording.root.events
    started = [e.data["args"] for e in events if e.kind == "agent_started"]
    ended = [e.data["args"] for e in events if e.kind == "agent"]
    assert len(started) == 2 and started == ended  # the approval's wait took no new `now()`
    assert sum(1 for e in events if e.kind == "now") == 2
    report = replay_recording(recording).to_json()
    assert report["verdict"] == "same", report


def test_such_a_run_written_as_a_scenario_decides_the_approval_by_its_effect(
    tmp_path: Path,
) -> None:
    from mnlang.testing import run_tests
    from mnlang.testing.from_run import write_scenario

    recording = recorded(tmp_path)
    program, _ = compile_file(tmp_path / "flow.mn")
    assert program is not None
    target = tmp_path / "from_run.mn"
    write_scenario(recording, program, target)
    text = target.read_text("utf-8")
    assert 'decisions: { book: [{ choice: approve, by: "scenario" }] }' in text, text
    report = run_tests([target])
    assert report.ok, text
