"""HTTP-level tests of the web console (`mnc ui`): every route, its JSON, the live
fragments, the actions, and the refusals (authentication, CSRF, origin, assignee).

The console runs in-process through Starlette's TestClient over a journal made by
running a small workflow for real; the browser test is in `test_ui_browser.py`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from mnlang import api
from mnlang.cli import main
from mnlang.ir.load import dump_ir
from mnlang.ir.model import IRProgram
from mnlang.metrics import charts, compute_metrics
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.pauses import checkpoint_timer
from mnlang.runtime.run import start_run
from mnlang.stores import open_store
from mnlang.stores.base import (
    Batch,
    NewEvent,
    NewRun,
    OpenCheckpoint,
    RunStatus,
    RunUpdate,
    SetTimer,
    Store,
)
from mnlang.ui import app as app_module
from mnlang.ui.app import create_app
from mnlang.ui.auth import Authenticator
from mnlang.ui.metrics import ConsoleMetrics, Period, period_of
from mnlang.ui.server import ConsoleError, serve
from mnlang.ui.tokens import TokenFile, tokens_path

BASE = "http://127.0.0.1:8737"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
TOOL_PAYLOAD = "<script>alert('tool')</script>"
MODEL_PAYLOAD = "<script>alert('model')</script>"

WORKFLOWS = """
type Triage {
  summary: str
  confidence: float
}

event nudge -> str

tool lookup(order_id: str) -> str {
  impl: "uitools:lookup"
  retry: { attempts: 3, on: [transient] }
}

agent triage(text: str) -> Triage {
  model: "gpt-5.4-mini"
  prompt: "Classify {text}"
  max_tokens: 100
}

effect pay(order_id: str) -> str {
  impl: "uitools:pay"
  key: "pay:{order_id}"
}

workflow review(order_id: str, text: str) -> str {
  class: "support"
  info = lookup(order_id)
  t = triage(text)
  decision = checkpoint manager_review {
    ask: "Pay {order_id} ({info})? {t.summary}"
    show: [t]
    assignee: "alice"
    timeout: 1d
    on_timeout: reject
  }
  if not decision.approved {
    fail "rejected by {decision.by}"
  }
  receipt = pay(order_id)
  return receipt
}

