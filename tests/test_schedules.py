"""Schedules: cron and `every` times, registration in the journal (both stores), starts
idempotent by their scheduled time, catching up after downtime, and a worker restart."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnlang.api import load_program
from mnlang.checker import check
from mnlang.cron import CronError, check_cron, next_time
from mnlang.ir.model import IRProgram
from mnlang.runtime.schedules import ScheduleError, register, run_id_for, start_due
from mnlang.runtime.worker import ProgramCache, Worker
from mnlang.stores import open_store
from mnlang.stores.base import NewRun, NewSchedule, Store
from tests.human.harness import mnc, mnc_env, spawn


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def shown(seconds: float | None, zone: str = "UTC") -> str:
    assert seconds is not None
    return datetime.fromtimestamp(seconds, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %a")


# --- calendar times -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        ("0 9 * * 1", "Europe/Paris", "2024-05-01 12:00", "2024-05-06 09:00 Mon"),
        ("*/15 * * * *", "UTC", "2024-05-01 12:07", "2024-05-01 12:15 Wed"),
        ("0 3 * * *", "Europe/Berlin", "2024-05-01 03:00", "2024-05-02 03:00 Thu"),
        # Day of month or weekday, when both are restricted (Vixie cron).
        ("0 0 13 * fri", "UTC", "2024-09-01 00:00", "2024-09-06 00:00 Fri"),
        # ... and both, when either field starts with `*`: an odd day that is a Monday.
        ("0 0 */2 * mon", "UTC", "2024-05-01 00:00", "2024-05-13 00:00 Mon"),
        ("0 0 1-7 * */2", "UTC", "2024-05-01 00:00", "2024-05-02 00:00 Thu"),
        ("30 8 1 jan,jul *", "UTC", "2024-02-01 00:00", "2024-07-01 08:30 Mon"),
        ("0 12 * * 7", "UTC", "2024-05-01 00:00", "2024-05-05 12:00 Sun"),
        ("5-10/5 4 * * *", "UTC", "2024-05-01 04:06", "2024-05-01 04:10 Wed"),
        ("@daily", "UTC", "2024-05-01 04:06", "2024-05-02 00:00 Thu"),
        ("@hourly", "Asia/Kolkata", "2024-05-01 04:06", "2024-05-01 05:00 Wed"),
        ("@weekly", "UTC", "2024-05-01 04:06", "2024-05-05 00:00 Sun"),
        ("@monthly", "UTC", "2024-05-01 04:06", "2024-06-01 00:00 Sat"),
        ("@yearly", "UTC", "2024-05-01 04:06", "2025-01-01 00:00 Wed"),
        # cronsim's extensions: the month's last day, its last and its second Friday.
        ("0 0 L * *", "UTC", "2024-05-01 04:06", "2024-05-31 00:00 Fri"),
        ("0 9 * * 5L", "UTC", "2024-05-01 04:06", "2024-05-31 09:00 Fri"),
        ("0 9 * * 5#2", "UTC", "2024-05-01 04:06", "2024-05-10 09:00 Fri"),
        # 02:30 does not exist in Berlin on 31 March 2024: the job runs when the clock
        # has moved on, at 03:00, and is back at 02:30 the next day.
        ("30 2 * * *", "Europe/Berlin", "2024-03-30 12:00", "2024-03-31 03:00 Sun"),
        ("30 2 * * *", "Europe/Berlin", "2024-03-31 03:00", "2024-04-01 02:30 Mon"),
        # A job whose hour starts with `*` follows the clock: the skipped hour has no 02:00.
        ("0 * * * *", "Europe/Berlin", "2024-03-31 01:30", "2024-03-31 03:00 Sun"),
    ],
)
def test_cron_next_time(cron: str, zone: str, after: str, expected: str) -> None:
    found = next_time(every_ms=None, cron=cron, timezone=zone, after=at(after, zone))
    assert shown(found, zone) == expected


def times(cron: str, zone: str, start: str, end: str) -> list[float]:
    """Every time `cron` names from `start` (included) to `end` (wall clock in `zone`)."""
    found: list[float] = []
    after, last = at(start, zone) - 1, at(end, zone)
    while (after := next_time(every_ms=None, cron=cron, timezone=zone, after=after) or last) < last:
        found.append(after)
    return found


def test_a_repeated_hour_fires_once() -> None:
    """02:30 happens twice in Berlin on 27 October 2024; a job at a fixed time fires at
    the first (00:30 UTC), not again at the second."""
    [first] = times("30 2 * * *", "Europe/Berlin", "2024-10-27 00:00", "2024-10-28 00:00")
    assert datetime.fromtimestamp(first, UTC).strftime("%H:%M") == "00:30"


def test_a_repeated_hour_runs_again_for_a_job_that_follows_the_clock() -> None:
    """`*/15` keeps its pace through the hour that the clock repeats: 02:45 summer time,
    then 02:00 winter time, fifteen minutes later (not 01:50 to 03:05)."""
    found = times("*/15 * * * *", "Europe/Berlin", "2024-10-27 01:50", "2024-10-27 03:10")
    utc = [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for t in found]
    assert utc == ["00:00", "00:15", "00:30", "00:45", "01:00", "01:15", "01:30", "01:45", "02:00"]
    assert all(b - a == 900 for a, b in pairwise(found))


@settings(max_examples=60, deadline=None)
@given(
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney"]),
)
def test_a_daily_job_runs_once_every_day_through_clock_changes(
    hour: int, minute: int, zone: str
) -> None:
    """A job at a fixed time runs exactly once on each local day, including the days the
    clock skips or repeats its time (2024's changes in each zone)."""
    for start, end in [
        ("2024-03-08", "2024-04-08"),  # spring in the north, autumn in the south
        ("2024-09-30", "2024-11-05"),
    ]:
        found = times(f"{minute} {hour} * * *", zone, f"{start} 00:00", f"{end} 00:00")
        days = [datetime.fromtimestamp(t, ZoneInfo(zone)).date() for t in found]
        expected = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).days
        assert len(days) == len(set(days)) == expected


