"""The saga of issue 14 against a real receiver: `examples/saga` and its travel service.

The travel service (`examples/saga/travel.py`) runs on localhost in this process and
keeps what a receiver would: what is booked, and each action it performed (a request
whose `Idempotency-Key` it performed before is answered again, not performed again).

- crash at every commit (in process, before and after writing it) of a saga whose
  confirmation is refused: the run fails with `BookingFailed`, every undo and the
  notification are performed once, in reverse order, and nothing stays booked;
- kill -9 of `mnc run` right after the receiver performed each undo and the cleanup's
  notification, then `mnc resume`: the same;
- a cancelled run killed during its cleanup: each compensation and each cleanup call
  performed once;
- a bank that applies the charge 2 s after the client timed out: with `reconcile` and
  `settle`, the saga ends with nothing booked and one charge, refunded; without them (the
  same file with the two lines removed) the retry charges the trip a second time, which is
  the bug `reconcile` fixes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.stores.sqlite import SQLiteStore
from tests.test_crash import CrashingStore, SimulatedCrash, _break_lease, _settle_threads

ROOT = Path(__file__).resolve().parent.parent
SAGA = ROOT / "examples" / "saga"
sys.path.insert(0, str(SAGA))
from travel import TravelService, serve  # noqa: E402

MNC = [sys.executable, "-m", "mnlang.cli"]
UNDO = ["cancel_charge", "cancel_car", "cancel_flight"]
BOOK = ["reserve_flight", "reserve_car", "charge"]


@pytest.fixture
def travel(monkeypatch: pytest.MonkeyPatch) -> Iterator[TravelService]:
    service = TravelService()
    server = serve(service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MNC_TRAVEL_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def copy_tools(folder: Path) -> None:
    for name in ("tools.py", "travel.py"):
        (folder / name).write_text((SAGA / name).read_text("utf-8"))


def reset(service: TravelService) -> None:
    with service.lock:
        service.booked = {"flight": {}, "car": {}, "charge": {}}
        service.log.clear()
        service.requests.clear()
        service.answers.clear()


def actions(service: TravelService) -> list[str]:
    with service.lock:
        return [entry["action"] for entry in service.log]


def charge_requests(service: TravelService, trip: str) -> int:
    with service.lock:
        return sum(
            1 for r in service.requests if r["path"] == f"/charge/{trip}" and r["method"] == "POST"
        )


def nothing_booked(service: TravelService) -> bool:
    with service.lock:
        return not any(service.booked.values())


def assert_undone_once_in_order(service: TravelService) -> None:
    """Booked once each, undone once each in reverse order, then notified once."""
    assert actions(service) == [*BOOK, *UNDO, "notify"]
    assert nothing_booked(service)


_program: IRProgram | None = None


def saga_program() -> IRProgram:
    global _program
    if _program is None:
        ir, diagnostics = compile_file(SAGA / "saga.mn")
        assert ir is not None, diagnostics
        _program = ir
    return _program


def drive(tmp: Path, at: int | None, when: str) -> tuple[str, Any, int, list[str]]:
    """Run the saga, stopped at commit `at` once and resumed; status, error, commits and
    the answers of the charge's reconcile tool."""
    store = SQLiteStore(tmp / "journal.db")
    crashing = CrashingStore(store, at, when)
    config = RuntimeConfig(commit_every=4, commit_ms=0, slow_call_ms=1e9)
    given = {"trip": "t-1", "amount": "420.00"}
    outcome = None
    for execution in range(5):
        try:
            outcome = crashing.start_or_resume(
                execution, saga_program(), "saga", given, "saga-run", config
            )
            break
        except SimulatedCrash:
            _settle_threads()
            _break_lease(store, "saga-run")
    assert outcome is not None
    record = store.get_run("saga-run")
    assert record is not None
    answers = [e.data["answer"] for e in store.read_journal("saga-run") if e.kind == "reconciled"]
    store.close()
    return outcome.status, record.error, crashing.commits, answers


@pytest.mark.parametrize("when", ["before", pytest.param("after", marks=pytest.mark.slow)])
def test_crash_at_every_commit_undoes_each_step_once_in_order(
    travel: TravelService, tmp_path: Path, when: str
) -> None:
    travel.refuse_confirm = True
    status, error, commits, _ = drive(tmp_path / "ref", None, when)
    assert status == "failed" and error["kind"] == "BookingFailed", error
    assert error["cause"]["kind"] == "rejected"
    assert_undone_once_in_order(travel)
    assert commits >= 8
    reconciled: list[str] = []
    for at in range(1, commits + 1):
        reset(travel)
        status, error, _, answers = drive(tmp_path / f"{when}{at}", at, when)
        reconciled += answers
        assert (status, error["kind"]) == ("failed", "BookingFailed"), f"crash at {at}"
        assert_undone_once_in_order(travel)
        # A crash between the charge's intent and its result is reconciled, not re-sent.
        assert charge_requests(travel, "t-1") == 1, f"crash at {at}"
    # Stopped before the result's commit (the call was made): done, and not sent again.
    # Stopped right after the intent's commit (before the call): not done, and sent once.
    assert ("done" if when == "before" else "not_done") in reconciled


# --- real processes, killed with SIGKILL where the receiver says ---------------------------


