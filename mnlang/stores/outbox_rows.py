"""Rows of the journal outbox as both stores read them (`Store.claim_deliveries`,
`Store.list_deliveries`): one shape of SELECT, one decoder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

from mnlang.stores.base import Delivery, DeliveryAttempt, DeliveryStatus, OutboxEvent
from mnlang.stores.common import load

DELIVERY_COLUMNS: Final = (
    "o.event_id, o.type, o.run_id, o.workflow, o.data, o.created_at, "
    "d.sink, d.status, d.attempts, d.next_at, d.updated_at, d.lease_owner"
)
"""What `delivery_record` decodes, from `deliveries AS d JOIN outbox AS o`."""

OUTBOX_COLUMNS: Final = "event_id, type, run_id, workflow, data, created_at"


ROUTED_PAGE_SQL: Final = (
    "SELECT o.event_id, o.created_at < %(cutoff)s, "
    "NOT EXISTS (SELECT 1 FROM runs AS r WHERE r.run_id = o.run_id) FROM outbox AS o "
    "WHERE o.routed_at IS NOT NULL AND o.event_id > %(after)s ORDER BY o.event_id "
    "LIMIT %(limit)s"
)
"""A page of routed outbox events for `Store.remove_settled_outbox` (`%(name)s`
parameters; SQLite's are `:name`): each id, whether it is older than the cutoff, and
whether its run is gone."""


def outbox_removable(statuses: Sequence[str], old: bool, run_gone: bool) -> bool:
    """Whether `mnc gc` removes an outbox event whose deliveries have these statuses:
    never while one is pending (undelivered, within its attempts); once the retention
    has passed when each was delivered or given up (`failed`); sooner, with its run,
    when each was delivered (a given-up one stays for the retention, to be redelivered)."""
    if any(s not in ("delivered", "failed") for s in statuses):
        return False
    return old or (run_gone and all(s == "delivered" for s in statuses))


def outbox_event(row: Sequence[Any]) -> OutboxEvent:
    event_id, type_, run_id, workflow, data, created_at = row[:6]
    return OutboxEvent(
        event_id=str(event_id),
        type=str(type_),
        run_id=str(run_id),
        workflow=str(workflow),
        data=load(data, str(run_id), f"outbox event {event_id}"),
        created_at=float(created_at),
    )


def delivery_record(row: Sequence[Any], attempts: Iterable[Sequence[Any]] = ()) -> Delivery:
    sink, status, count, next_at, updated_at, owner = row[6:12]
    return Delivery(
        event=outbox_event(row),
        sink=str(sink),
        status=cast(DeliveryStatus, status),
        attempts=int(count),
        next_at=float(next_at),
        updated_at=float(updated_at),
        lease_owner=None if owner is None else str(owner),
        attempt_log=tuple(
            DeliveryAttempt(
                attempt=int(n),
                at=float(at),
                status_code=None if code is None else int(code),
                error=None if error is None else str(error),
            )
            for n, at, code, error in attempts
        ),
    )
