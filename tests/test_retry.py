"""Retrying a failed run in place (docs/runtime.md, "Retrying a failed run").

A run that failed kept its state at the failed step when its unwinding did nothing
outside the run; `retry` resumes it there once the cause is fixed: the failed step runs
again, effects whose result was committed are not called again (the receiving tool's
own file says so), the run keeps its id and journals who retried it. A run whose
unwinding ran effects (`finally`, compensations, `on_failure`) is refused with the reason.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mnlang.runtime.recovery import RetryRefused, retry
from tests.test_runtime import CONFIG, RECORDER, Program

PAY = """
effect charge(order: str, amount: int) -> str {
  impl: "tools:charge"
  key: "charge:{order}"
}

effect receipt(order: str) -> str {
  impl: "tools:receipt"
  key: "receipt:{order}"
}

tool lookup(order: str) -> int {
  impl: "tools:lookup"
}

workflow pay(order: str) -> str {
  c = charge(order, 10)
  total = 0
  try {
    total = lookup(order)
  } finally {
    log "looked up {order}"
  }
  r = receipt(order)
  return "{c} {r} {total}"
}
"""

PAY_TOOLS = """
def charge(order, amount):
    record("charge", order=order)
    return f"charged-{order}"

def receipt(order):
    record("receipt", order=order)
    return f"receipt-{order}"

def lookup(order):
    record("lookup", order=order)
    if (HERE / "broken").exists():
        raise RuntimeError("the price service is down")
    return 42
"""


@pytest.fixture
def prog(tmp_path: Path) -> Any:
    def make(source: str, tools: str = "") -> Program:
        folder = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        return Program(folder, source, RECORDER + textwrap.dedent(tools))

    return make


def names(p: Program) -> list[str]:
    return [c["name"] for c in p.calls()]


def test_a_failed_run_is_retried_from_its_failed_step(prog: Any) -> None:
    p = prog(PAY, PAY_TOOLS)
    (p.folder / "broken").touch()
    out = p.run({"order": "o1"}, run_id="r1")
    assert out.status == "failed", out
    assert names(p) == ["charge", "lookup"]
    record = p.store.get_run("r1")
    assert record is not None and record.meta["failure_point"]["kind"] == "tool_error"

    (p.folder / "broken").unlink()  # the cause is fixed
    retried = retry(p.store, "r1", by="ops@example.com")
    assert retried.retries == 1
    out = p.resume("r1")
    assert out.status == "completed", out
    assert out.result == "charged-o1 receipt-o1 42"
    # the receiving tools saw each effect once; the failed step ran again
    assert names(p) == ["charge", "lookup", "lookup", "receipt"]
    kinds = [e.kind for e in p.events("r1")]
    assert kinds.count("failed") == 1 and kinds.count("completed") == 1
    (event,) = p.events("r1", "retried")
    assert event.data["by"] == "ops@example.com"
    assert event.data["error"]["kind"] == "tool_error"
    record = p.store.get_run("r1")
    assert record is not None and record.error is None and record.finished_at is not None
    assert record.meta["retries"] == 1 and "failure_point" not in record.meta
    assert p.store.load_state("r1").cursors == {}


def test_a_run_that_is_not_failed_is_refused(prog: Any) -> None:
    p = prog(PAY, PAY_TOOLS)
    p.run({"order": "o1"}, run_id="r1")
    with pytest.raises(RetryRefused) as e:
        retry(p.store, "r1", by="ops")
    assert e.value.reason == "not_failed"
    assert "completed" in e.value.message


FINALLY_EFFECT = """
effect charge(order: str) -> str {
  impl: "tools:charge"
  key: "charge:{order}"
}

effect alert(order: str) -> bool {
  impl: "tools:alert"
  key: "alert:{order}"
}

tool lookup(order: str) -> int {
  impl: "tools:lookup"
}

workflow pay(order: str) -> str {
  c = charge(order)
  try {
    n = lookup(order)
  } finally {
    alerted = alert(order)
    log "alerted: {alerted}"
  }
  return "{c} {n}"
}
"""

FINALLY_TOOLS = """
def charge(order):
    record("charge")
    return "ok"

def alert(order):
    record("alert")
    return True

def lookup(order):
    record("lookup")
    raise RuntimeError("down")