workflow waiter(n: int) -> str {
  class: "ops"
  got = wait nudge { timeout: 1d }
  if got == null {
    fail "no nudge"
  }
  return got
}
"""

# `lookup` fails once per order (a retry in the journal) and returns a script tag, as a
# hostile tool output would; the model's scripted reply carries one too.
TOOLS = f'''
from mnlang.errors import Transient

_seen: set[str] = set()


def lookup(order_id: str, *, ctx: object = None) -> str:
    if order_id not in _seen:
        _seen.add(order_id)
        raise Transient("lookup is busy")
    return "{TOOL_PAYLOAD} " + order_id


def pay(order_id: str, *, ctx: object = None) -> str:
    return "paid-" + order_id
'''

REPLIES = {"triage": [{"summary": MODEL_PAYLOAD, "confidence": 0.5}]}


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> IRProgram:
    folder = tmp_path_factory.mktemp("workflows")
    (folder / "review.mn").write_text(WORKFLOWS, "utf-8")
    (folder / "uitools.py").write_text(TOOLS, "utf-8")
    (folder / "replies.json").write_text(json.dumps(REPLIES), "utf-8")
    return api.load_program(folder / "review.mn")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "journal.db")
    yield opened
    opened.close()


def start(store: Store, program: IRProgram, run_id: str, workflow: str = "review") -> str:
    args: dict[str, Any] = (
        {"order_id": run_id, "text": "late"} if workflow == "review" else {"n": 1}
    )
    config = RuntimeConfig(models="scripted")
    outcome = start_run(store, program, workflow, args, run_id=run_id, config=config)
    assert outcome.status == "waiting", outcome
    return run_id


def console(
    store: Store,
    *,
    execute: bool = False,
    admin_token: str | None = None,
    tokens: TokenFile | None = None,
    loopback: bool = True,
) -> TestClient:
    auth = Authenticator(admin_token=admin_token, tokens=tokens, loopback=loopback)
    return TestClient(create_app(store, auth, execute=execute), base_url=BASE)


def csrf(client: TestClient) -> str:
    page = client.get("/runs")
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert found is not None, page.text
    return found.group(1)


def wait_for(store: Store, run_id: str, status: RunStatus, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.get_run(run_id)
        if record is not None and record.status == status and record.lease_owner is None:
            return
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not reach {status}: {store.get_run(run_id)}")


def decide(
    client: TestClient, run_id: str, choice: str, token: str | None = None, **extra: str
) -> Any:
    form = {
        "run": run_id,
        "checkpoint": "decision",
        "choice": choice,
        "csrf": token if token is not None else csrf(client),
        **extra,
    }
    return client.post(
        "/actions/decide", data=form, headers={"accept": "application/json"}, follow_redirects=False
    )


# ---- pages and JSON ---------------------------------------------------------------------------


def test_every_page_renders(store: Store, program: IRProgram) -> None:
    start(store, program, "order-1")
    client = console(store)
    pages = {
        "/runs": "order-1",
        "/runs?status=waiting&workflow=review&class=support": "order-1",
        "/runs/order-1": "manager_review",
        "/inbox": "manager_review",
        "/workflows": "review",
        "/workflows/review": "<svg",
        "/product-metrics": "workflow completion rate",
        "/product-metrics?period=all": "support",
        "/login": "Log in",
    }
    for url, expected in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith("text/html")
        assert expected in response.text, url
    assert client.get("/", follow_redirects=False).headers["location"] == "/runs"


def test_run_page_shows_graph_step_evidence_retries_and_cost(
    store: Store, program: IRProgram
) -> None:
    start(store, program, "order-2")
    page = console(store).get("/runs/order-2").text
    assert "<svg" in page and "waiting" in page  # the overlaid graph
    assert "decision = checkpoint manager_review" in page  # the current step
    assert "if not decision.approved" in page  # what comes next
    assert "lookup is busy" in page and "transient" in page  # the retry with its error
    assert "Classify late" in page  # the model prompt, as evidence
    assert "<td>model</td><td>scripted</td>" in page  # cost by the model that replied
    assert 'data-choice="approve"' in page and "for alice" in page


def test_long_runs_show_their_latest_events(
    store: Store, program: IRProgram, monkeypatch: pytest.MonkeyPatch
) -> None:
    start(store, program, "order-20")
    monkeypatch.setattr(app_module, "SHOWN", {"journal_shown": 3, "evidence_shown": 1})
    page = console(store).get("/runs/order-20").text
    total = len(store.read_journal("order-20"))
    assert f"The last 3 of {total} events" in page and "The last 1 of 2 steps" in page
    assert page.count('class="card evidence"') == 1


def test_json_routes(store: Store, program: IRProgram) -> None:
    start(store, program, "order-3")
    start(store, program, "wait-1", "waiter")
    client = console(store)
    runs = client.get("/api/runs").json()
    assert runs["counts"]["waiting"] == 2
    assert sorted(r["run_id"] for r in runs["runs"]) == ["order-3", "wait-1"]
    only_ops = client.get("/api/runs?class=ops").json()
    assert [r["run_id"] for r in only_ops["runs"]] == ["wait-1"]
    assert only_ops["counts"] == {
        "running": 0,
        "waiting": 1,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    run = client.get("/api/runs/order-3").json()
    assert run["run"]["status"] == "waiting"
    assert run["overlay"]["states"]["decision"]["status"] == "waiting"
    assert run["overlay"]["states"]["info"] == {"status": "done", "attempts": 2}
    assert run["pending"][0]["assignee"] == "alice"
    assert run["pending"][0]["deadline"] > time.time()
    assert {c["category"] for c in run["cost_breakdown"]} == {"model", "tool"}
    inbox = client.get("/api/inbox").json()
    assert [p["run_id"] for p in inbox["pending"]] == ["order-3"]
    workflows = client.get("/api/workflows").json()
    assert {w["workflow"]: w["runs"] for w in workflows} == {"review": 1, "waiter": 1}
    assert client.get("/api/workflows/review").json()["recent_runs"][0]["run_id"] == "order-3"
    metrics = client.get("/api/metrics?period=30d").json()
    assert metrics["period"] == "30d"
    support = next(c for c in metrics["classes"] if c["class"] == "support")
    assert (support["runs"], support["in_flight"]) == (0, 1)  # a waiting run is in no figure
    me = client.get("/api/me").json()
    assert me["admin"] is True and me["user"]


def test_unknown_things_are_404(store: Store) -> None:
    client = console(store)
    assert client.get("/runs/nope").status_code == 404
    assert "no run `nope`" in client.get("/runs/nope").text
    assert client.get("/api/runs/nope").status_code == 404
    assert client.get("/fragments/run?id=nope").status_code == 404
    assert client.get("/workflows/nope").status_code == 404
    assert client.get("/api/workflows/nope").status_code == 404
    assert decide(client, "nope", "approve").status_code == 404


def test_run_ids_with_slashes_and_hashes_have_pages(store: Store, program: IRProgram) -> None:
    start(store, program, "team/a#1")
    client = console(store)
    assert 'href="/runs/team%2Fa%231"' in client.get("/runs").text
    assert client.get("/runs/team%2Fa%231").status_code == 200
    assert client.get("/api/runs/team%2Fa%231").json()["run"]["run_id"] == "team/a#1"


def test_fragments_answer_204_until_something_changes(store: Store, program: IRProgram) -> None:
    start(store, program, "order-4")
    client = console(store)
    first = client.get("/fragments/run?id=order-4")
    fingerprint = re.search(r"fp=([0-9a-f]+)", first.text)
    assert first.status_code == 200 and fingerprint is not None
    assert client.get(f"/fragments/run?id=order-4&fp={fingerprint.group(1)}").status_code == 204
    runs = client.get("/fragments/runs")
    runs_fp = re.search(r"fp=([0-9a-f]+)", runs.text)
    inbox = client.get("/fragments/inbox")
    inbox_fp = re.search(r"fp=([0-9a-f]+)", inbox.text)
    assert runs_fp is not None and inbox_fp is not None
    assert client.get(f"/fragments/runs?fp={runs_fp.group(1)}").status_code == 204
    assert client.get(f"/fragments/inbox?fp={inbox_fp.group(1)}").status_code == 204
    assert decide(client, "order-4", "approve").status_code == 200
    assert client.get(f"/fragments/run?id=order-4&fp={fingerprint.group(1)}").status_code == 200
    assert client.get(f"/fragments/inbox?fp={inbox_fp.group(1)}").status_code == 200


def test_run_output_is_escaped(store: Store, program: IRProgram) -> None:
    start(store, program, "order-5")
    client = console(store)
    for url in ("/runs/order-5", "/inbox", "/fragments/run?id=order-5", "/fragments/inbox"):
        text = client.get(url).text
        assert "<script>alert" not in text, url
        assert "&lt;script&gt;alert(&#39;model&#39;)&lt;/script&gt;" in text, url
    assert "&lt;script&gt;alert(&#39;tool&#39;)&lt;/script&gt;" in client.get("/runs/order-5").text
    # the only script elements are the console's own
    assert re.findall(r"<script[^>]*>", client.get("/runs/order-5").text) == [
        '<script src="/static/htmx.min.js">',
        '<script src="/static/live.js" defer>',
    ]


def test_security_headers(store: Store) -> None:
    response = console(store).get("/runs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "cache-control" not in console(store).get("/static/console.css").headers


def test_static_files_are_public(store: Store) -> None:
    client = console(store, admin_token=ADMIN_TOKEN, loopback=False)
    response = client.get("/static/htmx.min.js")
    assert response.status_code == 200 and "htmx" in response.text
    assert client.get("/static/console.css").status_code == 200


# ---- actions ----------------------------------------------------------------------------------


def test_approve_resumes_the_run_and_records_who(store: Store, program: IRProgram) -> None:
    start(store, program, "order-6")
    client = console(store, execute=True)
    response = decide(client, "order-6", "approve", comment="fine <b>by</b> me")
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    wait_for(store, "order-6", "completed")
    record = store.get_run("order-6")
    assert record is not None and record.result == "paid-order-6"
    user = client.get("/api/me").json()["user"]
    decided = [e for e in store.read_journal("order-6") if e.kind == "decided"]
    assert decided[0].data["by"] == user
    assert decided[0].data["comment"] == "fine <b>by</b> me"
    page = client.get("/runs/order-6").text
    assert 'data-status="completed"' in page and "fine &lt;b&gt;by&lt;/b&gt; me" in page


def test_reject_fails_the_run(store: Store, program: IRProgram) -> None:
    start(store, program, "order-7")
    client = console(store, execute=True)
    assert decide(client, "order-7", "reject", comment="too much").status_code == 200
    wait_for(store, "order-7", "failed")
    record = store.get_run("order-7")
    user = client.get("/api/me").json()["user"]
    assert record is not None and record.error["message"] == f"rejected by {user}"
    states = client.get("/api/runs/order-7").json()["overlay"]["states"]
    assert states["decision"]["status"] == "done"
    assert states[record.error["step"]]["status"] == "failed"


def test_htmx_decision_returns_the_fragment(store: Store, program: IRProgram) -> None:
    start(store, program, "order-8")
    client = console(store)
    form = {"run": "order-8", "checkpoint": "decision", "choice": "approve", "back": "inbox"}
    headers = {"hx-request": "true", "x-csrf-token": csrf(client)}
    response = client.post("/actions/decide", data=form, headers=headers)
    assert response.status_code == 200
    assert 'id="live"' in response.text and "approve recorded" in response.text
    again = client.post("/actions/decide", data=form, headers=headers)
    assert again.status_code == 409
    assert again.headers["hx-retarget"] == "#flash"
    assert "already decided" in again.text


def test_plain_form_decision_redirects_to_the_run(store: Store, program: IRProgram) -> None:
    start(store, program, "order-9")
    client = console(store)
    form = {"run": "order-9", "checkpoint": "decision", "choice": "reject", "csrf": csrf(client)}
    response = client.post("/actions/decide", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/runs/order-9?note=")


def test_decision_refusals(store: Store, program: IRProgram) -> None:
    start(store, program, "order-10")
    client = console(store)
    assert decide(client, "order-10", "maybe").status_code == 400
    assert decide(client, "order-10", "approve", checkpoint="nope").status_code == 404
    assert decide(client, "order-10", "approve").status_code == 200
    second = decide(client, "order-10", "reject")
    assert second.status_code == 409 and "was already decided" in second.json()["error"]


def test_a_due_timeout_decides_before_a_person(store: Store, program: IRProgram) -> None:
    start(store, program, "order-19")
    timer = checkpoint_timer("decision")
    store.commit(Batch("order-19", set_timers=[SetTimer(timer, 0.0, {"checkpoint": "decision"})]))
    refused = decide(console(store), "order-19", "approve")
    assert refused.status_code == 409 and "by its timeout" in refused.json()["error"]


def test_assignee_is_enforced(store: Store, program: IRProgram, tmp_path: Path) -> None:
    start(store, program, "order-11")
    tokens = TokenFile(tmp_path / "tokens.json")
    bob, alice = tokens.add("bob"), tokens.add("alice")
    client = console(store, tokens=tokens)
    as_bob = {"authorization": f"Bearer {bob}", "accept": "application/json"}
    form = {"run": "order-11", "checkpoint": "decision", "choice": "approve"}
    refused = client.post("/actions/decide", data=form, headers=as_bob)
    assert refused.status_code == 403 and "assigned to `alice`" in refused.json()["error"]
    page = client.get("/runs/order-11", headers=as_bob).text
    assert 'data-choice="approve"' not in page and "only they (or an admin)" in page
    # Every other state change of the run is held to the same rule.
    for action, fields in (
        ("cancel", {}),
        ("resume", {}),
        ("signal", {"event": "nudge", "payload": '"x"'}),
    ):
        refused = client.post(
            f"/actions/{action}", data={"run": "order-11", **fields}, headers=as_bob
        )
        assert refused.status_code == 403 and "only they or an admin" in refused.text, action
    run = store.get_run("order-11")
    assert run is not None and not run.cancel_requested
    as_alice = {"authorization": f"Bearer {alice}", "accept": "application/json"}
    assert client.post("/actions/decide", data=form, headers=as_alice).status_code == 200
    checkpoint = store.get_checkpoint("order-11", "decision")
    assert checkpoint is not None and checkpoint.decided_by == "alice"


def test_admin_may_decide_any_checkpoint(store: Store, program: IRProgram) -> None:
    start(store, program, "order-12")
    client = console(store, admin_token=ADMIN_TOKEN)
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "accept": "application/json"}
    form = {"run": "order-12", "checkpoint": "decision", "choice": "approve"}
    assert client.post("/actions/decide", data=form, headers=headers).status_code == 200
    checkpoint = store.get_checkpoint("order-12", "decision")
    assert checkpoint is not None and checkpoint.decided_by == "admin"


def test_signal_wakes_a_waiting_run(store: Store, program: IRProgram) -> None:
    start(store, program, "wait-2", "waiter")
    client = console(store, execute=True)
    page = client.get("/runs/wait-2").text
    assert "<option selected>nudge</option>" in page
    form = {"run": "wait-2", "event": "nudge", "payload": '"hello"', "csrf": csrf(client)}
    response = client.post("/actions/signal", data=form, headers={"accept": "application/json"})
    assert response.status_code == 200, response.text
    wait_for(store, "wait-2", "completed")
    record = store.get_run("wait-2")
    assert record is not None and record.result == "hello"


def test_signal_refusals(store: Store, program: IRProgram) -> None:
    start(store, program, "wait-3", "waiter")
    client = console(store)
    token = csrf(client)
    headers = {"accept": "application/json"}
    bad = {"run": "wait-3", "event": "nudge", "payload": "{not json", "csrf": token}
    response = client.post("/actions/signal", data=bad, headers=headers)
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    unnamed = {"run": "wait-3", "event": " ", "csrf": token}
    assert client.post("/actions/signal", data=unnamed, headers=headers).status_code == 400
    once = {"run": "wait-3", "event": "nudge", "payload": '"x"', "signal_id": "s1", "csrf": token}
    assert client.post("/actions/signal", data=once, headers=headers).json()["message"] == (
        "signal `nudge` sent"
    )
    again = client.post("/actions/signal", data=once, headers=headers).json()
    assert again["message"] == "signal id `s1` was sent before"


def test_cancel_and_resume(store: Store, program: IRProgram) -> None:
    start(store, program, "wait-4", "waiter")
    client = console(store, execute=True)
    token = csrf(client)
    headers = {"accept": "application/json"}
    form = {"run": "wait-4", "csrf": token}
    assert client.post("/actions/resume", data=form, headers=headers).status_code == 200
    assert client.post("/actions/cancel", data=form, headers=headers).status_code == 200
    wait_for(store, "wait-4", "cancelled")
    record = store.get_run("wait-4")
    assert record is not None and record.cancel_requested_by  # the console's user
    assert f'id="cancelled-by">by {record.cancel_requested_by}<' in client.get("/runs/wait-4").text
    assert client.post("/actions/cancel", data=form, headers=headers).status_code == 409
    assert client.post("/actions/resume", data=form, headers=headers).status_code == 409
    assert client.post("/actions/frobnicate", data=form, headers=headers).status_code == 404


def test_without_execute_the_decision_waits_for_a_worker(store: Store, program: IRProgram) -> None:
    start(store, program, "order-13")
    client = console(store, execute=False)
    response = decide(client, "order-13", "approve")
    assert response.json()["message"] == "approve recorded for `manager_review`"
    resumed = client.post(
        "/actions/resume",
        data={"run": "order-13", "csrf": csrf(client)},
        headers={"accept": "application/json"},
    )
    assert "a worker will" in resumed.json()["message"]
    record = store.get_run("order-13")
    assert record is not None and record.status == "waiting"


def test_repair_needs_a_typed_result_to_mark_done(store: Store, program: IRProgram) -> None:
    store.put_program(program.hash, dump_ir(program))
    store.create_run(NewRun("fixme", "review", {}, "support", program.hash, status="waiting"))
    request = {
        "kind": "repair",
        "effect": "pay",
        "key": "pay:1",
        "args": {"order_id": "1"},
        "reason": "the call timed out",
        "options": ["mark_done", "retry", "fail"],
        "result_type": "str",
    }
    store.commit(
        Batch("fixme", open_checkpoints=[OpenCheckpoint("repair:pay@[]", "repair", request)])
    )
    client = console(store)
    assert "the call timed out" in client.get("/inbox").text
    form = {"checkpoint": "repair:pay@[]"}
    assert decide(client, "fixme", "mark_done", **form).status_code == 400
    assert decide(client, "fixme", "mark_done", result="{", **form).status_code == 400
    wrong_type = decide(client, "fixme", "mark_done", result="12", **form)
    assert wrong_type.status_code == 400 and "not a str" in wrong_type.json()["error"]
    assert decide(client, "fixme", "mark_done", result='"rf-1"', **form).status_code == 200
    checkpoint = store.get_checkpoint("fixme", "repair:pay@[]")
    assert checkpoint is not None and checkpoint.decision["result"] == "rf-1"


# ---- authentication, CSRF, origin -------------------------------------------------------------


def test_csrf_is_required_for_every_action(store: Store, program: IRProgram) -> None:
    start(store, program, "order-14")
    client = console(store)
    for action in ("decide", "signal", "cancel", "resume"):
        form = {"run": "order-14", "checkpoint": "decision", "choice": "approve", "event": "n"}
        headers = {"accept": "application/json"}
        missing = client.post(f"/actions/{action}", data=form, headers=headers)
        assert missing.status_code == 403 and "CSRF" in missing.json()["error"]
        wrong = client.post(f"/actions/{action}", data={**form, "csrf": "0" * 64}, headers=headers)
        assert wrong.status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    record = store.get_run("order-14")
    assert record is not None and record.status == "waiting" and not record.cancel_requested


def test_csrf_header_is_accepted(store: Store, program: IRProgram) -> None:
    start(store, program, "order-15")
    client = console(store)
    form = {"run": "order-15", "checkpoint": "decision", "choice": "approve"}
    headers = {"x-csrf-token": csrf(client), "accept": "application/json"}
    assert client.post("/actions/decide", data=form, headers=headers).status_code == 200


def test_cross_site_posts_are_refused(store: Store, program: IRProgram) -> None:
    start(store, program, "order-16")
    client = console(store)
    form = {"run": "order-16", "checkpoint": "decision", "choice": "approve", "csrf": csrf(client)}
    evil = client.post("/actions/decide", data=form, headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    same = client.post(
        "/actions/decide", data=form, headers={"origin": BASE, "accept": "application/json"}
    )
    assert same.status_code == 200


def test_open_local_console_answers_loopback_hosts_only(store: Store) -> None:
    client = console(store)
    assert client.get("/runs").status_code == 200
    rebound = client.get("/runs", headers={"host": "evil.example:8737"})
    assert rebound.status_code == 403
    for host in ("127.0.0.1:8737", "localhost", "[::1]:8737", "LOCALHOST:1"):
        assert client.get("/runs", headers={"host": host}).status_code == 200, host
    for host in (
        "127.0.0.1:8737@evil.example",
        "127.0.0.1@evil.example",
        "evil.example#127.0.0.1",
        "127.0.0.1:8737/evil",
        "127.0.0.1 evil.example",
        "[::1]evil.example",
        "127.0.0.1:",
        "",
    ):
        assert client.get("/runs", headers={"host": host}).status_code == 403, host


def test_tokens_are_required_once_configured(store: Store, program: IRProgram) -> None:
    start(store, program, "order-17")
    client = console(store, admin_token=ADMIN_TOKEN, loopback=False)
    page = client.get("/runs/order-17", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fruns%2Forder-17"
    for url in ("/api/runs", "/fragments/runs", "/api/runs/order-17"):
        assert client.get(url).status_code == 401, url
    live = client.get("/fragments/runs", headers={"hx-request": "true"})
    assert live.status_code == 401 and live.headers["hx-redirect"] == "/login"
    assert client.get("/api/runs", headers={"authorization": "Bearer wrong"}).status_code == 401
    form = {"run": "order-17", "checkpoint": "decision", "choice": "approve"}
    assert client.post("/actions/decide", data=form).status_code == 401
    good = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.get("/api/runs", headers=good).status_code == 200
    # a non-loopback console takes any Host: the token is what protects it
    assert client.get("/api/runs", headers={**good, "host": "console.lan"}).status_code == 200


def test_login_sets_a_cookie_and_logout_clears_it(store: Store) -> None:
    client = console(store, admin_token=ADMIN_TOKEN, loopback=False)
    bad = client.post("/login", data={"token": "nope", "next": "/inbox"})
    assert bad.status_code == 401 and "not valid" in bad.text
    good = client.post(
        "/login", data={"token": ADMIN_TOKEN, "next": "/inbox"}, follow_redirects=False
    )
    assert good.status_code == 303 and good.headers["location"] == "/inbox"
    cookie = good.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert client.get("/inbox").status_code == 200
    logout = client.post("/logout", data={"csrf": csrf(client)}, follow_redirects=False)
    assert logout.status_code == 303
    assert client.get("/inbox", follow_redirects=False).status_code == 303


def test_login_redirects_only_within_the_site(store: Store) -> None:
    client = console(store, admin_token=ADMIN_TOKEN, loopback=False)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = client.post(
            "/login", data={"token": ADMIN_TOKEN, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/runs", target


def test_a_removed_token_stops_working(store: Store, tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    carol = tokens.add("carol")
    tokens.add("frank")  # a user left, so the console still needs tokens
    client = console(store, tokens=tokens)
    headers = {"authorization": f"Bearer {carol}"}
    assert client.get("/api/me", headers=headers).json() == {"user": "carol", "admin": False}
    assert tokens.remove("carol")
    assert client.get("/api/me", headers=headers).status_code == 401


def test_user_tokens_close_the_open_local_console(store: Store, tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    client = console(store, tokens=tokens)
    assert client.get("/api/runs").status_code == 200
    tokens.add("dave")
    assert client.get("/api/runs").status_code == 401


# ---- the command line -------------------------------------------------------------------------


def test_token_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MNC_UI_TOKENS", raising=False)
    db = str(tmp_path / "j" / "journal.db")
    runner = CliRunner()
    added = runner.invoke(main, ["ui", "token", "add", "erin", "--db", db])
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    path = tmp_path / "j" / "ui-tokens.json"
    assert tokens_path(db) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text() and TokenFile(path).user_of(token) == "erin"
    assert (
        runner.invoke(main, ["ui", "token", "list", "--db", db]).output == "erin\toperator\tall\n"
    )
    scoped = ["ui", "token", "add", "vic", "--role", "viewer", "--workflow", "a", "--db", db]
    assert runner.invoke(main, scoped).exit_code == 0
    listed = runner.invoke(main, ["ui", "token", "list", "--db", db]).output
    assert listed == "erin\toperator\tall\nvic\tviewer\ta\n"
    twice = runner.invoke(main, ["ui", "token", "add", "erin", "--db", db])
    assert twice.exit_code == 2 and "already has a token" in twice.output
    for name in ("<x>", "admin", "timeout"):
        bad = runner.invoke(main, ["ui", "token", "add", name, "--db", db])
        assert bad.exit_code == 2 and "cannot name a console user" in bad.output
    assert runner.invoke(main, ["ui", "token", "add", "--db", db]).exit_code == 2
    assert runner.invoke(main, ["ui", "token", "remove", "erin", "--db", db]).exit_code == 0
    gone = runner.invoke(main, ["ui", "token", "remove", "erin", "--db", db])
    assert gone.exit_code == 2 and "no user `erin`" in gone.output


def test_token_file_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MNC_UI_TOKENS", raising=False)
    assert tokens_path("sqlite:///rel/j.db") == Path("rel/ui-tokens.json")
    assert tokens_path("postgresql://h/db") == Path(".mnc/ui-tokens.json")
    monkeypatch.setenv("MNC_UI_TOKENS", str(tmp_path / "t.json"))
    assert tokens_path("anything.db") == tmp_path / "t.json"


def test_a_network_address_needs_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MNC_UI_TOKEN", raising=False)
    monkeypatch.delenv("MNC_UI_TOKENS", raising=False)
    db = str(tmp_path / "journal.db")
    with pytest.raises(ConsoleError, match="open to the network"):
        serve(db, "0.0.0.0", 0, None, execute=False)
    with pytest.raises(ConsoleError, match="shorter than 16"):
        serve(db, "0.0.0.0", 0, "short", execute=False)
    result = CliRunner().invoke(main, ["ui", "--db", db, "--host", "192.168.1.5"])
    assert result.exit_code == 2 and "without a token" in result.output


def test_mnc_ui_serves_the_journal(tmp_path: Path, program: IRProgram) -> None:
    db = tmp_path / "journal.db"
    with open_store(db) as journal:
        start(journal, program, "order-cli")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_UI_TOKEN")}
    command = [sys.executable, "-m", "mnlang.cli", "ui", "--db", str(db), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        banner = [server.stderr.readline() for _ in range(3)]
        link = banner[2].strip()
        assert link.startswith(f"http://127.0.0.1:{port}/login?token="), banner
        wait_for_port(port, server)
        # Without the start's secret, nobody gets in: not this account, not another one.
        assert http_get(port, "/api/runs")[0] == 401
        assert http_get(port, "/runs")[0] == 303
        if os.geteuid() == 0 and shutil.which("runuser") and shutil.which("curl"):
            as_nobody = subprocess.run(
                [
                    *("runuser", "-u", "nobody", "--", "curl", "-s", "-o", "/dev/null"),
                    *("-w", "%{http_code}", "-X", "POST", "-d", "choice=approve"),
                    f"http://127.0.0.1:{port}/actions/decide",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert as_nobody.stdout in ("401", "403"), as_nobody
        status, headers = http_get(port, link.removeprefix(f"http://127.0.0.1:{port}"))
        assert status == 303 and "mnc_ui_token=" in headers.get("set-cookie", "")
        cookie = headers["set-cookie"].split(";")[0]
        status, _ = http_get(port, "/api/runs", {"cookie": cookie})
        assert status == 200
    finally:
        server.terminate()
        server.communicate(timeout=20)
    assert f"serving http://127.0.0.1:{port}/" in banner[0]


def test_mnc_ui_open_warns_and_lets_local_accounts_in(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_UI_TOKEN")}
    db = str(tmp_path / "journal.db")
    command = [sys.executable, "-m", "mnlang.cli", "ui", "--db", db, "--port", str(port), "--open"]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        banner = [server.stderr.readline() for _ in range(2)]
        assert "WARNING: --open: every local account" in banner[1]
        wait_for_port(port, server)
        assert http_get(port, "/api/runs")[0] == 200
    finally:
        server.terminate()
        server.communicate(timeout=20)


def wait_for_port(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "no console"
            time.sleep(0.1)


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    """Status and headers of a GET, redirects not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"accept": "application/json", **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