@settings(max_examples=40, deadline=None)
@given(
    step=st.sampled_from([1, 2, 5, 10, 15, 20, 30]),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney"]),
    start=st.sampled_from(["2024-03-10 00:00", "2024-03-31 00:00", "2024-04-07 00:00"]),
)
def test_a_job_that_follows_the_clock_keeps_its_pace_through_clock_changes(
    step: int, zone: str, start: str
) -> None:
    """`*/n * * * *` runs every n minutes of real time straight through a day with a
    clock change (these zones move by whole hours): none lost, none doubled."""
    day = datetime.fromisoformat(start)
    found = times(f"*/{step} * * * *", zone, start, str(day + timedelta(days=1)))
    assert len(found) > 1
    assert all(b - a == step * 60 for a, b in pairwise(found))


def _field(low: int, high: int) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    """A cron field's text with the values it names, built together."""

    def element(kind: str, a: int, b: int, step: int) -> tuple[str, frozenset[int]]:
        a, b = min(a, b), max(a, b)
        if kind == "*":
            return "*", frozenset(range(low, high + 1))
        if kind == "*/":
            return f"*/{step}", frozenset(range(low, high + 1, step))
        if kind == "n":
            return str(a), frozenset({a})
        if kind == "a-b":
            return f"{a}-{b}", frozenset(range(a, b + 1))
        return f"{a}-{b}/{step}", frozenset(range(a, b + 1, step))

    one = st.builds(
        element,
        st.sampled_from(["*", "*/", "n", "a-b", "a-b/"]),
        st.integers(low, high),
        st.integers(low, high),
        st.integers(1, high),
    )
    return st.lists(one, min_size=1, max_size=3).map(
        lambda parts: (",".join(t for t, _ in parts), frozenset().union(*(v for _, v in parts)))
    )


@settings(max_examples=300, deadline=None)
@given(
    minute=_field(0, 59),
    hour=_field(0, 23),
    day=_field(1, 31),
    month=_field(1, 12),
    weekday=_field(0, 7),
    after=st.integers(at("2020-01-01 00:00"), at("2030-01-01 00:00")),
)
def test_cron_agrees_with_a_plain_reading_of_the_fields(
    minute: tuple[str, frozenset[int]],
    hour: tuple[str, frozenset[int]],
    day: tuple[str, frozenset[int]],
    month: tuple[str, frozenset[int]],
    weekday: tuple[str, frozenset[int]],
    after: int,
) -> None:
    """The next time (UTC) is the first minute after `after` whose fields match, read
    the Vixie way: the day fields are ANDed when either starts with `*`, else ORed."""
    cron = " ".join(text for text, _ in (minute, hour, day, month, weekday))
    weekdays = {w % 7 for w in weekday[1]}
    both = day[0].startswith("*") or weekday[0].startswith("*")

    def day_matches(d: datetime) -> bool:
        in_month, in_week = d.day in day[1], (d.weekday() + 1) % 7 in weekdays
        return (in_month and in_week) if both else (in_month or in_week)

    try:
        found = next_time(every_ms=None, cron=cron, timezone=None, after=after)
    except CronError as e:
        # Only a day that no month of the field has (`31 2`) is refused.
        assert "never run" in str(e) and min(day[1]) > 29
        return
    d = datetime.fromtimestamp(after, UTC).replace(hour=0, minute=0, second=0)
    expected = None
    for _ in range(366 * 5):
        if d.month in month[1] and day_matches(d):
            later = [
                t
                for h in sorted(hour[1])
                for m in sorted(minute[1])
                if (t := d.replace(hour=h, minute=m).timestamp()) > after
            ]
            if later:
                expected = later[0]
                break
        d += timedelta(days=1)
    if expected is not None:
        assert found == expected, cron


