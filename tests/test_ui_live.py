"""The console's live parts over a real uvicorn server: server-sent events (`/events/...`).

A client reading the stream with httpx2 sees a decision within a second, keep-alives,
reconnection by `Last-Event-ID`, refusals without a token, one watcher however many
browsers follow the same page, and streams that end when the server stops.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from starlette.testclient import TestClient

from mnlang import api
from mnlang.ir.model import IRProgram
from mnlang.runtime.run import start_run
from mnlang.stores import open_store
from mnlang.stores.base import Store, StoreUnavailable
from mnlang.ui.app import create_app
from mnlang.ui.auth import Authenticator
from mnlang.ui.live import LiveHub
from mnlang.ui.queries import InboxTopic, RunTopic, Topic, live_fingerprints, run_fingerprint
from mnlang.ui.server import console_server

ADMIN_TOKEN = "admin-token-0123456789abcdef"
BASE = "http://127.0.0.1:8737"

WORKFLOW = """
workflow approval(n: int) -> str {
  class: "ops"
  decision = checkpoint go_ahead {
    ask: "Go ahead with {n}?"
    timeout: 1d
    on_timeout: reject
  }
  if not decision.approved {
    fail "rejected"
  }
  return "done {n}"
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> IRProgram:
    source = tmp_path_factory.mktemp("live") / "approval.mn"
    source.write_text(WORKFLOW, "utf-8")
    return api.load_program(source)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "journal.db")
    yield opened
    opened.close()


def start(store: Store, program: IRProgram, run_id: str) -> str:
    outcome = start_run(store, program, "approval", {"n": 1}, run_id=run_id)
    assert outcome.status == "waiting", outcome
    return run_id


@dataclass
class Console:
    url: str
    hub: LiveHub[Topic]
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


@pytest.fixture
def serve() -> Iterator[Callable[..., Console]]:
    started: list[Console] = []

    def serve_(store: Any, *, admin_token: str | None = None, keepalive: float = 15.0) -> Console:
        auth = Authenticator(admin_token=admin_token, tokens=None, loopback=True)
        app = create_app(store, auth, execute=False)
        hub: LiveHub[Topic] = app.state.console.live
        hub.keepalive = keepalive
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        server = console_server(config, hub)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.02)
        console = Console(f"http://127.0.0.1:{sock.getsockname()[1]}", hub, server, thread)
        started.append(console)
        return console

    yield serve_
    for console in started:
        console.stop()
        assert not console.thread.is_alive(), "the console did not stop"


@dataclass
class Block:
    """One block of an event stream: an event, a `retry:` line or a comment."""

    event: str | None = None
    id: str | None = None
    data: str | None = None
    retry: str | None = None
    comment: str | None = None


class EventStream:
    """The blocks of an open event stream, read as they come. The stream is subscribed once
    its first block (`retry:`) has arrived. Keep it referenced while the stream should stay
    open: httpx2 closes the connection when its line iterator is collected."""

    def __init__(self, response: httpx2.Response) -> None:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self.lines = response.iter_lines()
        assert self.next().retry == "2000"

    def next(self) -> Block | None:
        """The next block, or `None` once the server ended the stream."""
        block = Block()
        for line in self.lines:
            if not line:
                return block
            if line.startswith(":"):
                block.comment = line[1:].strip()
            else:
                name, _, value = line.partition(":")
                setattr(block, name, value.removeprefix(" "))
        return None

    def next_event(self) -> Block:
        """The next event, skipping keep-alives."""
        while (block := self.next()) is not None:
            if block.event is not None:
                return block
        raise AssertionError("the stream ended without an event")

    def rest(self) -> list[Block]:
        """Every block until the server ends the stream (httpx2 times out if it does not)."""
        found: list[Block] = []
        while (block := self.next()) is not None:
            found.append(block)
        return found

    def next_comment(self) -> str | None:
        block = self.next()
        assert block is not None and block.event is None, block
        return block.comment


@contextmanager
def stream(
    client: httpx2.Client, url: str, headers: dict[str, str] | None = None
) -> Iterator[EventStream]:
    with client.stream("GET", url, headers=headers) as response:
        events = EventStream(response)  # held here while the stream is open
        yield events


