"""The journal outbox in both stores: messages written with the commit that causes them
(and not at all when it is refused), routed to sinks, claimed with a lease, attempts
recorded; and the delivery loop against a real receiver, on both stores."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mnlang.outbox import CHECKPOINT_OPENED, RUN_ENDED, event_id, messages_of
from mnlang.outbox.config import Webhook
from mnlang.outbox.delivery import DeliveryLoop
from mnlang.stores.base import (
    Batch,
    NewEvent,
    NewRun,
    OpenCheckpoint,
    OutboxMessage,
    RunUpdate,
    StaleLease,
    Store,
)
from tests.webhooks.receiver import receiver


def ended(run_id: str) -> Batch:
    batch = Batch(
        run_id,
        events=[NewEvent("run_completed")],
        run=RunUpdate(status="completed", result="ok"),
        open_checkpoints=[OpenCheckpoint("cp1", "review", {"ask": "?"})],
    )
    batch.outbox = messages_of(batch)
    return batch


def test_messages_are_written_with_their_commit_once(store: Store) -> None:
    store.create_run(NewRun("r1", "refund", {}))
    store.commit(ended("r1"))
    store.commit(ended("r1"))  # the same causes again: the same ids, no new rows
    events = store.unrouted_outbox()
    assert sorted((e.type, e.event_id) for e in events) == sorted(
        [
            (CHECKPOINT_OPENED, event_id(CHECKPOINT_OPENED, "r1", "cp1")),
            (RUN_ENDED, event_id(RUN_ENDED, "r1")),
        ]
    )
    by_type = {e.type: e for e in events}
    assert by_type[RUN_ENDED].data == {"status": "completed", "result": "ok"}
    assert by_type[RUN_ENDED].workflow == "refund"
    assert by_type[CHECKPOINT_OPENED].data == {
        "checkpoint": "review",
        "checkpoint_id": "cp1",
        "request": {"ask": "?"},
    }


def test_a_refused_commit_writes_no_message(store: Store) -> None:
    store.create_run(NewRun("r1", "refund", {}))
    assert store.acquire_lease("r1", "w1", 30) is not None
    with pytest.raises(StaleLease):
        store.commit(ended("r1"))  # no lease: refused while w1 holds one
    assert store.unrouted_outbox() == []


def test_route_claim_attempt_and_list(store: Store) -> None:
    store.create_run(NewRun("r1", "refund", {}))
    store.commit(Batch("r1", outbox=[OutboxMessage("evt_1", RUN_ENDED, {"status": "failed"})]))
    store.route_outbox({"evt_1": ["a", "b"]})
    store.route_outbox({"evt_1": ["a"]})  # a second router: nothing doubles
    assert store.unrouted_outbox() == []
    claimed = store.claim_deliveries("o1", 30, 10)
    assert sorted(d.sink for d in claimed) == ["a", "b"]
    assert store.claim_deliveries("o2", 30, 10) == []  # leased to o1
    assert not store.finish_attempt(
        "evt_1", "a", "o2", status_code=200, error=None, outcome="delivered"
    )
    assert store.finish_attempt(
        "evt_1", "a", "o1", status_code=500, error="HTTP 500", outcome="pending", retry_in=60
    )
    assert store.finish_attempt(
        "evt_1", "b", "o1", status_code=200, error=None, outcome="delivered"
    )
    assert store.claim_deliveries("o2", 30, 10) == []  # `a` is due in a minute
    listed = {d.sink: d for d in store.list_deliveries(run_id="r1")}
    assert listed["a"].status == "pending" and listed["a"].attempts == 1
    assert [(x.status_code, x.error) for x in listed["a"].attempt_log] == [(500, "HTTP 500")]
    assert listed["b"].status == "delivered"
    assert [d.sink for d in store.list_deliveries(status="delivered")] == ["b"]
    assert store.list_deliveries(run_id="other") == []
    assert [d.sink for d in store.list_deliveries(event_id="evt_1", status="pending")] == ["a"]
    assert store.list_deliveries(event_id="evt_2") == []
    assert store.redeliver("evt_1", "a")
    assert [d.sink for d in store.claim_deliveries("o2", 30, 10)] == ["a"]
    assert not store.redeliver("evt_1", "nobody")


def test_an_expired_lease_is_taken_over(store: Store) -> None:
    store.create_run(NewRun("r1", "refund", {}))
    store.commit(Batch("r1", outbox=[OutboxMessage("evt_1", RUN_ENDED, None)]))
    store.route_outbox({"evt_1": ["a"]})
    assert len(store.claim_deliveries("dead", 0.2, 10)) == 1
    time.sleep(0.3)
    [taken] = store.claim_deliveries("alive", 30, 10)
    assert taken.event.event_id == "evt_1"
    assert not store.finish_attempt(
        "evt_1", "a", "dead", status_code=200, error=None, outcome="delivered"
    )


def test_signal_holders_finds_a_signal_id_read_or_not(store: Store) -> None:
    store.create_run(NewRun("r1", "refund", {}))
    store.create_run(NewRun("r2", "refund", {}))
    assert store.send_signal("r2", "paid", {}, signal_id="inbound:x:1")
    store.commit(Batch("r2", consume_signals=["inbound:x:1"]))
    assert store.signal_holders("inbound:x:1") == ["r2"]
    assert store.signal_holders("inbound:x:2") == []


def test_the_delivery_loop_on_each_store(store: Store, tmp_path: Path) -> None:
    store.create_run(NewRun("r1", "refund", {}))
    store.create_run(NewRun("r2", "other", {}))
    store.commit(ended("r1"))
    store.commit(ended("r2"))
    with receiver() as got:
        got.answers = [502]
        hooks = {
            "ends": Webhook("ends", got.url, (RUN_ENDED,), workflows=("refund",), backoff=0.1),
            "all": Webhook("all", got.url, (RUN_ENDED, CHECKPOINT_OPENED), backoff=0.1),
        }
        loop = DeliveryLoop(store, hooks, lease=5)
        assert loop.route() == 4
        deadline = time.monotonic() + 10
        while len([d for d in store.list_deliveries() if d.status == "delivered"]) < 5:
            loop.deliver_due()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        loop.client.close()
    sent = sorted((c.event["type"], c.event["data"]["object"]["run_id"]) for c in got.calls)
    # 4 events to `all`, r1's end to `ends`, and one of them twice (the 502)
    assert len(sent) == 6
    assert sorted(set(sent)) == sorted(
        {(t, r) for t in (RUN_ENDED, CHECKPOINT_OPENED) for r in ("r1", "r2")}
    )
    assert sum(d.attempts for d in store.list_deliveries()) == 6
