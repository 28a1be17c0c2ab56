"""The journal outbox: notifications written in the same commit as the state change that
causes them, delivered at least once afterwards (`mnlang.outbox.delivery`).

A run's commit that ends it carries a `run.ended` message, one that opens a checkpoint a
`checkpoint.opened` message per checkpoint (`messages_of`). Both go into the `outbox`
table inside the commit's transaction, so a crash before the commit loses the state
change and its message together, and a crash after it keeps both: no notification is
lost, none is invented. Each message's id is derived from what caused it (the run, the
type, the checkpoint), so a commit that is replayed writes no second row, and a receiver
sees one id however often the message is delivered.

The delivery loop (in `mnc serve`) routes each new message to the sinks that want it
(`[webhooks.NAME]` of mnlang.toml, `mnlang.outbox.config`), then claims deliveries with
a lease, posts them, and records every attempt; a failed one is tried again with
exponential backoff up to a cap. Telemetry spans can move onto the same mechanism (a
sink type beside webhooks); `mnc export traces` keeps its own cursor for now.
"""

from __future__ import annotations

import hashlib
from typing import Final

from mnlang.stores.base import (
    TERMINAL_STATUSES,
    UNSET,
    Batch,
    Json,
    OutboxMessage,
)

RUN_ENDED: Final = "run.ended"
CHECKPOINT_OPENED: Final = "checkpoint.opened"
EVENT_TYPES: Final = (RUN_ENDED, CHECKPOINT_OPENED)


def event_id(type_: str, run_id: str, ref: str = "") -> str:
    """The constant id of the message of `type_` about `run_id` (and `ref`, the
    checkpoint): the same cause always gives the same id."""
    digest = hashlib.sha256(f"{type_}\n{run_id}\n{ref}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def messages_of(batch: Batch) -> list[OutboxMessage]:
    """The outbox messages a run's commit causes: a checkpoint opened, the run ended."""
    out = [
        OutboxMessage(
            event_id(CHECKPOINT_OPENED, batch.run_id, c.checkpoint_id),
            CHECKPOINT_OPENED,
            {"checkpoint": c.name, "checkpoint_id": c.checkpoint_id, "request": c.request},
        )
        for c in batch.open_checkpoints
    ]
    update = batch.run
    if update is not None and update.status in TERMINAL_STATUSES:
        data: dict[str, Json] = {"status": update.status}
        if update.result is not UNSET:
            data["result"] = update.result
        if update.error is not UNSET:
            data["error"] = update.error
        out.append(OutboxMessage(event_id(RUN_ENDED, batch.run_id), RUN_ENDED, data))
    return out