"""


def test_a_run_whose_finally_ran_an_effect_is_refused_with_the_reason(prog: Any) -> None:
    p = prog(FINALLY_EFFECT, FINALLY_TOOLS)
    assert p.run({"order": "o1"}, run_id="r1").status == "failed"
    assert names(p) == ["charge", "lookup", "alert"]
    with pytest.raises(RetryRefused) as e:
        retry(p.store, "r1", by="ops")
    assert e.value.reason == "not_retryable"
    assert "alert:o1" in e.value.message, e.value.message
    record = p.store.get_run("r1")
    assert record is not None and record.status == "failed"
    assert not p.events("r1", "retried")
    assert names(p) == ["charge", "lookup", "alert"]


COMPENSATED = """
effect book(item: str) -> str {
  impl: "tools:book"
  key: "book:{item}"
  compensate: unbook(item)
}

effect unbook(item: str) -> bool {
  impl: "tools:unbook"
  key: "unbook:{item}"
}

tool lookup(item: str) -> int {
  impl: "tools:lookup"
}

workflow trip(item: str) -> str {
  b = book(item)
  n = lookup(item)
  return "{b} {n}"
}
"""

COMPENSATED_TOOLS = """
def book(item):
    record("book")
    return "booked"

def unbook(item):
    record("unbook")
    return True

def lookup(item):
    raise RuntimeError("down")
