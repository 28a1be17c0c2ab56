"""Events, timers and retry delays: the mailbox (a signal sent before the wait, a repeated
signal id, payloads checked on the way in), `wait 1s`, `wait event { timeout }`, durable
retry timers, and `mnc signal`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnlang import api
from mnlang.runtime.signals import SignalError, send
from mnlang.stores.base import RunNotFound
from tests.human.harness import Journal, ir_file, journal, mnc, mnc_env

__all__ = ["journal"]


def test_a_signal_sent_before_the_wait_is_kept(journal: Journal) -> None:
    assert journal.start("waiter", {"tag": "w"}, "w").status == "waiting"  # on `wait 1s`
    delivered = send(journal.store, "w", "go", {"n": 5}, signal_id="go-1")
    assert delivered.accepted and not delivered.waiting
    assert journal.resume("w").status == "waiting"  # the timer is not due yet
    journal.fall_due("w")
    outcome = journal.resume("w")
    assert outcome.status == "completed" and outcome.result == 5
    assert journal.texts("w") == ["woke", "got 5"]
    assert journal.store.pending_signals("w") == []


def test_a_repeated_signal_id_is_ignored(journal: Journal) -> None:
    journal.start("waiter", {"tag": "d"}, "d")
    journal.fall_due("d")
    assert journal.resume("d").status == "waiting"
    assert journal.store.get_run("d").waiting_for == ["go"]  # type: ignore[union-attr]
    first = send(journal.store, "d", "go", {"n": 1}, signal_id="webhook-7")
    again = send(journal.store, "d", "go", {"n": 2}, signal_id="webhook-7")
    assert first.accepted and first.waiting and not again.accepted
    [kept] = journal.store.pending_signals("d")
    assert kept.payload == {"n": 1}
    assert journal.resume("d").result == 1


def test_an_event_wait_times_out(journal: Journal) -> None:
    journal.start("waiter", {"tag": "t"}, "t")
    journal.fall_due("t")
    assert journal.resume("t").status == "waiting"
    [timer] = journal.store.run_timers("t")
    assert timer.timer_id.startswith("event:")
    journal.fall_due("t")
    outcome = journal.resume("t")
    assert outcome.status == "completed" and outcome.result == -1
    assert journal.texts("t") == ["woke", "timed out"]
    assert "timed_out" in journal.kinds("t")


def test_payloads_are_checked_before_they_are_stored(journal: Journal) -> None:
    journal.start("waiter", {"tag": "p"}, "p")
    journal.start("poked", {"tag": "q"}, "q")
    store = journal.store
    cases = [
        ("p", "go", None, "event `go` carries a Go"),
        ("p", "go", {"n": "five"}, "the payload of `go` is not a Go: `payload.n`: "),
        ("p", "go", {"n": 1, "extra": True}, "the payload of `go` is not a Go"),
        ("q", "poke", {"n": 1}, "event `poke` carries no payload"),
        ("p", "gone", None, "the run's program declares no event `gone`"),
    ]
    for run_id, event, payload, message in cases:
        with pytest.raises(SignalError) as refused:
            send(store, run_id, event, payload)
        assert refused.value.message.startswith(message), refused.value.message
    assert store.pending_signals("p") == [] and store.pending_signals("q") == []
    with pytest.raises(RunNotFound):
        send(store, "nobody", "go", {"n": 1})


def test_a_signal_to_an_ended_run_is_refused(journal: Journal) -> None:
    journal.start("poked", {"tag": "e"}, "e")
    send(journal.store, "e", "poke")
    assert journal.resume("e").status == "completed"
    with pytest.raises(SignalError, match=r"run `e` has ended \(completed\)"):
        send(journal.store, "e", "poke")


def test_signal_goes_on_with_the_waiting_run(journal: Journal) -> None:
    journal.start("poked", {"tag": "here"}, "here")
    outcome = api.signal("here", "poke", db=journal.db)
    assert outcome.delivered.waiting
    assert [r.status for r in outcome.runs] == ["completed"]
    assert journal.texts("here") == ["poked"]


def test_a_long_retry_delay_is_a_durable_timer(journal: Journal) -> None:
    """`flaky` fails once with a 1.5 s backoff: the run waits on a timer, holding nothing."""
    outcome = journal.start("retrying", {"tag": "r"}, "r")
    assert outcome.status == "waiting"
    [timer] = journal.store.run_timers("r")
    assert timer.timer_id == "retry:n"
    assert journal.resume("r").status == "waiting"
    journal.fall_due("r")
    outcome = journal.resume("r")
    assert outcome.status == "completed" and outcome.result == 2
    assert journal.texts("r") == ["flaky gave 2"]
    assert journal.store.run_timers("r") == []


def test_mnc_signal(tmp_path: Path) -> None:
    # `waiter` starts with `wait 1s`: no short waits here, so that it is left waiting on
    # its timer when the signal comes (tests/test_short_waits.py has them).
    env = mnc_env(tmp_path, MNC_SHORT_WAIT_S="0")
    ir = str(ir_file(tmp_path))
    assert (
        mnc(["run", ir, "-w", "poked", "--id", "s", "--input", '{"tag": "s"}'], env).returncode == 3
    )
    early = mnc(["run", ir, "-w", "waiter", "--id", "w", "--input", '{"tag": "w"}'], env)
    assert early.returncode == 3
    kept = mnc(["signal", "w", "go", '{"n": 4}', "--id", "g1"], env)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.splitlines() == [
        "delivered: go to run w",
        "the run does not wait for it now; it finds it when it does",
    ]
    repeated = mnc(["signal", "w", "go", '{"n": 4}', "--id", "g1", "--json"], env)
    assert json.loads(repeated.stdout)["signal"]["accepted"] is False
    bad = mnc(["signal", "w", "go", "{n: 4}"], env)
    assert bad.returncode == 2 and "the payload is not JSON" in bad.stderr
    woken = mnc(["signal", "s", "poke"], env)
    assert woken.returncode == 0, woken.stderr
    assert woken.stdout.splitlines()[:2] == ["delivered: poke to run s", "completed: run s (poked)"]
