"""`mnc serve`'s Prometheus `/metrics`: scraped from a live server during a run (a
checkpoint decided, a signal sent), checked by `promtool check metrics`; the product
metrics are kept between scrapes, reading again only the journals of runs that moved."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from mnlang.metrics import compute_metrics
from mnlang.metrics.compute import KeptFacts, report_of
from mnlang.stores.base import Event
from mnlang.stores.sqlite import SQLiteStore
from tests.api.server import ADMIN_TOKEN, SHOP, Served, serve
from tests.test_api_server import call, register, wait_until


def scrape(served: Served) -> tuple[str, dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    """The exposition text and each sample's value by name and labels."""
    answer = httpx2.get(
        served.url + "/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return answer.text, samples


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool (Debian's prometheus) is installed by .ci/run"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_serve_metrics_are_scraped_during_a_run(tmp_path: Path) -> None:
    with serve(tmp_path / "journal.db") as served:
        refused = httpx2.get(served.url + "/metrics", timeout=30)
        assert refused.status_code == 401  # a scraper is told, not sent to the login page
        register(served)
        start = {"workflow": "order", "input": {"id": "o-1", "amount": "240"}, "run_id": "o-1"}
        assert call(served, "POST", "/api/v1/runs", json=start).status_code == 201
        wait_until(served, "o-1", "waiting")
        text, waiting = scrape(served)
        promtool_check(text)
        queue = waiting["mnlang_queue_depth"]
        assert queue[(("state", "waiting"),)] == 1
        assert queue[(("state", "runnable"),)] == 0
        assert waiting["mnlang_runs"][
            (("status", "waiting"), ("workflow", "order"), ("workflow_class", ""))
        ] == (1)
        unclassed = (("class", "(none)"),)
        assert waiting["mnlang_workflow_runs_in_flight"][unclassed] == 1
        assert waiting["mnlang_workflow_runs_total"][unclassed] == 0

        decided = call(
            served,
            "POST",
            "/api/v1/runs/o-1/checkpoints/review/decision",
            json={"choice": "approve"},
        )
        assert decided.status_code == 200, decided.text
        deadline = time.monotonic() + 30
        while call(served, "GET", "/api/v1/runs/o-1").json()["pending"]["events"] != ["paid#o-1"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        signal = {"event": "paid", "key": "o-1", "payload": {"amount": "240"}}
        assert call(served, "POST", "/api/v1/runs/o-1/signals", json=signal).status_code == 202
        wait_until(served, "o-1", "completed")
        text, ended = scrape(served)
        promtool_check(text)
    assert ended["mnlang_workflow_runs_total"][unclassed] == 1
    assert ended["mnlang_workflow_successful_runs_total"][unclassed] == 1
    assert ended["mnlang_runs_with_human_decision_total"][unclassed] == 1
    assert ended["mnlang_workflow_runs_in_flight"][unclassed] == 0
    assert ended["mnlang_checkpoint_wait_seconds_count"][unclassed] == 1
    assert ended["mnlang_checkpoint_wait_seconds_bucket"][(*unclassed, ("le", "+Inf"))] == 1
    assert ended["mnlang_queue_depth"][(("state", "waiting"),)] == 0
    with SQLiteStore(tmp_path / "journal.db") as store:
        report = compute_metrics(store)
    (shown,) = report.classes
    assert ended["mnlang_cost_dollars_total"][(*unclassed, ("part", "human_review"))] == float(
        shown.cost.human_review
    )


class ReadCountingStore:
    """A store that counts the journals read through it."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.journals_read: list[str] = []

    def read_journal(self, run_id: str, *args: Any, **kwargs: Any) -> list[Event]:
        self.journals_read.append(run_id)
        return self.store.read_journal(run_id, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_kept_facts_read_again_only_the_runs_that_moved(tmp_path: Path) -> None:
    from mnlang.ir.compile import compile_file
    from mnlang.runtime.decisions import decide
    from mnlang.runtime.run import resume_run, start_run

    program, diagnostics = compile_file(SHOP)
    assert program is not None, diagnostics
    with SQLiteStore(tmp_path / "journal.db") as store:
        for n in range(3):
            given = {"id": f"o-{n}", "amount": "5"}
            start_run(store, program, "order", given, run_id=f"o-{n}")
        counting = ReadCountingStore(store)
        kept = KeptFacts(counting)  # type: ignore[arg-type]
        first = report_of(kept.facts())
        assert sorted(counting.journals_read) == ["o-0", "o-1", "o-2"]
        counting.journals_read.clear()
        assert report_of(kept.facts()).to_json() == first.to_json()
        assert counting.journals_read == []  # nothing moved: no journal read
        decide(store, "o-1", "review", approve=False, by="ann")
        resume_run(store, "o-1", program=program)
        counting.journals_read.clear()
        again = report_of(kept.facts())
        assert counting.journals_read == ["o-1"]
        assert again.to_json() == compute_metrics(store).to_json()
        assert again.total.runs == 1 and again.total.in_flight == 2