def test_every_counts_from_the_epoch() -> None:
    hour = 3_600_000
    assert next_time(every_ms=hour, cron=None, timezone=None, after=at("2024-05-01 12:07")) == at(
        "2024-05-01 13:00"
    )
    assert next_time(every_ms=hour, cron=None, timezone=None, after=at("2024-05-01 13:00")) == at(
        "2024-05-01 14:00"
    )


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 9 * *", "a cron expression has five fields (minute hour day month weekday), not 4"),
        ("60 * * * *", "the minute field `60` is not a valid minute (0-59)"),
        ("* * * * */0", "the weekday field `*/0` is not a valid weekday (0-7 or sun-sat)"),
        ("* 5-2 * * *", "the hour field `5-2` is not a valid hour (0-23)"),
        ("* * * foo *", "the month field `foo` is not a valid month (1-12 or jan-dec)"),
        ("@reboot", "`@reboot` is not one of @yearly, @annually, @monthly, @weekly, @daily"),
        ("0 0 30 2 *", "the expression names no date that exists (it would never run)"),
    ],
)
def test_bad_cron_expressions(cron: str, message: str) -> None:
    with pytest.raises(CronError) as e:
        check_cron(cron)
    assert str(e.value).startswith(message)


# --- the store ---------------------------------------------------------------------------


def schedule(next_at: float, spec: dict[str, object] | None = None) -> NewSchedule:
    return NewSchedule("a.daily", "report", "h1", "a.mn", spec or {"every_ms": 1000}, next_at, "a")


def test_registration_keeps_its_place_unless_the_spec_changes(store: Store) -> None:
    first = store.put_schedule(schedule(100.0))
    assert (first.name, first.next_at, first.last_at) == ("a.daily", 100.0, None)
    again = store.put_schedule(schedule(900.0))
    assert again.next_at == 100.0
    changed = store.put_schedule(schedule(500.0, {"every_ms": 2000}))
    assert changed.next_at == 500.0 and changed.spec == {"every_ms": 2000}
    assert [s.name for s in store.list_schedules()] == ["a.daily"]
    assert store.delete_schedule("a.daily") and not store.delete_schedule("a.daily")
    assert store.list_schedules() == []


def test_a_scheduled_time_starts_once(store: Store) -> None:
    store.put_schedule(schedule(100.0))
    run = NewRun(run_id="a.daily@100", workflow="report", args={})
    assert store.fire_schedule("a.daily", run, expected=100.0, scheduled_at=100.0, next_at=101.0)
    assert not store.fire_schedule(
        "a.daily", run, expected=100.0, scheduled_at=100.0, next_at=101.0
    )
    [record] = store.list_schedules()
    assert (record.next_at, record.last_at, record.last_run_id) == (101.0, 100.0, "a.daily@100")
    assert [r.run_id for r in store.list_runs()] == ["a.daily@100"]
    assert store.runnable_runs() == ["a.daily@100"]


# --- registering and starting ---------------------------------------------------------------

SOURCE = """\
workflow report(team: str, days: int = 7) -> str {
  return "report for {team} over {days} days"
}

schedule often {
  run: report("ops")
  every: 1s
}

schedule weekly {
  run: report("platform", 28)
  cron: "0 9 * * mon"
  timezone: "Europe/Paris"
}
"""


def program_from(tmp_path: Path, text: str = SOURCE) -> IRProgram:
    path = tmp_path / "reports.mn"
    path.write_text(text, "utf-8")
    return load_program(path)


def test_register_and_start_due(store: Store, tmp_path: Path) -> None:
    program = program_from(tmp_path)
    before = store.now()  # the first time comes after registering: read the clock around it
    registered = {r.name: r for r in register(store, program)}
    assert set(registered) == {"reports.often", "reports.weekly"}
    assert before < registered["reports.often"].next_at <= store.now() + 1
    assert (
        datetime.fromtimestamp(
            registered["reports.weekly"].next_at, ZoneInfo("Europe/Paris")
        ).strftime("%a %H:%M")
        == "Mon 09:00"
    )
    due = registered["reports.often"].next_at
    assert start_due(store, ProgramCache(store), now=due - 0.5) == []
    [started] = start_due(store, ProgramCache(store), now=due)
    assert started.run_id == run_id_for("reports.often", due) and started.skipped == 0
    assert start_due(store, ProgramCache(store), now=due) == []
    run = store.get_run(started.run_id)
    assert run is not None and run.workflow == "report" and run.status == "running"
    assert run.args == {"team": "ops", "days": 7}
    assert run.meta["schedule"] == "reports.often" and run.meta["scheduled_at"] == due