"""


def test_a_compensated_run_is_refused(prog: Any) -> None:
    p = prog(COMPENSATED, COMPENSATED_TOOLS)
    assert p.run({"item": "x"}, run_id="r1").status == "failed"
    assert names(p) == ["book", "unbook"]
    with pytest.raises(RetryRefused) as e:
        retry(p.store, "r1", by="ops")
    assert "unbook:x" in e.value.message, e.value.message


def test_a_caught_failure_leaves_the_run_as_before(prog: Any) -> None:
    source = PAY.replace(
        '  } finally {\n    log "looked up {order}"\n  }',
        "  } catch tool_error {\n    total = 7\n  }",
    )
    p = prog(source, PAY_TOOLS)
    (p.folder / "broken").touch()
    out = p.run({"order": "o1"}, run_id="r1")
    assert out.status == "completed" and out.result == "charged-o1 receipt-o1 7", out
    record = p.store.get_run("r1")
    assert record is not None and "failure_point" not in record.meta


def test_it_fails_again_and_is_retried_again(prog: Any) -> None:
    p = prog(PAY, PAY_TOOLS)
    (p.folder / "broken").touch()
    assert p.run({"order": "o1"}, run_id="r1").status == "failed"
    retry(p.store, "r1", by="a")
    assert p.resume("r1").status == "failed"
    (p.folder / "broken").unlink()
    assert retry(p.store, "r1", by="b").retries == 2
    assert p.resume("r1").status == "completed"
    assert names(p) == ["charge", "lookup", "lookup", "lookup", "receipt"]
    assert [e.data["by"] for e in p.events("r1", "retried")] == ["a", "b"]


def test_console_retry_and_fork_buttons_for_operators(prog: Any, tmp_path: Path) -> None:
    import re

    from starlette.testclient import TestClient

    from mnlang.ui.app import create_app
    from mnlang.ui.auth import Authenticator
    from mnlang.ui.tokens import TokenFile

    p = prog(PAY, PAY_TOOLS)
    (p.folder / "broken").touch()
    assert p.run({"order": "o1"}, run_id="r1").status == "failed"
    tokens = TokenFile(tmp_path / "tokens.json")
    operator, viewer = tokens.add("olga", "operator"), tokens.add("vic", "viewer")
    client = TestClient(
        create_app(
            p.store, Authenticator(admin_token=None, tokens=tokens, loopback=True), execute=False
        ),
        base_url="http://127.0.0.1",
    )

    def page(token: str) -> tuple[str, str]:
        text = client.get("/runs/r1", headers={"authorization": f"Bearer {token}"}).text
        found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', text)
        assert found is not None, text
        return text, found.group(1)

    seen, _ = page(viewer)
    assert "/actions/retry" not in seen and "/actions/fork" not in seen
    seen, token = page(operator)
    assert "/actions/retry" in seen and "/actions/fork" in seen

    def act(name: str, bearer: str, csrf: str, **fields: str) -> Any:
        return client.post(
            f"/actions/{name}",
            data={"run": "r1", "csrf": csrf, **fields},
            headers={"accept": "application/json", "authorization": f"Bearer {bearer}"},
        )

    _, viewer_csrf = page(viewer)
    assert act("retry", viewer, viewer_csrf).status_code == 403
    (p.folder / "broken").unlink()
    answer = act("retry", operator, token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"].startswith("retried from")
    (event,) = p.events("r1", "retried")
    assert event.data["by"] == "olga"
    assert p.resume("r1").status == "completed"  # --no-execute: as a worker would
    assert act("retry", operator, token).status_code == 409

    forked = act("fork", operator, token, **{"from": "99999"})
    assert forked.status_code == 400
    line = str(PAY.splitlines().index("  r = receipt(order)") + 1)
    forked = act("fork", operator, token, **{"from": line})
    assert forked.status_code == 200, forked.text
    assert "completed" in forked.json()["message"]
    assert names(p) == ["charge", "lookup", "lookup", "receipt"]  # receipt from the ledger


class CrashingRetryStore:
    """A store that stops the process's work at its N-th write (a commit or the retry's
    reopening), before or after writing it, as `tests/test_crash.py`'s `CrashingStore`."""

    def __init__(self, inner: Any, at: int, when: str) -> None:
        self.inner = inner
        self.at = at
        self.when = when
        self.writes = 0

    def _write(self, write: Any, *args: Any) -> Any:
        from tests.test_crash import SimulatedCrash

        self.writes += 1
        if self.writes == self.at and self.when == "before":
            raise SimulatedCrash()
        result = write(*args)
        if self.writes == self.at and self.when == "after":
            raise SimulatedCrash()
        return result

    def commit(self, batch: Any) -> Any:
        return self._write(self.inner.commit, batch)

    def reopen_failed(self, *args: Any) -> Any:
        return self._write(self.inner.reopen_failed, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def retry_until_done(p: Program, store: Any) -> tuple[Any, int]:
    """Retry r1 and resume it as an operator would after each crash: retry again while it
    is failed, resume while it is running."""
    from tests.test_crash import SimulatedCrash, _break_lease, _settle_threads

    crashes = 0
    for _ in range(10):
        try:
            record = p.store.get_run("r1")
            assert record is not None
            if record.status == "failed":
                retry(store, "r1", by="ops")
            from mnlang.runtime.run import resume_run

            return resume_run(store, "r1", program=p.ir, config=CONFIG), crashes
        except SimulatedCrash:
            crashes += 1
            _settle_threads()
            _break_lease(p.store, "r1")
    raise AssertionError("the retry never ended")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_every_write_of_a_retry_loses_and_duplicates_nothing(
    prog: Any, when: str
) -> None:
    from tests.test_crash import committed_results, pending_intents, result_events

    reference = prog(PAY, PAY_TOOLS)
    (reference.folder / "broken").touch()
    reference.run({"order": "o1"}, run_id="r1")
    (reference.folder / "broken").unlink()
    counting = CrashingRetryStore(reference.store, 0, when)
    out, _ = retry_until_done(reference, counting)
    assert out.status == "completed"
    writes = counting.writes
    assert writes >= 3  # the reopening, the receipt's intent and result, the end

    for at in range(1, writes + 1):
        p = prog(PAY, PAY_TOOLS)
        (p.folder / "broken").touch()
        p.run({"order": "o1"}, run_id="r1")
        (p.folder / "broken").unlink()
        before = len(p.calls())
        store = CrashingRetryStore(p.store, at, when)
        out, crashes = retry_until_done(p, store)
        assert not pending_intents(p.store)
        assert crashes == 1, at
        assert (out.status, out.result) == ("completed", "charged-o1 receipt-o1 42"), at
        # one `retried` event however the crash fell; every effect committed once
        assert len(p.events("r1", "retried")) == 1, at
        assert set(committed_results(p.store)) == {"charge:o1", "receipt:o1"}
        assert all(n == 1 for n in result_events(p.store).values()), at
        # what the receiving tools saw: the charge never again, the receipt once, plus
        # once more only when the crash fell between its intent and its result
        after = [c["name"] for c in p.calls()[before:]]
        assert "charge" not in after, at
        assert after.count("receipt") in ((1, 2) if when == "before" else (1,)), (at, after)
        assert after.count("lookup") in (1, 2), (at, after)


def mnc(args: list[str], db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args, "--db", str(db)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("when", ["written", "after"])
def test_mnc_retry_killed_at_every_commit(prog: Any, when: str) -> None:
    """`mnc retry` exits like a SIGKILL at its N-th commit (the reopening is the first);
    the operator runs `mnc retry` again (still failed) or `mnc resume` (running): the run
    ends as an uninterrupted retry does, with one `retried` event, and the tools saw
    the charge never again and the receipt once (twice only across a crash between its
    intent and its result)."""
    for at in itertools.count(1):
        p = prog(PAY, PAY_TOOLS)
        (p.folder / "broken").touch()
        assert p.run({"order": "o1"}, run_id="r1").status == "failed"
        (p.folder / "broken").unlink()
        db = p.folder / "journal.db"
        before = len(p.calls())
        crashed = mnc(["retry", "r1"], db, MNC_CRASH_AT_COMMIT=str(at), MNC_CRASH_WHEN=when)
        if crashed.returncode == 0:
            assert at > 3, crashed.stdout  # ran past its last commit: every one was tried
            return
        assert crashed.returncode == 137, crashed.stderr
        pending = pending_intents_of(p)
        for _ in range(3):
            record = p.store.get_run("r1")
            assert record is not None
            if record.status == "completed":
                break
            again = mnc(["retry" if record.status == "failed" else "resume", "r1"], db)
            assert again.returncode in (0, 1), again.stderr
        record = p.store.get_run("r1")
        assert record is not None and record.status == "completed", (at, record)
        assert record.result == "charged-o1 receipt-o1 42"
        assert len(p.events("r1", "retried")) == 1, at
        after = [c["name"] for c in p.calls()[before:]]
        assert "charge" not in after, at
        allowed = 2 if "receipt:o1" in pending else 1
        assert 1 <= after.count("receipt") <= allowed, (at, after)


def pending_intents_of(p: Program) -> set[str]:
    from tests.test_crash import pending_intents

    return pending_intents(p.store)


def test_a_retried_run_counts_once_with_a_repair_and_a_person(prog: Any) -> None:
    from mnlang.metrics.compute import compute_metrics

    p = prog(PAY, PAY_TOOLS)
    (p.folder / "broken").touch()
    p.run({"order": "o1"}, run_id="r1")
    (p.folder / "broken").unlink()
    retry(p.store, "r1", by="ops")
    p.resume("r1")
    p.run({"order": "o2"}, run_id="r2")
    report = compute_metrics(p.store)
    totals = report.total
    assert totals.runs == 2 and totals.successful == 2
    assert (totals.unplanned_repairs.numerator, totals.human_intervention.numerator) == (1, 1)


def test_mnc_retry_and_mnc_fork(prog: Any) -> None:
    from click.testing import CliRunner

    from mnlang.cli import main

    p = prog(PAY, PAY_TOOLS)
    db = str(p.folder / "journal.db")
    (p.folder / "broken").touch()
    for order in ("o1", "o2"):
        assert p.run({"order": order}, run_id=order).status == "failed"
    runner = CliRunner()

    refused = runner.invoke(main, ["retry", "o1", "--filter", "workflow=pay", "--db", db])
    assert refused.exit_code == 2 and "one of them" in refused.output
    bad = runner.invoke(main, ["retry", "--filter", "colour=red", "--db", db])
    assert bad.exit_code == 2 and "no filter `colour`" in bad.output
    again = runner.invoke(main, ["retry", "o1", "--db", db])
    assert again.exit_code == 1, again.output  # still broken: it failed again
    (p.folder / "broken").unlink()
    done = runner.invoke(main, ["retry", "o1", "--by", "ops", "--db", db])
    assert done.exit_code == 0, done.output
    assert [e.data["by"] for e in p.events("o1", "retried")][-1] == "ops"
    ended = runner.invoke(main, ["retry", "o1", "--db", db])
    assert ended.exit_code == 2
    assert "error: run `o1` is completed: only a failed run is retried" in ended.output

    bulk = runner.invoke(main, ["retry", "--filter", "q=o", "--json", "--db", db])
    assert bulk.exit_code == 0, bulk.output
    out = json.loads(bulk.output)
    assert [r["run_id"] for r in out["retried"]] == ["o2"] and out["refused"] == []
    assert out["retried"][0]["status"] == "completed"

    line = str(PAY.splitlines().index("  r = receipt(order)") + 1)
    forked = runner.invoke(main, ["fork", "o2", "--from", line, "--id", "o2-again", "--db", db])
    assert forked.exit_code == 0, forked.output
    assert "effect receipt: answered from the source run's ledger" in forked.output
    record = p.store.get_run("o2-again")
    assert record is not None and record.result == "charged-o2 receipt-o2 42"
    nowhere = runner.invoke(main, ["fork", "o2", "--from", "9999", "--db", db])
    assert nowhere.exit_code == 2 and "never reached" in nowhere.output