def mnc(*args: str, env: dict[str, str], check: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*MNC, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if check:
        assert done.returncode in (0, 1), done.stderr
    return done


def start_killable(
    args: list[str], env: dict[str, str], service: TravelService, action: str
) -> subprocess.CompletedProcess[str]:
    """Run `mnc ARGS`, SIGKILLed the moment the receiver performs `action`."""
    process = subprocess.Popen(
        [*MNC, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def kill(performed: str) -> None:
        if performed == action:
            os.kill(process.pid, signal.SIGKILL)

    service.on_perform = kill
    try:
        out, err = process.communicate(timeout=120)
    finally:
        service.on_perform = None
    return subprocess.CompletedProcess(args, process.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("action", [*UNDO, "notify"])
def test_kill_9_during_the_undo_chain(travel: TravelService, tmp_path: Path, action: str) -> None:
    travel.refuse_confirm = True
    env = {**os.environ, "MNC_DB": str(tmp_path / "journal.db")}
    given = json.dumps({"trip": "t-1", "amount": "420.00"})
    args = ["run", str(SAGA / "saga.mn"), "--id", "saga-run", "--input", given]
    killed = start_killable(args, env, travel, action)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = mnc("resume", "saga-run", env=env)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "BookingFailed" in resumed.stdout + resumed.stderr
    assert_undone_once_in_order(travel)


CANCELLABLE = """
import tools {
  reserve_flight, cancel_flight, reserve_car, cancel_car, notify
}

event go

workflow trip(trip: str) -> str {
  flight = reserve_flight(trip)
  car = reserve_car(trip)
  wait go { timeout: 1d }
  return "{flight} {car}"
} on_failure as e {
  notify(trip, "trip {trip}: {e.kind}")
}
"""


@pytest.mark.slow
@pytest.mark.parametrize("action", ["cancel_car", "cancel_flight", "notify"])
def test_a_cancelled_run_killed_during_its_cleanup(
    travel: TravelService, tmp_path: Path, action: str
) -> None:
    """`mnc cancel` runs the compensations and then `on_failure`; killed in the middle of
    them, `mnc resume` finishes them, each call performed once."""
    (tmp_path / "tools.mn").write_text((SAGA / "saga.mn").read_text("utf-8").split("workflow")[0])
    copy_tools(tmp_path)
    (tmp_path / "trip.mn").write_text(CANCELLABLE)
    env = {**os.environ, "MNC_DB": str(tmp_path / "journal.db")}
    waiting = mnc(
        "run", str(tmp_path / "trip.mn"), "--id", "trip-run", "--input", '{"trip": "t-5"}', env=env
    )
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr
    killed = start_killable(["cancel", "trip-run"], env, travel, action)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    resumed = mnc("resume", "trip-run", env=env)
    assert resumed.returncode == 4, resumed.stdout + resumed.stderr
    assert actions(travel) == [
        "reserve_flight",
        "reserve_car",
        "cancel_car",
        "cancel_flight",
        "notify",
    ]
    with travel.lock:
        assert travel.log[-1]["text"] == "trip t-5: cancelled"
    assert nothing_booked(travel)


# --- a receiver that applies the request after the client gave up --------------------------


def run_late(
    travel: TravelService, tmp_path: Path, source: Path
) -> subprocess.CompletedProcess[str]:
    travel.late_ms = 3000  # applied 2 s after the client's 1 s timeout
    travel.refuse_confirm = True
    env = {**os.environ, "MNC_DB": str(tmp_path / "journal.db")}
    given = json.dumps({"trip": "t-7", "amount": "99.00"})
    done = mnc("run", str(source), "--id", "late-run", "--input", given, env=env)
    for _ in range(20):
        if done.returncode != 3:
            break
        time.sleep(0.5)  # a retry backoff over a second is a durable timer: resume after it
        done = mnc("resume", "late-run", env=env)
    return done


@pytest.mark.slow
def test_a_late_receiver_is_reconciled_and_the_saga_books_nothing(
    travel: TravelService, tmp_path: Path
) -> None:
    done = run_late(travel, tmp_path, SAGA / "saga.mn")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BookingFailed" in done.stdout
    assert actions(travel) == [*BOOK, *UNDO, "notify"]
    with travel.lock:
        charges = [
            r for r in travel.requests if r["path"] == "/charge/t-7" and r["method"] == "POST"
        ]
    assert len(charges) == 1, "asked before calling again: no second charge request"
    assert nothing_booked(travel)


@pytest.mark.slow
def test_without_reconcile_the_late_charge_stays_booked(
    travel: TravelService, tmp_path: Path
) -> None:
    """The same saga without `reconcile` and `settle`: the retry after the timeout reaches
    the bank while the first request is still being applied, and the trip is charged
    twice (a key deduplicates only what the receiver has finished)."""
    text = (SAGA / "saga.mn").read_text("utf-8")
    kept = [
        line for line in text.splitlines() if not line.strip().startswith(("reconcile:", "settle:"))
    ]
    source = tmp_path / "saga.mn"
    source.write_text("\n".join(kept) + "\n")
    copy_tools(tmp_path)
    done = run_late(travel, tmp_path, source)
    assert done.returncode == 1, done.stdout + done.stderr
    assert actions(travel).count("charge") == 2