# ---- parts: overlay, metrics, charts ----------------------------------------------------------


def test_charts_escape_their_labels() -> None:
    svg = charts.bar_rows([charts.Row("<b>x</b>", [charts.Segment(1, "c-done", "<i>")], "1")], "t")
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
    columns = charts.columns([("2026-01-02", [charts.Segment(2, "c-done", "2 <done>")])], "days")
    assert "&lt;done&gt;" in columns and "01-02" in columns
    assert "nothing to show" in charts.bar_rows([], "empty")


def hand_built_runs(store: Store) -> None:
    """Three ended `support` runs (one with a recovered fault, one failed after a
    compensation), one `ops` run with a person's decision, one `support` run in flight."""
    runs: list[tuple[str, str, RunStatus, list[NewEvent]]] = [
        ("h-1", "support", "completed", [NewEvent("tool", {"tool": "lookup", "ms": 200}, "a")]),
        (
            "h-2",
            "support",
            "completed",
            [
                NewEvent("fault_injected", {"fault": "worker_crash", "expect": "same"}, "a"),
                NewEvent("model_reply", {"agent": "triage", "cost": "0.25"}, "t"),
            ],
        ),
        ("h-3", "support", "failed", [NewEvent("compensated", {"cost": "0.5"}, "c")]),
        (
            "h-4",
            "ops",
            "completed",
            [
                NewEvent("checkpoint", {"id": "d", "options": ["approve", "reject"]}, "d"),
                NewEvent("decided", {"choice": "reject", "by": "ana"}, "d"),
            ],
        ),
        ("h-5", "support", "waiting", []),
    ]
    for run_id, workflow_class, status, events in runs:
        store.create_run(NewRun(run_id, "review", {}, workflow_class))
        store.commit(Batch(run_id, events=events, run=RunUpdate(status=status)))


