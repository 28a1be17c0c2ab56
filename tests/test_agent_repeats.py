"""An effect an agent calls: a new request of the model is a new action, the same request
resumed is the same action. A concierge books hotel 5, cancels it and books it again
(`tests/wire/hotel.mn`, each call approved by a person through `mnc approve`), against a
real idempotent receiver on localhost (`tests/wire/receiver.py`) that deduplicates by
the `Idempotency-Key` it is sent: exactly two bookings and one cancellation must reach
it, with scripted replies and with a local OpenAI-compatible server, and with the
processes killed at every commit (the crash hook, a SIGKILL's exit)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mnlang.stores.sqlite import SQLiteStore
from tests.chat_server import Answer, chat_server, completion
from tests.wire.receiver import Server

WIRE = Path(__file__).parent / "wire"
HOTEL = WIRE / "hotel.mn"
RUN_ID = "trip"

BOOK = {"name": "book_hotel", "arguments": {"hotel": 5}}
CANCEL = {"name": "cancel_hotel", "arguments": {"hotel": 5}}
TURNS: list[Any] = [[BOOK], [CANCEL], [BOOK], {"text": "booked again"}]
"""What the model asks for, reply by reply: tool calls, then the answer."""


def script(turns: list[Any]) -> dict[str, list[Any]]:
    return {
        "concierge": [{"$tool_calls": t} if isinstance(t, list) else t for t in turns],
    }


def respond_by_turn(turns: list[Any]) -> Callable[[Any], Answer]:
    """A model that answers a conversation by how many replies it holds already."""

    def respond(body: Any) -> Answer:
        replies = sum(1 for m in body["messages"] if m["role"] == "assistant")
        turn = turns[replies]
        if isinstance(turn, list):
            return Answer(200, completion(tool_calls=turn))
        return Answer(200, completion(json.dumps(turn)))

    return respond


@dataclass
class Drive:
    status: str
    processes: int
    crashes: int


def base_env(receiver: Server, models: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    return {**env, **models, "HOTEL_RECEIVER": receiver.url, "MNC_COMMIT_MS": "0"}


def mnc(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mnlang.cli", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def drive(
    source: Path, db: Path, env: dict[str, str], crash: Callable[[int], dict[str, str]]
) -> Drive:
    """`mnc run`, then as a person would: approve the open checkpoint (`mnc approve`, which
    goes on with the run), or `mnc resume` a run that died; `crash(i)` gives the crash
    settings of the i-th process."""
    args = ["run", str(source), "--db", str(db), "--id", RUN_ID, "--json"]
    done = mnc([*args, "--input", json.dumps({"request": "a room"})], {**env, **crash(0)})
    process, crashes = 0, 0
    while True:
        process += 1
        assert process < 40, "the run does not make progress"
        if done.returncode in (0, 1):
            assert done.stdout.startswith("{"), (done.args, done.stdout, done.stderr)
            outcome = json.loads(done.stdout)
            outcome = outcome["runs"][0] if "runs" in outcome else outcome  # `mnc approve`
            return Drive(outcome["status"], process, crashes)
        assert done.returncode in (3, 137), done.stdout + done.stderr
        crashes += done.returncode == 137
        with SQLiteStore(db) as store:
            waiting = store.open_checkpoints(RUN_ID)
        env_now = {**env, **crash(process)}
        if waiting:
            checkpoint = waiting[0].checkpoint_id
            done = mnc(["approve", RUN_ID, checkpoint, "--db", str(db), "--json"], env_now)
        else:
            done = mnc(["resume", RUN_ID, "--db", str(db), "--json"], env_now)


def performed(receiver: Server) -> Counter[str]:
    return Counter(r.path for r in receiver.receiver.performed)


def journal_kinds(db: Path) -> Counter[str]:
    with SQLiteStore(db) as store:
        return Counter(e.kind for e in store.read_journal(RUN_ID))


def scripted_models(tmp: Path, turns: list[Any]) -> dict[str, str]:
    replies = tmp / "replies.json"
    replies.write_text(json.dumps(script(turns)), "utf-8")
    return {"MNC_MODELS": f"scripted:{replies}"}


def no_crash(i: int) -> dict[str, str]:
    return {}


def test_book_cancel_book_again_is_three_actions(tmp_path: Path) -> None:
    with Server() as receiver:
        env = base_env(receiver, scripted_models(tmp_path, TURNS))
        run = drive(HOTEL, tmp_path / "journal.db", env, no_crash)
    assert run.status == "completed"
    assert performed(receiver) == Counter({"/book": 2, "/cancel": 1})
    assert len({r.key for r in receiver.receiver.requests}) == 3
    assert journal_kinds(tmp_path / "journal.db")["replayed"] == 0


def test_two_identical_calls_in_one_reply_are_two_actions(tmp_path: Path) -> None:
    """As documented (docs/runtime.md, "Effects an agent calls"): each tool call of a
    reply is its own request, so a reply that asks twice books twice."""
    turns: list[Any] = [[BOOK, BOOK], {"text": "two rooms"}]
    with Server() as receiver:
        env = base_env(receiver, scripted_models(tmp_path, turns))
        run = drive(HOTEL, tmp_path / "journal.db", env, no_crash)
    assert run.status == "completed"
    assert performed(receiver) == Counter({"/book": 2})


def test_a_global_key_deduplicates_across_requests_and_with_the_workflow(
    tmp_path: Path,
) -> None:
    source = HOTEL.read_text("utf-8").replace("  requires: approval\n", "")
    source = source.replace(
        'key: "book-hotel:{hotel}"', 'key: "book-hotel:{hotel}"\n  scope: global'
    )
    source = source.replace("  t = concierge(", "  _first = book_hotel(5)\n  t = concierge(")
    (tmp_path / "hotel.mn").write_text(source, "utf-8")
    shutil.copy(WIRE / "hotel_tools.py", tmp_path / "hotel_tools.py")
    with Server() as receiver:
        env = base_env(receiver, scripted_models(tmp_path, TURNS))
        run = drive(tmp_path / "hotel.mn", tmp_path / "journal.db", env, no_crash)
    assert run.status == "completed"
    # The workflow's call books; both of the agent's are replayed from the ledger.
    assert performed(receiver) == Counter({"/book": 1, "/cancel": 1})
    assert journal_kinds(tmp_path / "journal.db")["replayed"] == 2


def enumerate_crashes(tmp: Path, models: Callable[[Path], dict[str, str]], when: str) -> int:
    """Kill every process of the run at each of its commits in turn; each time the run
    must end with two bookings and one cancellation at the receiver."""
    with Server() as receiver:
        reference = drive(HOTEL, tmp / "reference.db", base_env(receiver, models(tmp)), no_crash)
    assert reference.status == "completed"
    assert performed(receiver) == Counter({"/book": 2, "/cancel": 1})
    tried = 0
    for process in range(reference.processes):
        at = 0
        while True:
            at += 1
            folder = tmp / f"{process}-{at}"
            folder.mkdir()
            plan = {"MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when}

            def crash(
                i: int, process: int = process, plan: dict[str, str] = plan
            ) -> dict[str, str]:
                return plan if i == process else {}

            with Server() as receiver:
                env = base_env(receiver, models(folder))
                run = drive(HOTEL, folder / "journal.db", env, crash)
            if not run.crashes:
                break
            tried += 1
            assert run.status == "completed", (process, at)
            assert performed(receiver) == Counter({"/book": 2, "/cancel": 1}), (process, at)
    return tried


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_at_every_commit_with_scripted_replies(tmp_path: Path, when: str) -> None:
    tried = enumerate_crashes(tmp_path, lambda folder: scripted_models(folder, TURNS), when)
    assert tried > 8


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_at_every_commit_with_a_chat_server(tmp_path: Path, when: str) -> None:
    with chat_server() as model:
        model.respond = respond_by_turn(TURNS)
        env = {
            "MNC_MODELS": "openai",
            "MNC_OPENAI_BASE_URL": model.base_url,
            "MNC_OPENAI_API_KEY": "k",
        }
        tried = enumerate_crashes(tmp_path, lambda folder: env, when)
    assert tried > 8


def test_an_agents_approval_has_a_default_timeout_shown_by_mnc_show(tmp_path: Path) -> None:
    with Server() as receiver:
        env = base_env(receiver, scripted_models(tmp_path, TURNS))
        db = ["--db", str(tmp_path / "journal.db")]
        started = mnc(["run", str(HOTEL), *db, "--id", RUN_ID, "--input", '{"request": "r"}'], env)
        assert started.returncode == 3, started.stdout + started.stderr
        shown = mnc(["show", RUN_ID, *db], env)
    assert "timeout: 1d, then reject" in shown.stdout
    assert "timer checkpoint:" in shown.stdout


def resumed_past_the_timeout(
    tmp_path: Path, source: str, turns: list[Any], then: str
) -> tuple[Server, Any]:
    """Run `source` (hotel.mn with a 1 s approval timeout) with the model's `turns` until
    it waits on the approval, which `mnc show` says is decided `then` (e.g. "then reject")
    at its timeout; resume it once the timeout passed. The receiver and the run's result."""
    (tmp_path / "hotel.mn").write_text(source, "utf-8")
    shutil.copy(WIRE / "hotel_tools.py", tmp_path / "hotel_tools.py")
    with Server() as receiver:
        env = base_env(receiver, scripted_models(tmp_path, turns))
        # Left waiting on its 1 s timeout, not waited for in process (docs/runtime.md,
        # "Short waits"), so that `mnc show` sees the open approval.
        env["MNC_SHORT_WAIT_S"] = "0"
        db = ["--db", str(tmp_path / "journal.db")]
        args = ["run", str(tmp_path / "hotel.mn"), *db, "--id", RUN_ID]
        started = mnc([*args, "--input", '{"request": "r"}'], env)
        assert started.returncode == 3, started.stdout + started.stderr
        assert f"timeout: 1s, {then}" in mnc(["show", RUN_ID, *db], env).stdout
        time.sleep(1.2)
        resumed = mnc(["resume", RUN_ID, *db, "--json"], env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return receiver, json.loads(resumed.stdout)["result"]


def test_an_approval_that_times_out_is_decided_and_told_to_the_model(tmp_path: Path) -> None:
    source = HOTEL.read_text("utf-8").replace(
        'key: "book-hotel:{hotel}"\n  requires: approval',
        'key: "book-hotel:{hotel}"\n  requires: approval\n'
        "  approval: { timeout: 1s, on_timeout: reject }",
    )
    assert "timeout: 1s" in source
    turns: list[Any] = [[BOOK], {"text": "nobody approved"}]
    receiver, result = resumed_past_the_timeout(tmp_path, source, turns, "then reject")
    assert result == "nobody approved"
    assert performed(receiver) == Counter()
    with SQLiteStore(tmp_path / "journal.db") as store:
        decided = [e.data for e in store.read_journal(RUN_ID) if e.kind == "decided"]
    assert [(d["choice"], d["by"], d["approved"]) for d in decided] == [
        ("reject", "timeout", False)
    ]


def test_an_agents_own_approval_applies_to_its_effects_without_one(tmp_path: Path) -> None:
    source = HOTEL.read_text("utf-8").replace(
        "  max_turns: 6\n", "  max_turns: 6\n  approval: { timeout: 1s, on_timeout: approve }\n"
    )
    turns: list[Any] = [[BOOK], {"text": "booked by default"}]
    receiver, _ = resumed_past_the_timeout(tmp_path, source, turns, "then approve")
    assert performed(receiver) == Counter({"/book": 1})


def test_killed_after_the_replys_commit_before_the_tools_intent_books_nothing_extra(
    tmp_path: Path,
) -> None:
    """The reply that asks for a booking is committed with its approval checkpoint; the
    process that approves dies (as a SIGKILL) before its first commit, the one with the
    booking's intent. (Without an approval the reply and the first call's intent are one
    commit: there is no such moment.)"""
    crash = {"MNC_CRASH_AT_COMMIT": "1", "MNC_CRASH_WHEN": "before"}
    with Server() as receiver:
        env = base_env(receiver, scripted_models(tmp_path, TURNS))
        db = tmp_path / "journal.db"
        run = drive(HOTEL, db, env, lambda i: crash if i == 1 else {})
        assert run.crashes == 1
    assert run.status == "completed"
    assert performed(receiver) == Counter({"/book": 2, "/cancel": 1})
    with SQLiteStore(db) as store:
        intents = [e.data for e in store.read_journal(RUN_ID) if e.kind == "intent"]
    assert len(intents) == 3 and len({i["key"] for i in intents}) == 3
