"""The console in a real headless browser: Debian's `chromium`, driven by Playwright.

Benches two classes of the golden suite with every fault class (`mnlang.bench`, as
`mnc bench` does) and runs the refund example into the same journal, serves the console
with uvicorn on a free loopback port, then: opens the waiting run's page, approves the
run from the approvals inbox in a second tab, sees the first tab reach `completed`
without reloading, and finds on the metrics page the figures `compute_metrics` gives.

With `MNC_UI_SCREENSHOTS=DIR` the run, inbox and metrics pages are saved there as
`ui-run.png`, `ui-inbox.png` and `ui-metrics.png` (how `docs/img/ui-*.png` are made).
Needs `apt-get install chromium` and `pip install playwright` (no browser download:
the test points Playwright at `/usr/bin/chromium`, or at `$MNC_CHROMIUM`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang import api
from mnlang.bench.runner import run_bench
from mnlang.metrics import compute_metrics
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.faults import FAULT_CLASSES
from mnlang.runtime.run import start_run
from mnlang.stores import open_store
from mnlang.stores.base import Store
from mnlang.ui.app import create_app
from mnlang.ui.auth import Authenticator
from mnlang.ui.metrics import period_of
from mnlang.ui.server import console_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund" / "refund.mn"
GOLDEN = ROOT / "examples" / "golden"
BENCHED = ("support", "finance")


def chromium() -> str:
    path = os.environ.get("MNC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("the browser test needs Debian's chromium: `apt-get install chromium`")
    return path


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    db = tmp_path / "journal.db"
    for workflow_class in BENCHED:  # varied runs for the metrics page: faults, repairs, ...
        bench = run_bench(GOLDEN / workflow_class, seed=7, repeat=1, db=str(db))
        assert bench.errors == []
    store = open_store(db)
    program = api.load_program(REFUND)
    for run_id, order, complaint in (
        ("refund-ana", "o-1001", "The mug arrived with a crack along the handle."),
        ("refund-chloe", "o-1003", "Never arrived."),
        ("refund-ben", "o-1002", "The lamp is broken."),
    ):
        start_run(
            store,
            program,
            "refund",
            {"order_id": order, "complaint": complaint},
            run_id=run_id,
            config=RuntimeConfig(models="scripted"),
        )
    yield store
    store.close()


@pytest.fixture
def console_url(journal: Store) -> Iterator[str]:
    import uvicorn

    auth = Authenticator(admin_token=None, tokens=None, loopback=True)
    app = create_app(journal, auth, execute=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = console_server(config, app.state.console.live)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_approve_from_the_inbox_and_watch_the_run_complete(
    journal: Store, console_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("MNC_UI_SCREENSHOTS") or tmp_path)
    record = journal.get_run("refund-ben")
    assert record is not None and record.status == "waiting"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        errors: list[str] = []
        run_page = context.new_page()
        run_page.on("pageerror", lambda e: errors.append(str(e)))
        fetched: list[str] = []
        run_page.on("request", lambda r: fetched.append(r.url.removeprefix(console_url)))
        run_page.goto(f"{console_url}/runs/refund-ben")
        expect(run_page.locator("#run-status")).to_have_text("waiting")
        expect(run_page.locator("article.checkpoint .ask")).to_contain_text("Refund $249.00")
        run_page.evaluate("window.__loadedOnce = true")
        # An idle page follows its event stream and asks for nothing else (no polling).
        run_page.wait_for_timeout(1500)
        stream = run_page.locator("#live").get_attribute("data-stream")
        assert stream is not None and stream.startswith("/events/run?id=refund-ben&fp=")
        assert [u for u in fetched if u.startswith("/events/")] == [stream]
        assert not [u for u in fetched if u.startswith("/fragments/")]

        inbox = context.new_page()
        inbox.on("pageerror", lambda e: errors.append(str(e)))
        inbox.goto(f"{console_url}/inbox")
        card = inbox.locator('article.checkpoint[data-run="refund-ben"]')
        expect(card).to_contain_text("manager_review")
        card.locator("input[name=comment]").fill("Photo of the broken lamp checks out.")
        inbox.screenshot(path=str(shots / "ui-inbox.png"), full_page=True)
        card.locator("button[data-choice=approve]").click()
        expect(inbox.locator(".flash.note")).to_contain_text("approve recorded")
        expect(inbox.locator("article.checkpoint")).to_have_count(0)

        # The first tab was never reloaded: its event stream brought it to the end.
        expect(run_page.locator("#run-status")).to_have_text("completed", timeout=20_000)
        assert run_page.evaluate("window.__loadedOnce") is True
        assert [u for u in fetched if u.startswith("/fragments/run?id=refund-ben")]
        expect(run_page.locator("table.decisions")).to_contain_text("Photo of the broken lamp")
        expect(run_page.locator("ol.journal")).to_contain_text("completed")
        run_page.bring_to_front()
        run_page.screenshot(path=str(shots / "ui-run.png"), full_page=True)

        metrics = context.new_page()
        metrics.goto(f"{console_url}/product-metrics?period=7d")
        report = compute_metrics(journal, since=period_of("7d", journal.now()).since)
        assert [c.workflow_class for c in report.classes] == sorted(BENCHED)
        table = metrics.locator("table.figures")
        for figures in report.classes:
            for label, ratio in (
                ("workflow completion rate", figures.completion),
                ("fault recovery rate", figures.fault_recovery),
                ("tool selection accuracy", figures.tool_selection),
                ("human intervention rate", figures.human_intervention),
            ):
                row = table.locator("tr", has=metrics.get_by_role("cell", name=label, exact=True))
                cell = row.locator(f'td[data-class="{figures.workflow_class}"]')
                expect(cell).to_have_text(
                    f"{ratio.percent()} {ratio.numerator}/{ratio.denominator}"
                )
            assert figures.recovery_by_fault.keys() == set(FAULT_CLASSES)
        metrics.screenshot(path=str(shots / "ui-metrics.png"), full_page=True)
        browser.close()
    assert errors == []
    decided = [e for e in journal.read_journal("refund-ben") if e.kind == "decided"]
    assert decided[0].data["comment"] == "Photo of the broken lamp checks out."
    ledger = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert [row["key"] for row in ledger if row["effect"] == "refund_payment"] == [
        "refund:o-1001",
        "refund:o-1002",
    ]