def test_the_metrics_are_compute_metrics(store: Store) -> None:
    hand_built_runs(store)
    client = console(store)
    for period, since in (("all", None), ("30d", period_of("30d", store.now()).since)):
        got = client.get(f"/api/metrics?period={period}").json()
        assert got == {"period": period, **compute_metrics(store, since=since).to_json()}
    support = next(c for c in got["classes"] if c["class"] == "support")
    assert support["workflow_completion_rate"] == {"numerator": 2, "denominator": 3, "value": 2 / 3}
    assert support["recovery_by_fault"]["worker_crash"]["denominator"] == 1
    assert support["in_flight"] == 1


def figure(page: str, label: str, workflow_class: str) -> str:
    """The text of the metrics table's cell for one figure and class."""
    row = re.search(rf"<tr[^>]*>\s*<td>{label}</td>.*?</tr>", page, re.S)
    assert row is not None, label
    cell = re.search(
        rf'<td class="cell[^"]*" data-class="{workflow_class}"[^>]*>(.*?)</td>', row[0]
    )
    assert cell is not None, (label, workflow_class)
    return " ".join(re.sub(r"<[^>]+>", " ", cell[1]).split())


def test_the_metrics_page_shows_every_figure_with_its_counts(store: Store) -> None:
    hand_built_runs(store)
    page = console(store).get("/product-metrics?period=all").text
    for label, support in (
        ("workflow completion rate", "66.7% 2/3"),
        ("fault recovery rate", "100.0% 1/1"),
        ("worker_crash", "100.0% 1/1"),
        ("runs with every fault recovered", "100.0% 1/1"),
        ("tool selection accuracy", "n/a 0/0"),
        ("tool parameter accuracy", "n/a 0/0"),
        ("trajectory match rate", "n/a 0/0"),
        ("unsafe action rate", "0.0% 0/1"),
        ("cost per successful workflow", "$0.3750 $0.7500/2"),
        ("human intervention rate", "0.0% 0/3"),
        ("planned checkpoint rate", "0.0% 0/3"),
        ("unplanned repair rate", "0.0% 0/3"),
        ("human override rate", "n/a 0/0"),
        ("effect keys committed twice", "0"),
        ("journal entries missing", "0"),
    ):
        assert figure(page, label, "support") == support, label
    assert figure(page, "runs", "support") == "3 +1 in flight"
    assert figure(page, "human override rate", "ops") == "100.0% 1/1"
    assert figure(page, "worker_crash", "ops") == "n/a 0/0"
    assert figure(page, "workflow completion rate", "all") == "75.0% 3/4"  # two classes: a total
    parts = re.findall(r'<span class="swatch [\w-]+"></span>([\w ]+)</td>', page)
    assert parts == ["model", "tools", "compute", "human review", "repair"]


