"""Webhooks out of the journal outbox, over real HTTP: `mnc serve` delivers `run.ended`
and `checkpoint.opened` to a real receiver on localhost, signed, retried with backoff,
each attempt visible in the API and `mnc deliveries`; kill -9 of the server mid-delivery
sends the event again with its id."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mnlang.outbox.signing import BadSignature, verify_stripe
from tests.api.server import ADMIN_TOKEN, SHOP, Served, env_for, serve
from tests.webhooks.receiver import receiver

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = "whsec-for-the-outbox-tests-0123456789"


def project(folder: Path, url: str, **more: Any) -> Path:
    settings = {"backoff": 0.2, "max_attempts": 4, **more}
    lines = [
        "[webhooks.ops]",
        f'url = "{url}"',
        'events = ["run.ended", "checkpoint.opened"]',
        'secret_env = "OPS_SECRET"',
        *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
    ]
    (folder / "mnlang.toml").write_text("\n".join(lines) + "\n")
    return folder


def call(served: Served, method: str, path: str, **kw: Any) -> httpx2.Response:
    return httpx2.request(method, served.url + path, headers=ADMIN, timeout=10, **kw)


def start_order(served: Served, run_id: str) -> None:
    body = {"source": SHOP.read_text(), "path": str(SHOP)}
    assert call(served, "POST", "/api/v1/programs", json=body).status_code == 201
    start = {"workflow": "order", "input": {"id": run_id, "amount": "5.00"}, "run_id": run_id}
    assert call(served, "POST", "/api/v1/runs", json=start).status_code == 201


def deliveries(served: Served, run_id: str, count: int) -> list[dict[str, Any]]:
    """The run's deliveries once `count` of them are settled (delivered or failed)."""
    deadline = time.monotonic() + 20
    while True:
        found = call(served, "GET", f"/api/v1/runs/{run_id}/deliveries").json()["deliveries"]
        if sum(d["status"] != "pending" for d in found) >= count:
            return list(found)
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def test_run_ended_and_checkpoint_opened_are_delivered_signed_and_retried(
    tmp_path: Path,
) -> None:
    with receiver() as got:
        got.answers = [500]  # the first attempt fails: tried again after the backoff
        env = {"OPS_SECRET": SECRET}
        with serve(tmp_path / "journal.db", cwd=project(tmp_path, got.url), env=env) as served:
            start_order(served, "o1")
            [opened] = got.wait_for(2)[1:]
            decision = {"choice": "reject", "comment": "no"}
            path = "/api/v1/runs/o1/checkpoints/review/decision"
            assert call(served, "POST", path, json=decision).status_code == 200
            ended = got.wait_for(3)[2]
            found = deliveries(served, "o1", 2)
            webhooks = call(served, "GET", "/api/v1/webhooks").json()
            log = served.log.read_text()
    # signed over the raw bytes, Stripe style, with a timestamp
    for c in (opened, ended):
        verify_stripe(SECRET.encode(), c.body, c.headers["Mnc-Signature"], time.time())
        assert c.headers["Mnc-Event-Id"] == c.event["id"]
    with pytest.raises(BadSignature):
        verify_stripe(
            SECRET.encode(), opened.body + b" ", opened.headers["Mnc-Signature"], time.time()
        )
    assert opened.event["type"] == "checkpoint.opened"
    assert opened.event["data"]["object"]["checkpoint"] == "review"
    assert opened.event["data"]["object"]["run_id"] == "o1"
    assert ended.event["type"] == "run.ended"
    assert ended.event["data"]["object"]["status"] == "completed"
    assert ended.event["data"]["object"]["result"] == "rejected by admin"
    # the failed first attempt was the same event, with the same id
    assert got.calls[0].event["id"] == opened.event["id"]
    by_type = {d["type"]: d for d in found}
    attempts = by_type["checkpoint.opened"]["attempt_log"]
    assert [a["status_code"] for a in attempts] == [500, 200]
    assert attempts[0]["error"].startswith("HTTP 500")
    assert by_type["run.ended"]["status"] == "delivered"
    assert by_type["run.ended"]["event"] == ended.event
    assert webhooks == {
        "webhooks": [
            {
                "name": "ops",
                "url": got.url,
                "events": ["run.ended", "checkpoint.opened"],
                "workflows": None,
                "signed": True,
            }
        ]
    }
    assert SECRET not in log
    # `mnc deliveries` shows the same
    shown = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "deliveries", "--run", "o1", "--json"],
        env=env_for(tmp_path / "journal.db"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in shown.splitlines()]
    assert {r["event_id"]: r["status"] for r in rows} == {
        opened.event["id"]: "delivered",
        ended.event["id"]: "delivered",
    }


