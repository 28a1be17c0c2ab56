"""What every store does the same way: encode payloads as JSON text, judge a batch's
lease, word the errors for a missing run or a bad time to live, and turn rows of the
tables whose columns are the same everywhere into records. Kept in one place so
that the SQLite and PostgreSQL stores cannot drift apart on the contract's rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, LiteralString

import msgspec

from mnlang.stores.base import (
    Batch,
    Checkpoint,
    DamagedRow,
    Event,
    Json,
    LedgerRow,
    Need,
    Quarantine,
    RunNotFound,
    RunRecord,
    ScheduleRecord,
    Signal,
    StaleLease,
    Timer,
    Tombstone,
)

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


_encode_text = json.encoder.encode_basestring  # what `_ENCODER` does with a str


# msgspec's JSON codec (several times faster than `json`; msgspec is loaded with the
# store's records anyway), used where its result is exactly `json`'s.
_fast_encode = msgspec.json.Encoder().encode
_fast_decode = msgspec.json.Decoder().decode


def dump(value: Json) -> str:
    """Compact JSON text; `TypeError`/`ValueError` for a value that is not JSON."""
    # The scalars most commits carry (a loop's counters, results) skip the encoder's
    # per-call set-up; `_ENCODER` writes them the same way.
    kind = type(value)
    if kind is int:
        return int.__repr__(value)  # type: ignore[arg-type]
    if kind is str:
        return _encode_text(value)  # type: ignore[arg-type]
    if value is None:
        return "null"
    if kind is dict or kind is list:
        return _dump_fast(value)
    return _ENCODER.encode(value)


def _dump_fast(value: Json) -> str:
    """An object or array (every event, every cursor) through msgspec, several times faster
    than `json`. msgspec writes what `json` refuses (NaN and the infinities as `null`, a set
    as an array, a `Decimal`, `bytes` or a datetime as a string): a text that does not read
    back as the value, or a value msgspec refuses, gets `_ENCODER`'s verdict (its error, or
    its text), so the journal takes exactly what it took before."""
    try:
        text = _fast_encode(value)
        if _fast_decode(text) == value:
            return text.decode()
    except Exception:  # `_ENCODER` says what is wrong, as it did before
        pass
    return _ENCODER.encode(value)


def load(text: str | None, run_id: str | None = None, column: str = "a JSON column") -> Json:
    """A column's JSON; `DamagedRow` (naming the run) when it does not decode."""
    if text is None:
        return None
    try:
        return _fast_decode(text)
    except Exception:  # what msgspec refuses `json` reads (NaN, 1e400) or explains
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise DamagedRow(run_id, column, str(e).split(":")[0].lower()) from None


def needs_json(needs: Sequence[Need]) -> list[dict[str, str | None]] | None:
    """A run's needs as its `runs.needs` column holds them; None for none."""
    if not needs:
        return None
    return [{"kind": n.kind, "scope": n.scope, "name": n.name, "digest": n.digest} for n in needs]


def needs_of(value: Json, run_id: str) -> list[Need]:
    """The needs in a `runs.needs` column (decoded JSON); `DamagedRow` when malformed."""
    if value is None:
        return []
    try:
        return [Need(n["kind"], n["scope"], n["name"], n.get("digest")) for n in value]
    except (TypeError, KeyError, AttributeError) as e:
        raise DamagedRow(run_id, "needs", f"not a list of needs ({e})") from None


def listed(row: Sequence[Any], decode: Callable[[Sequence[Any]], RunRecord]) -> RunRecord:
    """A `runs` row for a listing: decoded, or marked damaged (with its plain columns) so
    that one bad row does not hide every other run."""
    try:
        return decode(row)
    except DamagedRow as e:
        return _run_columns(row, None, None, None, {}, [], damaged=e.message)


def check_lease(
    batch: Batch,
    owner: str | None,
    epoch: int,
    expires_at: float | None,
    now: float,
) -> None:
    """Refuse a batch whose lease no longer holds, given the run's lease columns as they
    stand inside the committing transaction and the store's clock."""
    lease = batch.lease
    if lease is not None and lease.run_id != batch.run_id:
        raise ValueError(f"lease of run `{lease.run_id}` used for run `{batch.run_id}`")
    live = owner is not None and expires_at is not None and expires_at > now
    if lease is None:
        if live:
            raise StaleLease(
                f"run `{batch.run_id}` is leased by worker `{owner}`; "
                "a commit without its lease is refused",
                help="acquire the run's lease before committing for it",
            )
        return
    if (owner, epoch) != (lease.owner, lease.epoch):
        raise StaleLease(
            f"lease of worker `{lease.owner}` on run `{batch.run_id}` is stale "
            f"(epoch {lease.epoch}; the run is now at epoch {epoch})",
            help="another worker took the run over; drop this execution of it",
        )
    if not live:
        raise StaleLease(
            f"lease of worker `{lease.owner}` on run `{batch.run_id}` has expired",
            help="renew the lease more often than its time to live",
        )