def test_metrics_views_are_kept_until_a_run_starts_or_ends(store: Store) -> None:
    hand_built_runs(store)
    metrics = ConsoleMetrics()
    first = metrics.view(store, "all")
    assert metrics.view(store, "all") is first
    store.commit(Batch("h-5", events=[], run=RunUpdate(status="completed")))
    again = metrics.view(store, "all")
    assert again is not first
    assert again.report.by_class("support") is not None
    assert again.report.total.in_flight == 0 and first.report.total.in_flight == 1
    days = again.daily["support"]
    assert sum(d.completed for d in days) == 3 and sum(d.failed for d in days) == 1


def test_periods() -> None:
    assert period_of("1d", 86400.0 + 130.0) == Period(120.0, "1d")
    assert period_of("all", 5.0) == Period(None, "all")
    assert period_of("bogus", 0.0).label == "7d"


# ---- PostgreSQL -------------------------------------------------------------------------------


def test_console_on_postgres(pg_url: str, program: IRProgram) -> None:
    with open_store(pg_url) as pg:
        start(pg, program, "pg-1")
        client = console(pg, execute=True)
        assert client.get("/runs").status_code == 200
        assert client.get("/api/runs").json()["counts"]["waiting"] == 1
        assert "manager_review" in client.get("/inbox").text
        assert client.get("/runs/pg-1").status_code == 200
        assert decide(client, "pg-1", "approve").status_code == 200
        wait_for(pg, "pg-1", "completed")