def test_a_receiver_that_keeps_failing_ends_failed_and_redeliver_sends_it_again(
    tmp_path: Path,
) -> None:
    with receiver() as got:
        got.answers = [503, 503]
        env = {"OPS_SECRET": SECRET}
        folder = project(tmp_path, got.url, max_attempts=2)
        with serve(tmp_path / "journal.db", cwd=folder, env=env) as served:
            start_order(served, "o2")
            [failed] = deliveries(served, "o2", 1)
            assert failed["status"] == "failed"
            assert [a["status_code"] for a in failed["attempt_log"]] == [503, 503]
            again = {"event_id": failed["event_id"], "webhook": "ops"}
            answer = call(served, "POST", "/api/v1/deliveries/redeliver", json=again)
            assert answer.status_code == 202, answer.text
            got.wait_for(3)
            [done] = deliveries(served, "o2", 1)
            while done["status"] != "delivered":
                time.sleep(0.05)
                [done] = deliveries(served, "o2", 1)
    assert {c.event["id"] for c in got.calls} == {failed["event_id"]}
    assert [a["status_code"] for a in done["attempt_log"]] == [503, 503, 200]


@pytest.mark.slow
def test_kill_9_during_an_outbound_delivery_resends_it_with_the_same_id(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    env = {"OPS_SECRET": SECRET, "MNC_DELIVERY_LEASE": "1"}
    folder = project(tmp_path, "http://placeholder")
    with receiver() as got:
        project(tmp_path, got.url)
        got.hang = threading.Event()
        got.hang.set()  # the receiver takes the call and never answers
        with serve(db, cwd=folder, env=env) as served:
            start_order(served, "o3")
            [first] = got.wait_for(1)
            served.kill()  # mid-delivery: the request is out, no answer read or recorded
        got.hang.clear()
        with serve(db, cwd=folder, env=env) as served:
            calls = got.wait_for(2)
            [done] = deliveries(served, "o3", 1)
    assert [c.event["id"] for c in calls] == [first.event["id"]] * 2
    assert calls[1].body == first.body  # the same event, byte for byte (signed anew)
    assert done["status"] == "delivered"
    # the killed attempt never recorded; the one that got its answer did
    assert [a["status_code"] for a in done["attempt_log"]] == [200]


def test_the_project_file_of_docs_webhooks_md_is_valid(tmp_path: Path) -> None:
    from mnlang.project import load

    text = (Path(__file__).parent.parent / "docs" / "webhooks.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "mnlang.toml").write_text(block)
    found = load(tmp_path / "mnlang.toml")
    assert found.webhooks["ops"].workflows == ("order",)
    assert found.webhooks["ops"].delay(3) == 8.0
    assert found.inbound["stripe"].id_source == "$.id"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[webhooks.a]\nurl = "ftp://x"\nevents = ["run.ended"]', "http:// or https://"),
        ('[webhooks.a]\nurl = "http://x"\nevents = ["run.started"]', "run.ended"),
        ('[webhooks.a]\nurl = "http://x"\nevents = ["run.ended"]\nsecret = "s"', "never written"),
        (
            '[inbound.a]\npath = "/api/x"\nevent = "e"\nkey = "$.k"\nverify = "github"\n'
            'secret_env = "S"',
            "under /hooks/",
        ),
        (
            '[inbound.a]\npath = "/hooks/a"\nevent = "e"\nverify = "github"\nsecret_env = "S"',
            "`key` or `run`",
        ),
        (
            '[inbound.a]\npath = "/hooks/a"\nevent = "e"\nkey = "$.k"\nverify = "md5"\n'
            'secret_env = "S"',
            '"github" or "stripe"',
        ),
    ],
)
def test_a_wrong_table_is_named_with_the_file(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "mnlang.toml").write_text(table + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "deliveries"],
        cwd=tmp_path,
        env=env_for(tmp_path / "journal.db"),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert message in done.stderr and "mnlang.toml" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "journal.db").exists()
