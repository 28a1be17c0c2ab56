"""The outbox row rides in the commit that causes it: `mnc run` and `mnc resume` killed
at each commit (`MNC_CRASH_AT_COMMIT`, every moment) on SQLite and PostgreSQL leave a
`checkpoint.opened` message exactly when the checkpoint is stored and a `run.ended`
message exactly when the run has ended; finished afterwards, the run has one of each."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang import api
from mnlang.outbox import CHECKPOINT_OPENED, RUN_ENDED
from mnlang.stores.base import TERMINAL_STATUSES, Store
from mnlang.stores.crashpoints import CRASH_EXIT_STATUS
from tests.crash.journals import Journals, journals_of
from tests.pg import STORES

NOTIFY = Path(__file__).parent / "webhooks" / "notify.mn"
# `before` a commit is `after` the one before it, and `written` loses the batch as
# `before` does; SQLite has no `during` (see `mnlang.stores.crashpoints`).
MOMENTS = {"sqlite": ("written", "after"), "postgres": ("during", "after")}


@pytest.fixture(params=STORES)
def journals(request: pytest.FixtureRequest) -> Iterator[Journals]:
    yield from journals_of(request)


def mnc(url: str, *args: str, crash: dict[str, str] | None = None) -> int:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MNC_")}
    env |= {"MNC_DB": url, **(crash or {})}
    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode in (0, 3, CRASH_EXIT_STATUS), done.stderr
    return done.returncode


def check_consistent(store: Store) -> Counter[str]:
    """Each message exists exactly when its cause does; the messages by type."""
    events = store.unrouted_outbox()
    messages = Counter(e.type for e in events)
    record = store.get_run("r1")
    opened = [e for e in events if e.type == CHECKPOINT_OPENED]
    for e in opened:  # never invented: its checkpoint is stored
        assert isinstance(e.data, dict)
        assert store.get_checkpoint("r1", str(e.data["checkpoint_id"])) is not None
    if record is not None and store.open_checkpoints("r1"):
        assert messages[CHECKPOINT_OPENED] == 1  # never lost
    assert messages[CHECKPOINT_OPENED] <= 1
    ended = record is not None and record.status in TERMINAL_STATUSES
    assert messages[RUN_ENDED] == int(ended)
    return messages


@pytest.mark.slow
def test_crash_at_every_commit_around_the_outbox_rows(journals: Journals, tmp_path: Path) -> None:
    tried = 0
    for process in (0, 1):  # crash `mnc run`, then `mnc resume`
        for when in MOMENTS[journals.kind]:
            at = 0
            while True:
                at += 1
                folder = tmp_path / f"{process}-{when}-{at}"
                folder.mkdir()
                url = journals.url(folder)
                crash = {"MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when}
                crashed = run_crashing(journals, folder, crash if process == 0 else None)
                api.approve("r1", "review", by="ann", resume=False, db=url)
                crashed |= run_crashing(journals, folder, crash if process == 1 else None)
                with journals.open(folder) as store:
                    assert check_consistent(store) == {CHECKPOINT_OPENED: 1, RUN_ENDED: 1}
                    record = store.get_run("r1")
                    assert record is not None and record.result == "r1 decided by ann"
                journals.drop(folder)
                tried += 1
                if not crashed:
                    break
    assert tried > 6


def run_crashing(journals: Journals, folder: Path, crash: dict[str, str] | None) -> bool:
    """The next step (start the run, or resume it after the decision): as a `mnc` process
    with the crash plan, else in this process; after a crash, check the journal as the
    crash left it and resume it here until the run waits or ends."""
    url = journals.url(folder)
    with journals.open(folder) as store:
        exists = store.get_run("r1") is not None
    if crash is None:
        resume(url) if exists else api.start_run(NOTIFY, {"id": "r1"}, run_id="r1", db=url)
        return False
    args = (
        ["resume", "r1"]
        if exists
        else ["run", str(NOTIFY), "--id", "r1", "--input", '{"id": "r1"}']
    )
    if mnc(url, *args, crash=crash) != CRASH_EXIT_STATUS:
        return False
    journals.settle()
    with journals.open(folder) as store:
        check_consistent(store)
        exists = store.get_run("r1") is not None
    journals.expire_leases(folder)
    resume(url) if exists else api.start_run(NOTIFY, {"id": "r1"}, run_id="r1", db=url)
    return True


def resume(url: str) -> None:
    api.resume_run("r1", db=url)
