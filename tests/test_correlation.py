"""Correlated callbacks (issue 14, part 3): `wait E for KEY`, signals kept per key,
callback tokens, and the signals a send refuses because no wait would take them.

On SQLite and PostgreSQL: every item's signal sent in reverse order before the run
starts, for `parallel for` and for `for`, gives each item its own. Tokens: answered in
reverse order, a forged or foreign token refused, a token of a wait that is over refused
with the wait named. A `mnc run` killed (SIGKILL) after the tool received its token and
before the commit: the callback with that first token is kept and taken. In process, a
crash at every commit (before and after it), with callbacks sent at every stop.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mnlang import api
from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.runtime.signals import SignalError, send, send_token
from mnlang.runtime.tokens import make_token
from mnlang.stores import open_store
from mnlang.stores.base import Store
from mnlang.stores.sqlite import SQLiteStore
from tests.human.harness import mnc, mnc_env
from tests.test_crash import CrashingStore, SimulatedCrash, _break_lease, _settle_threads

HERE = Path(__file__).resolve().parent / "correlation"
SOURCE = HERE / "thaw.mn"
KEYS = ["k1", "k2", "k3", "k4"]
OBJECTS = {"objects": [{"bucket": "b", "key": k} for k in KEYS]}


def payload(key: str) -> dict[str, str]:
    return {"bucket": f"restored-{key}", "key": key}


def expected() -> list[str]:
    return [f"{k}<-restored-{k}/{k}" for k in KEYS]


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


@pytest.fixture
def program() -> IRProgram:
    ir, diagnostics = compile_file(SOURCE)
    assert ir is not None, diagnostics
    return ir


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(path))
    return path


# --- signals by key, sent before the run starts --------------------------------------------


@pytest.mark.parametrize("workflow", ["thaw", "thaw_each"])
def test_each_item_gets_its_own_signal_sent_in_reverse_before_the_start(
    workflow: str, journal: str, ledger: Path, program: IRProgram
) -> None:
    created = api.start_run(
        program, OBJECTS, workflow=workflow, run_id="r", db=journal, detach=True
    )
    assert created.status == "running"
    for key in reversed(KEYS):
        outcome = api.signal("r", "restored", payload(key), key=key, db=journal)
        assert outcome.delivered.accepted and not outcome.delivered.waiting
        assert outcome.runs == []
    with open_store(journal) as store:
        kept = store.pending_signals("r")
        assert [(s.name, s.key) for s in kept] == [("restored", k) for k in reversed(KEYS)]
    done = api.resume_run("r", db=journal)
    assert done.status == "completed", done.error
    assert done.result == expected()
    with open_store(journal) as store:
        assert store.pending_signals("r") == []
        taken = [e.data for e in store.read_journal("r") if e.kind == "signal"]
        assert sorted(d["key"] for d in taken) == KEYS
        assert all(d["payload"] == payload(d["key"]) for d in taken)


def test_a_worker_wakes_a_run_only_for_the_key_it_waits_for(
    journal: str, ledger: Path, program: IRProgram
) -> None:
    """A signal for an item the run does not wait for yet does not make it runnable (a
    worker would only pause it again); the signal for the item it waits for does."""
    started = api.start_run(program, OBJECTS, workflow="thaw_each", run_id="wk", db=journal)
    assert started.status == "waiting"
    with open_store(journal) as store:
        for key in ["k4", "k3", "k2"]:
            send(store, "wk", "restored", payload(key), key=key)
        assert "wk" not in store.runnable_runs()
        send(store, "wk", "restored", payload("k1"), key="k1")
        assert "wk" in store.runnable_runs()
    api.run_worker(db=journal, concurrency=1, until_idle=True)
    with open_store(journal) as store:
        record = store.get_run("wk")
        assert record is not None and (record.status, record.result) == ("completed", expected())


def test_signals_answer_the_waiting_items_by_key_in_any_order(
    journal: str, ledger: Path, program: IRProgram
) -> None:
    first = api.start_run(program, OBJECTS, workflow="thaw_each", run_id="s", db=journal)
    assert first.status == "waiting"
    with open_store(journal) as store:
        record = store.get_run("s")
        assert record is not None and record.waiting_for == ["restored#k1"]
    # k3 and k2 are kept (the run waits for k1 only); k1 wakes it and it takes all three.
    for key in ["k3", "k2"]:
        assert not api.signal("s", "restored", payload(key), key=key, db=journal).delivered.waiting
    woke = api.signal("s", "restored", payload("k1"), key="k1", db=journal)
    assert woke.delivered.waiting
    assert [r.status for r in woke.runs] == ["waiting"]
    with open_store(journal) as store:
        record = store.get_run("s")
        assert record is not None and record.waiting_for == ["restored#k4"]
    last = api.signal("s", "restored", payload("k4"), key="k4", db=journal)
    assert [(r.status, r.result) for r in last.runs] == [("completed", expected())]


# --- what a send refuses ------------------------------------------------------------------


def test_signals_nobody_would_take_are_refused(
    journal: str, ledger: Path, program: IRProgram
) -> None:
    api.start_run(program, OBJECTS, workflow="thaw_each", run_id="n", db=journal, detach=True)
    api.start_run(program, OBJECTS, workflow="outer", run_id="o", db=journal, detach=True)
    with open_store(journal) as store:
        refusals = [
            ("n", None, "the wait for `restored` (step `done/r`) is correlated"),
            ("o", "k1", "workflow `outer` never waits for `restored`; its child workflow "),
        ]
        for run_id, key, message in refusals:
            with pytest.raises(SignalError) as refused:
                send(store, run_id, "restored", payload("k1"), key=key)
            assert refused.value.message.startswith(message), refused.value.message
        assert "`thaw_each`" in str(refused.value.message)
        # A second signal for one key while the first is unread: refused; the same id
        # again is a harmless repeat.
        assert send(store, "n", "restored", payload("k1"), key="k1", signal_id="a").accepted
        repeat = send(store, "n", "restored", payload("k1"), key="k1", signal_id="a")
        assert not repeat.accepted
        with pytest.raises(SignalError) as refused:
            send(store, "n", "restored", payload("k1"), key="k1", signal_id="b")
        assert "is already in run `n`'s mailbox" in refused.value.message
        assert [s.key for s in store.pending_signals("n")] + [
            s.key for s in store.pending_signals("o")
        ] == ["k1"]


def test_a_signal_for_a_wait_that_is_over_is_refused_with_the_wait_named(
    tmp_path: Path, ledger: Path, program: IRProgram
) -> None:
    db = str(tmp_path / "journal.db")
    api.start_run(program, OBJECTS, workflow="thaw_each", run_id="w", db=db)
    api.signal("w", "restored", payload("k1"), key="k1", db=db)
    with SQLiteStore(db) as store:
        with pytest.raises(SignalError) as refused:
            send(store, "w", "restored", payload("k1"), key="k1")
        over = (
            "the wait `restored` for key `k1` (step `done/r`) is over: it took its signal already"
        )
        assert refused.value.message == over
        # The same wait's token, as `callback_token(restored, "k1")` made it in run `w`.
        token = make_token(store.callback_secret(), "w", "restored", "k1")
        with pytest.raises(SignalError) as refused:
            send_token(store, token, payload("k1"))
        assert refused.value.message == over
        assert store.pending_signals("w") == []


def test_the_timeout_of_a_keyed_wait_closes_it(tmp_path: Path, ledger: Path) -> None:
    source = tmp_path / "flow.mn"
    source.write_text(
        "event restored -> str\n\n"
        "workflow many(keys: list[str]) -> list[str] {\n"
        "  got = for k in keys {\n"
        "    r = wait restored for k { timeout: 1h }\n"
        '    yield r ?? "none"\n'
        "  }\n"
        "  return got\n"
        "}\n",
        "utf-8",
    )
    db = str(tmp_path / "journal.db")
    assert api.start_run(source, {"keys": ["a", "b"]}, run_id="t", db=db).status == "waiting"
    with SQLiteStore(db) as store, store._lock:
        store._conn.execute("UPDATE timers SET due_at = 0 WHERE run_id = 't'")
    assert api.resume_run("t", db=db).status == "waiting"  # `a` timed out; waits for `b`
    with SQLiteStore(db) as store:
        with pytest.raises(SignalError) as refused:
            send(store, "t", "restored", "late", key="a")
        assert refused.value.message == (
            "the wait `restored` for key `a` (step `got/r`) is over: it timed out"
        )
        assert send(store, "t", "restored", "yes", key="b").waiting
    assert api.resume_run("t", db=db).result == ["none", "yes"]


# --- callback tokens ----------------------------------------------------------------------


def test_tokens_answer_their_own_item_in_reverse_order(
    journal: str, ledger: Path, program: IRProgram
) -> None:
    first = api.start_run(program, OBJECTS, workflow="thaw", run_id="tk", db=journal)
    assert first.status == "waiting"
    rows = ledger_rows(ledger)
    tokens = {row["key"]: row["token"] for row in rows}
    assert sorted(tokens) == KEYS and len(set(tokens.values())) == len(KEYS)
    assert all(token.startswith("mnt1.") for token in tokens.values())
    forged = tokens["k1"][:-2] + ("AA" if not tokens["k1"].endswith("AA") else "BB")
    with pytest.raises(SignalError, match="not issued by this journal"):
        api.signal(None, None, payload("k1"), token=forged, db=journal)
    outcomes = [
        api.signal(None, None, payload(key), token=tokens[key], db=journal)
        for key in reversed(KEYS)
    ]
    assert all(o.delivered.accepted and o.delivered.run_id == "tk" for o in outcomes)
    [end] = outcomes[-1].runs
    assert (end.status, end.result) == ("completed", expected())
    with pytest.raises(SignalError) as refused:
        api.signal(None, None, payload("k2"), token=tokens["k2"], db=journal)
    assert "run `tk` has ended" in refused.value.message


def test_a_token_of_another_journal_is_refused(tmp_path: Path, ledger: Path) -> None:
    first = tmp_path / "a.db"
    other = tmp_path / "b.db"
    api.start_run(SOURCE, OBJECTS, workflow="thaw", run_id="x", db=first)
    api.start_run(SOURCE, OBJECTS, workflow="thaw", run_id="x", db=other)
    tokens = [row["token"] for row in ledger_rows(ledger)]
    # The same run id, event and key in two journals: different secrets, different tokens.
    assert tokens[0] != tokens[len(KEYS)]
    with SQLiteStore(other) as store, pytest.raises(SignalError, match="not issued by"):
        send_token(store, tokens[0], payload("k1"))
    with SQLiteStore(first) as store:
        assert send_token(store, tokens[0], payload("k1")).accepted


def test_mnc_signal_with_key_and_token_and_show(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    started = mnc(
        ["run", str(SOURCE), "-w", "thaw", "--id", "c", "--input", json.dumps(OBJECTS)], env
    )
    assert started.returncode == 3, started.stderr
    shown = mnc(["show", "c"], env)
    assert "signal: mnc signal c restored --key k3 [JSON]" in shown.stdout
    tokens = {r["key"]: r["token"] for r in ledger_rows(tmp_path / "ledger.jsonl")}
    sent = mnc(["signal", "c", "restored", "--key", "k2", json.dumps(payload("k2"))], env)
    assert sent.returncode == 3 and "delivered: restored (key k2) to run c" in sent.stdout
    for key in ["k4", "k3", "k1"]:
        sent = mnc(["signal", "--token", tokens[key], json.dumps(payload(key))], env)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout[sent.stdout.index("[") :]) == expected()
    again = mnc(["signal", "--token", tokens["k1"], json.dumps(payload("k1"))], env)
    assert again.returncode == 2 and "run `c` has ended" in again.stderr
    bad = mnc(["signal", "--token", tokens["k1"], "c", "{}"], env)
    assert bad.returncode == 2 and "with --token give only the JSON payload" in bad.stderr


def test_mnc_show_lists_unread_signals(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    created = mnc(
        [
            "run",
            str(SOURCE),
            "-w",
            "thaw_each",
            "--id",
            "u",
            "--detach",
            "--input",
            json.dumps(OBJECTS),
        ],
        env,
    )
    assert created.returncode == 0, created.stderr
    sent = mnc(["signal", "u", "restored", "--key", "k3", json.dumps(payload("k3"))], env)
    assert sent.returncode == 0 and "does not wait for it now" in sent.stdout
    shown = mnc(["show", "u"], env).stdout
    assert "unread signals (1: no wait has taken them yet)" in shown
    assert "  restored key k3  sent " in shown


def test_a_callback_after_a_kill_between_the_tool_and_the_commit_is_taken(
    tmp_path: Path,
) -> None:
    """The tool got k2's token, then the process was killed (SIGKILL) before the call was
    committed. The callback with that token arrives before the run is resumed: it is kept,
    the call is made again with the same token, and the wait takes the kept signal."""
    env = mnc_env(tmp_path, THAW_KILL_AT="k2")
    objects = {"objects": [{"bucket": "b", "key": k} for k in ["k1", "k2"]]}
    killed = mnc(
        ["run", str(SOURCE), "-w", "thaw", "--id", "kill", "--input", json.dumps(objects)], env
    )
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    rows = ledger_rows(tmp_path / "ledger.jsonl")
    first = next(r["token"] for r in rows if r["key"] == "k2")
    with SQLiteStore(tmp_path / "journal.db") as store:
        calls = [e for e in store.read_journal("kill") if e.kind == "tool"]
        assert not any(e.data.get("args", {}).get("key") == "k2" for e in calls)
    sent = mnc(["signal", "--token", first, json.dumps(payload("k2")), "--detach"], env)
    assert sent.returncode == 0, sent.stderr
    assert "does not wait for it now" in sent.stdout
    resumed = mnc(["resume", "kill"], env)
    assert resumed.returncode == 3, resumed.stderr  # k2 done; k1 still waits
    rows = ledger_rows(tmp_path / "ledger.jsonl")
    assert [r["token"] for r in rows if r["key"] == "k2"] == [first, first]
    k1 = next(r["token"] for r in rows if r["key"] == "k1")
    done = mnc(["signal", "--token", k1, json.dumps(payload("k1"))], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[done.stdout.index("[") :]) == [
        "k1<-restored-k1/k1",
        "k2<-restored-k2/k2",
    ]


# --- a crash at every commit --------------------------------------------------------------


def drive(
    program: IRProgram, tmp: Path, at: int | None, when: str
) -> tuple[Any, SQLiteStore, int, int]:
    """Run `thaw` crashing at commit `at`; at every stop, answer by token every item the
    tool has asked about, newest first (some before the run reaches their wait). Returns
    the result, the store, the commits of the first execution and how many stops."""
    ledger = tmp / "ledger.jsonl"
    os.environ["MNC_EXAMPLE_LEDGER"] = str(ledger)
    store = SQLiteStore(tmp / "journal.db")
    config = RuntimeConfig(commit_ms=0, slow_call_ms=1e9)
    crashing = CrashingStore(store, at, when)
    answered: set[str] = set()
    outcome = None
    stops = 0
    for execution in range(20):
        try:
            outcome = crashing.start_or_resume(execution, program, "thaw", OBJECTS, "cr", config)
        except SimulatedCrash:
            _settle_threads()
            _break_lease(store, "cr")
        else:
            if outcome.status != "waiting":
                break
        stops += 1
        answer_by_token(store, ledger, answered)
    assert outcome is not None and outcome.status == "completed", outcome
    return outcome.result, store, crashing.commits, stops


def answer_by_token(store: Store, ledger: Path, answered: set[str]) -> None:
    for row in reversed(ledger_rows(ledger)):
        if row["key"] in answered:
            continue
        answered.add(row["key"])
        send_token(store, row["token"], payload(row["key"]), signal_id=f"cb-{row['key']}")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_every_commit_loses_and_crosses_no_callback(
    when: str, tmp_path: Path, program: IRProgram
) -> None:
    result, store, commits, _ = drive(program, tmp_path / "ref", None, "before")
    assert result == expected()
    store.close()
    assert commits >= 3
    for at in range(1, commits + 1):
        folder = tmp_path / f"{when}{at}"
        result, store, _, _ = drive(program, folder, at, when)
        assert result == expected(), (at, result)
        rows = ledger_rows(folder / "ledger.jsonl")
        # A call made again after the crash handed out the same token as the first time.
        per_key = {k: {r["token"] for r in rows if r["key"] == k} for k in KEYS}
        assert all(len(tokens) == 1 for tokens in per_key.values()), per_key
        taken = Counter(e.data["key"] for e in store.read_journal("cr") if e.kind == "signal")
        assert taken == Counter(KEYS), (at, taken)
        assert store.pending_signals("cr") == []
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "written", "after"])
def test_mnc_run_killed_at_every_commit_takes_every_callback_once(
    when: str, tmp_path: Path
) -> None:
    """As processes: `mnc run` exits like a SIGKILL at its N-th commit (every N until a
    run's first process ends on its own); the callbacks of every token the tool received
    are sent (newest first, by `mnc signal --token`, before and after each resume) and
    `mnc resume` goes on until the run ends."""
    objects = {"objects": [{"bucket": "b", "key": k} for k in ["k1", "k2"]]}
    want = ["k1<-restored-k1/k1", "k2<-restored-k2/k2"]
    for at in range(1, 50):
        folder = tmp_path / f"{when}{at}"
        folder.mkdir()
        env = mnc_env(folder)
        first = mnc(
            ["run", str(SOURCE), "-w", "thaw", "--id", "p", "--input", json.dumps(objects)],
            {**env, "MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when},
        )
        crashed = first.returncode == 137
        assert crashed or first.returncode == 3, (at, first.returncode, first.stderr)
        result = None
        for _ in range(10):
            for row in reversed(ledger_rows(folder / "ledger.jsonl")):
                sent = mnc(
                    [
                        "signal",
                        "--token",
                        row["token"],
                        json.dumps(payload(row["key"])),
                        "--id",
                        f"cb-{row['key']}",
                        "--detach",
                    ],
                    env,
                )
                assert sent.returncode == 0 or "is over" in sent.stderr, sent.stderr
            resumed = mnc(["resume", "p", "--json"], env)
            assert resumed.returncode in (0, 3), resumed.stderr
            if resumed.returncode == 0:
                result = json.loads(resumed.stdout)
                break
        assert result is not None and result["result"] == want, (at, result)
        rows = ledger_rows(folder / "ledger.jsonl")
        assert all(len({r["token"] for r in rows if r["key"] == k}) == 1 for k in ["k1", "k2"])
        with SQLiteStore(folder / "journal.db") as store:
            taken = Counter(e.data["key"] for e in store.read_journal("p") if e.kind == "signal")
            assert taken == Counter(["k1", "k2"]), (at, taken)
            assert store.pending_signals("p") == []
        if not crashed:
            assert at > 3
            return
    raise AssertionError("the run never got past its crashes")


def test_the_console_signals_with_a_key(tmp_path: Path, ledger: Path, program: IRProgram) -> None:
    from tests.test_ui import console, csrf, wait_for

    with SQLiteStore(tmp_path / "journal.db") as store:
        objects = {"objects": [{"bucket": "b", "key": "k1"}]}
        assert start_run(store, program, "thaw_each", objects, run_id="ui").status == "waiting"
        client = console(store, execute=True)
        assert 'name="key"' in client.get("/runs/ui").text
        headers = {"accept": "application/json"}
        form = {"run": "ui", "event": "restored", "payload": json.dumps(payload("k1"))}
        unkeyed = client.post(
            "/actions/signal", data={**form, "csrf": csrf(client)}, headers=headers
        )
        assert unkeyed.status_code == 400 and "is correlated" in unkeyed.json()["error"]
        keyed = {**form, "key": "k1", "csrf": csrf(client)}
        sent = client.post("/actions/signal", data=keyed, headers=headers)
        assert sent.json()["message"].startswith("signal `restored` with key `k1` sent")
        wait_for(store, "ui", "completed")
        record = store.get_run("ui")
        assert record is not None and record.result == ["k1<-restored-k1/k1"]
