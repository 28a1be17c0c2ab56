"""The outbox's delivery loop: route new outbox events to the webhooks that want them,
claim due deliveries with a lease, post each, record the attempt.

At least once: a delivery is marked done only after its receiver answered 2xx, so a
crash between the answer and the record sends it again, with the same event id (the
receiver deduplicates on it). A process that dies mid-delivery leaves a lease that
expires; another loop (or the same server started again) then takes it over. A failure
(no answer, or a status other than 2xx) is tried again after `Webhook.delay`: doubling
from `backoff` up to `max_backoff`; after `max_attempts` the delivery is `failed`, kept
with its attempts for `mnc deliveries` and the API, and `mnc deliveries retry` sends it
again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Final

from mnlang import redact
from mnlang.outbox.config import Webhook
from mnlang.outbox.signing import sign_stripe
from mnlang.stores.base import Delivery, Json, OutboxEvent, Store, StoreError

LEASE_ENV: Final = "MNC_DELIVERY_LEASE"
"""Seconds a loop holds a claimed delivery (default 60): how long a crashed server's
deliveries wait before another loop sends them again. Longer than any webhook timeout."""

SIGNATURE_HEADER: Final = "Mnc-Signature"
EVENT_ID_HEADER: Final = "Mnc-Event-Id"
_LOG = logging.getLogger("mnlang.outbox")


def event_object(event: OutboxEvent) -> dict[str, Json]:
    """The JSON a webhook receives, shaped as Stripe's event objects are."""
    return {
        "id": event.event_id,
        "object": "event",
        "type": event.type,
        "created": int(event.created_at),
        "data": {
            "object": {
                "run_id": event.run_id,
                "workflow": event.workflow,
                **(event.data if isinstance(event.data, dict) else {"value": event.data}),
            }
        },
    }


def event_body(event: OutboxEvent) -> bytes:
    return json.dumps(event_object(event), separators=(",", ":"), sort_keys=True).encode()


class DeliveryLoop:
    """Delivers the outbox to `webhooks` until `stop` is set (`run`), or one pass at a
    time (`route`, `deliver_due`) for tests and `--once` callers."""

    def __init__(
        self,
        store: Store,
        webhooks: Mapping[str, Webhook],
        *,
        owner: str | None = None,
        lease: float | None = None,
        poll: float = 0.5,
    ) -> None:
        import httpx2

        self.store = store
        self.webhooks = dict(webhooks)
        self.owner = owner or f"deliver-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease = lease if lease is not None else float(os.environ.get(LEASE_ENV) or 60)
        self.poll = poll
        self.client = httpx2.Client(follow_redirects=False)
        for webhook in self.webhooks.values():
            secret = webhook.secret()
            if secret is not None:
                redact.register(secret.decode())

    def route(self) -> int:
        """Give each new outbox event a delivery per webhook that wants it."""
        events = self.store.unrouted_outbox(100)
        if events:
            self.store.route_outbox(
                {
                    e.event_id: [
                        w.name for w in self.webhooks.values() if w.wants(e.type, e.workflow)
                    ]
                    for e in events
                }
            )
        return len(events)

    def deliver_due(self) -> int:
        claimed = self.store.claim_deliveries(self.owner, self.lease, 10)
        for delivery in claimed:
            self.attempt(delivery)
        return len(claimed)

    def attempt(self, delivery: Delivery) -> None:
        import httpx2

        webhook = self.webhooks.get(delivery.sink)
        code: int | None = None
        if webhook is None:
            error: str | None = f"webhook `{delivery.sink}` is no longer in mnlang.toml"
            self._finish(delivery, None, error, "failed")
            return
        secret = webhook.secret()
        if webhook.secret_env is not None and secret is None:
            error = f"the signing secret's variable {webhook.secret_env} is not set"
        else:
            body = event_body(delivery.event)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "mnlang-webhooks",
                EVENT_ID_HEADER: delivery.event.event_id,
                "Mnc-Event-Type": delivery.event.type,
            }
            if secret is not None:
                headers[SIGNATURE_HEADER] = sign_stripe(secret, body, int(time.time()))
            try:
                response = self.client.post(
                    webhook.url, content=body, headers=headers, timeout=webhook.timeout
                )
                code = response.status_code
                error = None if 200 <= code < 300 else f"HTTP {code}: {response.text[:200]}"
            except httpx2.HTTPError as e:
                error = f"{type(e).__name__}: {e}"
        if error is None:
            self._finish(delivery, code, None, "delivered")
        elif delivery.attempts + 1 >= webhook.max_attempts:
            self._finish(delivery, code, error, "failed")
        else:
            delay = webhook.delay(delivery.attempts + 1)
            self._finish(delivery, code, error, "pending", delay)

    def _finish(
        self,
        delivery: Delivery,
        code: int | None,
        error: str | None,
        outcome: str,
        retry_in: float = 0.0,
    ) -> None:
        if error is not None:
            error = redact.redact(error)
            _LOG.warning(
                "delivery of %s to %s failed: %s", delivery.event.event_id, delivery.sink, error
            )
        self.store.finish_attempt(
            delivery.event.event_id,
            delivery.sink,
            self.owner,
            status_code=code,
            error=error,
            outcome=outcome,  # type: ignore[arg-type]
            retry_in=retry_in,
        )

    def run(self, stop: threading.Event) -> None:
        """Route and deliver until `stop` is set; a store that cannot be reached is tried
        again at the next poll."""
        while not stop.is_set():
            try:
                busy = self.route() + self.deliver_due()
            except StoreError as e:
                _LOG.warning("the outbox cannot be read: %s", e.message)
                busy = 0
            if not busy:
                stop.wait(self.poll)
        self.client.close()

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="mnc-deliver", daemon=True)
        thread.start()
        return thread, stop
