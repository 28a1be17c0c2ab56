"""Server-sent events for the console's live parts: one journal watcher, many browsers.

A live part (`#live`) follows a topic: the runs list under its filters, one run, or the
approvals inbox. A browser opens one event stream per page; `LiveHub` keeps a single
background task that, every `interval` seconds while any stream is open, asks the store
for the fingerprint of each topic that has subscribers (once per topic, however many
browsers follow it) and wakes the subscribers whose page no longer matches. They get a
`changed` event carrying the new fingerprint as its id, and the page answers it by
fetching its fragment, which is rendered for that user. So a connected browser costs a
subscriber record and a socket, never a query loop of its own; with no stream open the
console does no queries.

The stream starts with `retry:` and sends a keep-alive comment every `keepalive`
seconds; a browser that reconnects sends the id of the last event it got
(`Last-Event-ID`) and is told at once if the topic moved on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

from mnlang.stores.base import StoreError

log = logging.getLogger(__name__)

Topic = TypeVar("Topic", bound=Hashable)

INTERVAL = 0.5
KEEPALIVE = 15.0
RETRY_MS = 2000
MAX_SUBSCRIBERS = 1000


@dataclass(eq=False)
class Subscriber(Generic[Topic]):
    """One open stream: the fingerprint its page shows and the one it should show."""

    topic: Topic
    shown: str
    latest: str | None = None
    dropped: bool = False
    """The watcher failed: the stream ends, and the browser's reconnection starts another."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class LiveHub(Generic[Topic]):
    """Watches the journal once for every open stream, and fans the changes out.

    `fingerprints` gives the current fingerprint of each topic it is asked about, read
    from the store; it is called on a worker thread, once per tick for all topics.
    """

    def __init__(
        self,
        fingerprints: Callable[[Sequence[Topic]], dict[Topic, str]],
        *,
        interval: float = INTERVAL,
        keepalive: float = KEEPALIVE,
        retry_ms: int = RETRY_MS,
        max_subscribers: int = MAX_SUBSCRIBERS,
    ) -> None:
        self.fingerprints = fingerprints
        self.interval = interval
        self.keepalive = keepalive
        self.retry_ms = retry_ms
        self.max_subscribers = max_subscribers
        self.ticks = 0
        """How many times the watcher has read the fingerprints (for tests and stats)."""
        self._topics: dict[Topic, set[Subscriber[Topic]]] = {}
        self._count = 0
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self._stop = asyncio.Event()

    @property
    def subscribers(self) -> int:
        """How many streams are open."""
        return self._count

    @property
    def refusal(self) -> str | None:
        """Why a new stream would be refused now, or `None`."""
        if self._closed:
            return "the console is shutting down"
        if self.subscribers >= self.max_subscribers:
            return f"{self.max_subscribers} live streams are open already"
        return None

    def _subscribe(self, topic: Topic, shown: str) -> Subscriber[Topic]:
        subscriber = Subscriber(topic, shown)
        self._topics.setdefault(topic, set()).add(subscriber)
        self._count += 1
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="mnc-ui-live")
            self._watcher.add_done_callback(self._watcher_ended)
        return subscriber

    def _unsubscribe(self, subscriber: Subscriber[Topic]) -> None:
        subscribers = self._topics.get(subscriber.topic, set())
        if subscriber not in subscribers:
            return
        subscribers.remove(subscriber)
        self._count -= 1
        if not subscribers:
            del self._topics[subscriber.topic]

    def close(self) -> None:
        """End every stream and the watcher (the server is shutting down)."""
        self._closed = True
        self._stop.set()
        for subscribers in self._topics.values():
            for subscriber in subscribers:
                subscriber.wake.set()

    def open(self, topic: Topic, shown: str) -> Subscriber[Topic] | str:
        """A subscription counted at once, or why there is none (`refusal`): checking and
        counting in one step of the event loop keeps a burst within `max_subscribers`.
        Pass it to `follow`, and to `unsubscribe` if the response never starts."""
        refusal = self.refusal
        return refusal if refusal is not None else self._subscribe(topic, shown)

    async def unsubscribe(self, subscriber: Subscriber[Topic]) -> None:
        """End a subscription (again is harmless); async, to run on the event loop."""
        self._unsubscribe(subscriber)

    async def stream(self, topic: Topic, shown: str) -> AsyncIterator[str]:
        """The text of the event stream of a page following `topic` and showing `shown`;
        it subscribes when the response starts (see `open` to count it before)."""
        async for text in self.follow(self._subscribe(topic, shown)):
            yield text

    async def follow(self, subscriber: Subscriber[Topic]) -> AsyncIterator[str]:
        """The text of a subscription's event stream; it unsubscribes when the browser
        goes (the response is cancelled) or the hub closes."""
        try:
            yield f"retry: {self.retry_ms}\n\n"
            while not self._closed and not subscriber.dropped:
                try:
                    await asyncio.wait_for(subscriber.wake.wait(), self.keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                subscriber.wake.clear()
                latest = subscriber.latest
                if self._closed or subscriber.dropped or latest in (None, subscriber.shown):
                    continue
                subscriber.shown = latest
                yield f"event: changed\nid: {latest}\ndata: {latest}\n\n"
        finally:
            self._unsubscribe(subscriber)

    def _watcher_ended(self, watcher: asyncio.Task[None]) -> None:
        if watcher.cancelled() or watcher.exception() is None:
            return
        log.error("the live parts' watcher failed", exc_info=watcher.exception())
        for subscribers in self._topics.values():
            for subscriber in subscribers:
                subscriber.dropped = True
                subscriber.wake.set()

    async def _watch(self) -> None:
        while self._topics and not self._closed:
            topics = list(self._topics)
            try:
                current = await run_in_threadpool(self.fingerprints, topics)
            except StoreError as e:
                # A journal that cannot be read now (a restarting database) may be readable
                # at the next tick; the streams stay open meanwhile.
                log.warning("live parts: %s", e)
                current = {}
            self.ticks += 1
            for topic, fingerprint in current.items():
                for subscriber in self._topics.get(topic, ()):
                    if fingerprint != subscriber.shown:
                        subscriber.latest = fingerprint
                        subscriber.wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