def decide(client: httpx2.Client | TestClient, run_id: str, choice: str = "approve") -> None:
    page = client.get("/runs").text
    token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert token is not None
    answer = client.post(
        "/actions/decide",
        data={"run": run_id, "checkpoint": "decision", "choice": choice, "csrf": token[1]},
        headers={"accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text


def current(store: Store, run_id: str) -> str:
    run = store.get_run(run_id)
    assert run is not None
    return run_fingerprint(store, run)


# ---- events ---------------------------------------------------------------------------------


def test_a_decision_reaches_the_streams_within_a_second(
    store: Store, program: IRProgram, serve: Callable[..., Console]
) -> None:
    start(store, program, "live-1")
    console = serve(store)
    shown = current(store, "live-1")
    with (
        httpx2.Client(base_url=console.url, timeout=5) as client,
        stream(client, f"/events/run?id=live-1&fp={shown}") as run_events,
        stream(client, "/events/inbox") as inbox_events,
    ):
        assert inbox_events.next_event().event == "changed"  # the page showed nothing yet
        decided = time.monotonic()
        decide(client, "live-1")
        event = run_events.next_event()
        assert time.monotonic() - decided < 1.0
        assert event.event == "changed"
        assert event.id == event.data == current(store, "live-1") != shown
        assert inbox_events.next_event().event == "changed"
        assert time.monotonic() - decided < 1.0
        # what the page fetches next: the new fragment, then 204 at its fingerprint
        fragment = client.get(f"/fragments/run?id=live-1&fp={shown}")
        assert fragment.status_code == 200 and f"fp={event.id}" in fragment.text
        assert client.get(f"/fragments/run?id=live-1&fp={event.id}").status_code == 204


def test_keep_alives_and_reconnection(
    sqlite_store: Store, program: IRProgram, serve: Callable[..., Console]
) -> None:
    start(sqlite_store, program, "live-2")
    console = serve(sqlite_store, keepalive=0.3)
    shown = current(sqlite_store, "live-2")
    with httpx2.Client(base_url=console.url, timeout=5) as client:
        with stream(client, f"/events/run?id=live-2&fp={shown}") as events:
            began = time.monotonic()
            assert events.next_comment() == "keep-alive"
            assert events.next_comment() == "keep-alive"  # and nothing changed meanwhile
            assert time.monotonic() - began < 1.5
        # A browser reconnecting sends the id of the last event it saw, which wins over the
        # `fp` of its page.
        stale = {"last-event-id": "an-older-fingerprint"}
        with stream(client, f"/events/run?id=live-2&fp={shown}", stale) as again:
            assert again.next_event().id == shown
        seen = {"last-event-id": shown}
        with stream(client, "/events/run?id=live-2&fp=an-older-one", seen) as again:
            assert again.next_comment() == "keep-alive"


def test_streams_are_refused_without_a_token(
    sqlite_store: Store, program: IRProgram, serve: Callable[..., Console]
) -> None:
    start(sqlite_store, program, "live-3")
    console = serve(sqlite_store, admin_token=ADMIN_TOKEN)
    with httpx2.Client(base_url=console.url, timeout=5) as client:
        for headers in (
            {},
            {"authorization": "Bearer not-the-token"},
            {"cookie": "mnc_ui_token=not-the-token"},
            {"accept": "text/event-stream"},
        ):
            refused = client.get("/events/runs", headers=headers)
            assert refused.status_code == 401, headers
            assert not refused.headers["content-type"].startswith("text/event-stream")
        good = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.get("/events/nothing", headers=good).status_code == 404
        assert client.get("/events/run?id=no-such-run", headers=good).status_code == 404
        with stream(client, "/events/runs", good), stream(client, "/events/run?id=live-3", good):
            assert console.hub.subscribers == 2
            console.hub.max_subscribers = 2
            full = client.get("/events/inbox", headers=good)
            assert full.status_code == 503 and "live streams are open" in full.text


# ---- one watcher ----------------------------------------------------------------------------


class CountingStore:
    """The store, counting the calls made to it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls[name] += 1
            return found(*args, **kwargs)

        return counted


def test_many_browsers_share_one_watcher(
    sqlite_store: Store, program: IRProgram, serve: Callable[..., Console]
) -> None:
    for run_id in ("live-a", "live-b"):
        start(sqlite_store, program, run_id)
    counting = CountingStore(sqlite_store)
    console = serve(counting)
    urls = (
        [f"/events/run?id=live-a&fp={current(sqlite_store, 'live-a')}"] * 20
        + [f"/events/run?id=live-b&fp={current(sqlite_store, 'live-b')}"] * 10
        + ["/events/inbox"] * 10
        + ["/events/runs?status=waiting"] * 10
    )
    limits = httpx2.Limits(max_connections=len(urls) + 5)
    with httpx2.Client(base_url=console.url, timeout=5, limits=limits) as client:
        with ExitStack() as streams:
            for url in urls:
                streams.enter_context(stream(client, url))
            assert console.hub.subscribers == 50
            time.sleep(0.6)  # a tick with every stream in
            with counting.lock:
                counting.calls.clear()
            ticks = console.hub.ticks
            time.sleep(1.6)
            with counting.lock:
                calls = dict(counting.calls)
            watched = console.hub.ticks - ticks
            assert 2 <= watched <= 5, watched
            # per tick: the open checkpoints once, each followed run once, the runs page's
            # counts and list once: never once per browser
            assert calls.get("open_checkpoints", 0) <= watched + 1, calls
            assert calls.get("get_run", 0) <= 2 * (watched + 1), calls
            assert calls.get("run_counts", 0) <= watched + 1, calls
            assert calls.get("list_runs", 0) <= watched + 1, calls
        deadline = time.monotonic() + 5
        while console.hub.subscribers:
            assert time.monotonic() < deadline, "closed streams stayed subscribed"
            time.sleep(0.05)
    time.sleep(0.6)
    idle = console.hub.ticks
    time.sleep(1.1)
    assert console.hub.ticks == idle, "the watcher kept reading with no stream open"


def test_fingerprints_are_the_fragments(sqlite_store: Store, program: IRProgram) -> None:
    start(sqlite_store, program, "live-f")
    auth = Authenticator(admin_token=None, tokens=None, loopback=True)
    client = TestClient(create_app(sqlite_store, auth, execute=True), base_url=BASE)
    found = live_fingerprints(sqlite_store, [RunTopic("live-f"), InboxTopic(), RunTopic("gone")])
    assert found[RunTopic("gone")] == "gone"
    run_page = client.get("/runs/live-f").text
    assert f'data-stream="/events/run?id=live-f&amp;fp={found[RunTopic("live-f")]}"' in run_page
    assert f'data-stream="/events/inbox?fp={found[InboxTopic()]}"' in client.get("/inbox").text
    assert (
        'data-stream="/events/runs?status=waiting&amp;fp='
        in client.get("/runs?status=waiting").text
    )
    decide(client, "live-f")
    deadline = time.monotonic() + 10
    while (run := sqlite_store.get_run("live-f")) is None or run.status != "completed":
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    assert "data-stream" not in client.get("/runs/live-f").text  # nothing more to follow


def test_the_watcher_outlives_a_store_error_and_a_failure_ends_the_streams() -> None:
    ticks: list[int] = []

    def fingerprints(topics: Sequence[str]) -> dict[str, str]:
        ticks.append(len(topics))
        if len(ticks) == 1:
            raise StoreUnavailable("the database is restarting")
        if len(ticks) == 2:
            return dict.fromkeys(topics, "new")
        raise RuntimeError("a bug in a fingerprint")

    async def follow() -> tuple[list[str], int]:
        hub = LiveHub(fingerprints, interval=0.01)
        texts = [text async for text in hub.stream("topic", "old")]
        return texts, hub.subscribers

    # the error is logged and the stream stays; the failure ends it (the browser reconnects)
    texts, left = asyncio.run(asyncio.wait_for(follow(), 5))
    assert texts == ["retry: 2000\n\n", "event: changed\nid: new\ndata: new\n\n"]
    assert ticks == [1, 1, 1] and left == 0


# ---- shutdown -------------------------------------------------------------------------------


def test_stopping_the_server_ends_open_streams(
    sqlite_store: Store, program: IRProgram, serve: Callable[..., Console]
) -> None:
    start(sqlite_store, program, "live-s")
    console = serve(sqlite_store)
    with (
        httpx2.Client(base_url=console.url, timeout=5) as client,
        stream(client, f"/events/run?id=live-s&fp={current(sqlite_store, 'live-s')}") as events,
    ):
        began = time.monotonic()
        console.server.should_exit = True
        assert events.rest() == []  # the stream ends, without an error
        console.thread.join(5)
        assert not console.thread.is_alive()
        assert time.monotonic() - began < 3


def test_ctrl_c_stops_mnc_ui_with_streams_open(tmp_path: Path, program: IRProgram) -> None:
    db = tmp_path / "journal.db"
    with open_store(db) as journal:
        start(journal, program, "live-c")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_UI_TOKEN")}
    command = [sys.executable, "-m", "mnlang.cli", "ui", "--db", str(db), "--port", str(port)]
    command.append("--open")  # this test is about shutdown, not authentication
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.get("/api/me")
                    break
                except httpx2.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, "no console"
                    time.sleep(0.1)
            with (
                stream(client, "/events/inbox") as first,
                stream(client, "/events/run?id=live-c") as second,
            ):
                server.send_signal(signal.SIGINT)
                began = time.monotonic()
                first.rest()  # ended by the server, events or not
                second.rest()
                server.wait(timeout=5)
                assert time.monotonic() - began < 3
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=10)


def test_a_burst_of_streams_stays_within_the_cap(
    sqlite_store: Store, serve: Callable[..., Console]
) -> None:
    # Many connections at once, each sending its request before any is answered: the
    # cap must be counted when a stream is accepted, not when its first byte is sent.
    console = serve(sqlite_store)
    console.hub.max_subscribers = 10
    port = int(console.url.rsplit(":", 1)[1])
    request = b"GET /events/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(60)]
    try:
        for sock in sockets:
            sock.sendall(request)
        statuses = [sock.recv(64).split(b" ")[1] for sock in sockets]
        assert statuses.count(b"200") == 10 and statuses.count(b"503") == 50, statuses
        assert console.hub.subscribers == 10
    finally:
        for sock in sockets:
            sock.close()
    deadline = time.monotonic() + 10
    while console.hub.subscribers:
        assert time.monotonic() < deadline, "streams of closed connections stayed counted"
        time.sleep(0.05)