def test_a_worker_that_was_down_starts_the_latest_time_once(store: Store, tmp_path: Path) -> None:
    register(store, program_from(tmp_path))
    [often] = [s for s in store.list_schedules() if s.name == "reports.often"]
    [started] = start_due(store, ProgramCache(store), now=often.next_at + 10.5)
    assert started.scheduled_at == often.next_at + 10 and started.skipped == 10
    record = store.get_run(started.run_id)
    assert record is not None and record.meta["skipped_times"] == 10


def test_a_schedule_removed_from_its_source_is_forgotten(store: Store, tmp_path: Path) -> None:
    register(store, program_from(tmp_path))
    shorter = SOURCE.split("schedule weekly")[0]
    register(store, program_from(tmp_path, shorter))
    assert [s.name for s in store.list_schedules()] == ["reports.often"]


def test_a_schedule_that_never_fires_is_refused(tmp_path: Path) -> None:
    """The checker refuses such a `cron`; an IR file written by other means is refused here."""
    program = program_from(tmp_path)
    weekly = msgspec.structs.replace(program.schedules["weekly"], cron="0 9 31 2 *")
    broken = msgspec.structs.replace(program, schedules={**program.schedules, "weekly": weekly})
    with open_store(tmp_path / "j.db") as store, pytest.raises(ScheduleError, match="never run"):
        register(store, broken)


def test_schedule_across_a_worker_restart(tmp_path: Path) -> None:
    """Two workers one after the other on one journal (the first stopped mid-way): every
    scheduled time starts one run, and the second worker starts none the first did."""
    program = program_from(tmp_path)
    seen: dict[str, list[str]] = {}
    with open_store(tmp_path / "journal.db") as store:
        for name in ("first", "second"):
            register(store, program)  # a restarting worker registers its files again
            logged: list[str] = []
            worker = Worker(
                store,
                concurrency=2,
                idle_wait=0.1,
                log=lambda line, _problem, logged=logged: logged.append(line),
            )
            threading.Timer(2.6, worker.stop).start()
            worker.run()
            seen[name] = [line.split("started run ")[1] for line in logged if "started run" in line]
        runs = store.list_runs(workflow="report", limit=1000)
    assert len(seen["first"]) >= 2 and len(seen["second"]) >= 2
    assert not set(seen["first"]) & set(seen["second"])
    assert sorted(r.run_id for r in runs) == sorted(seen["first"] + seen["second"])
    times = sorted(r.meta["scheduled_at"] for r in runs)
    assert len(set(times)) == len(times)
    assert all(r.status == "completed" for r in runs)


@pytest.mark.slow
def test_schedule_across_a_killed_worker_process(tmp_path: Path) -> None:
    """`mnc worker FILE` killed with SIGKILL, then started again: no scheduled time is
    started twice, and the schedule goes on."""
    source = tmp_path / "reports.mn"
    source.write_text(SOURCE, "utf-8")
    env = mnc_env(tmp_path)
    args = ["worker", str(source), "--lease-ttl", "2"]
    first = spawn(args, env, tmp_path / "first.log")
    time.sleep(4)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = spawn(args, env, tmp_path / "second.log")
    time.sleep(4)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    listed = mnc(["runs", "--workflow", "report", "--json", "--limit", "1000"], env)
    runs = json.loads(listed.stdout)
    times = [r["meta"]["scheduled_at"] for r in runs]
    assert len(runs) >= 4 and len(set(times)) == len(times)
    assert all(r["status"] == "completed" for r in runs)
    started = [
        line.split("started run ")[1]
        for log in ("first.log", "second.log")
        for line in (tmp_path / log).read_text().splitlines()
        if "started run" in line
    ]
    assert len(started) == len(set(started)) == len(runs)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 9 * * 8", "`cron`: the weekday field `8` is not a valid weekday"),
        ("0 0 1 1 * 2024", "`cron`: a cron expression has five fields"),
        ("0 0 31 2 *", "`cron`: the expression names no date that exists (it would never run)"),
    ],
)
def test_the_checker_reads_cron_like_the_worker(cron: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "s.mn"
    path.write_text(SOURCE.replace('"0 9 * * mon"', f'"{cron}"'), "utf-8")
    [diagnostic] = check(path).diagnostics
    assert diagnostic.code == "E212" and diagnostic.message.startswith(message)