def run_not_found(run_id: str) -> RunNotFound:
    return RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")


def check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"a lease needs a positive time to live, not {ttl!r}")


def schedule_record(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0],
        workflow=row[1],
        ir_hash=row[2],
        source=row[3],
        spec=load(row[4]),
        next_at=row[5],
        last_at=row[6],
        last_run_id=row[7],
        updated_at=row[8],
        module=row[9],
        paused_at=row[10],
    )


def checkpoint_record(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(
        run_id=row[0],
        checkpoint_id=row[1],
        name=row[2],
        request=load(row[3], row[0], "checkpoint request"),
        status=row[4],
        decision=load(row[5], row[0], "checkpoint decision"),
        decided_by=row[6],
        opened_at=row[7],
        decided_at=row[8],
    )


def event_record(r: Sequence[Any]) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], load(r[6], r[0], "event data"))


def ledger_record(row: Sequence[Any]) -> LedgerRow:
    return LedgerRow(
        key=row[0],
        scope_run_id=row[1] or None,
        args_hash=row[2],
        status=row[3],
        result=load(row[4], row[5], "ledger result"),
        run_id=row[5],
        state=row[6],
        created_at=row[7],
        updated_at=row[8],
    )


def signal_record(r: Sequence[Any]) -> Signal:
    return Signal(r[0], r[1], r[2], load(r[3], r[0], "signal payload"), r[4], r[5], r[6], r[7])


def timer_record(r: Sequence[Any]) -> Timer:
    return Timer(r[0], r[1], r[2], load(r[3], r[0], "timer data"))


QUARANTINE_COLUMNS: LiteralString = "quarantined_at, quarantined_by, quarantine_reason"
"""The columns of `RunRecord.quarantine`, the last but one of a `runs` row as `run_record`
reads it (`cancel_requested_by` follows)."""


def run_record(row: Sequence[Any], waiting_for: Any) -> RunRecord:
    """A `runs` row in the stores' column order; each store decodes `waiting_for` its own way."""
    run_id = row[0]
    return _run_columns(
        row,
        load(row[4], run_id, "args"),
        load(row[5], run_id, "result"),
        load(row[6], run_id, "error"),
        load(row[9], run_id, "meta"),
        waiting_for,
    )


def _run_columns(
    row: Sequence[Any],
    args: Json,
    result: Json,
    error: Json,
    meta: Any,
    waiting_for: Any,
    damaged: str | None = None,
) -> RunRecord:
    """A `runs` row's plain columns, with its JSON columns as decoded by the caller."""
    return RunRecord(
        run_id=row[0],
        workflow=row[1],
        workflow_class=row[2],
        status=row[3],
        args=args,
        result=result,
        error=error,
        parent_run_id=row[7],
        ir_hash=row[8],
        meta=meta,
        waiting_for=waiting_for,
        cancel_requested=bool(row[11]),
        last_seq=row[12],
        lease_owner=row[13],
        lease_epoch=row[14],
        lease_expires_at=row[15],
        created_at=row[16],
        updated_at=row[17],
        finished_at=row[18],
        damaged=damaged,
        quarantine=None if row[19] is None else Quarantine(row[19], row[20], row[21]),
        cancel_requested_by=row[22],
    )


WAITING_FOR_KEY_SQL: LiteralString = (
    "SELECT k.run_id, k.event FROM waiting_keys AS k JOIN runs AS r ON r.run_id = k.run_id "
    "WHERE k.key = %s AND r.status = 'waiting' ORDER BY k.run_id, k.event"
)
"""`Store.waiting_for_key` (`%s` is the key; SQLite's `?`): the `waiting_keys` rows of
the key, through `waiting_keys_by_key`, of the runs waiting now."""


TOMBSTONE_COLUMNS = (
    "run_id, workflow, ir_hash, input_hash, status, created_at, finished_at, removed_at"
)
RUN_ROW_TABLES = (
    "events",
    "cursors",
    "variables",
    "list_items",
    "signals",
    "checkpoints",
    "timers",
    "export_cursors",
)
"""The tables whose rows belong to one run by `run_id` (besides `runs`, its arguments and
the ledger, whose run-scoped rows name the run in `scope`): what removing a run deletes."""


def tombstone_record(row: Sequence[Any]) -> Tombstone:
    return Tombstone(*row)


def tombstone_params(tombstone: Tombstone, now: float) -> tuple[Any, ...]:
    t = tombstone
    return (
        t.run_id,
        t.workflow,
        t.ir_hash,
        t.input_hash,
        t.status,
        t.created_at,
        t.finished_at,
        now,
    )
