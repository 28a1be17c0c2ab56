"""Sending an `event` to a run: `mnc signal RUN EVENT [JSON] [--key K] [--id ID]`, or
with a callback token: `mnc signal --token T [JSON]`.

A signal goes to the run's mailbox whether or not the run waits for it yet: a run that
reaches `wait event` (or `wait event for key`, which takes only a signal with its key)
later finds it there. A signal id makes a send idempotent: the same id sent again is
ignored (a webhook retried by its sender delivers once). The event is looked up in the
run's own program and its payload is checked against the event's type before it is
stored, so a bad payload is refused here instead of failing the run later.

A signal that no wait of the run could ever take is refused, so the mailbox holds only
what some wait may still take: an event the run's workflow never waits for (the error
names the child workflow that does), a key given to a wait that takes none or none given
to a correlated wait, a second signal for a key while the first is unread, a signal for
a keyed wait that is over (it took its signal or timed out), and any signal beyond
`MAILBOX_LIMIT` unread ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from mnlang.ir.model import EventIR, IRProgram
from mnlang.ir.states import ChildState, SelectState, WaitState
from mnlang.runtime.convert import ConversionError, Converter
from mnlang.runtime.pauses import select_winner
from mnlang.runtime.run import RunError, load_program
from mnlang.runtime.tokens import BadToken, read_token
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Checkpoint,
    Json,
    RunNotFound,
    RunRecord,
    SelectDecided,
    Store,
    signal_address,
)

MAILBOX_LIMIT = 1000
"""Unread signals a run's mailbox holds at most; one more is refused, not dropped."""


class SignalError(RunError):
    """The signal cannot be delivered: no such event, a bad payload, an ended run."""


@dataclass(frozen=True, slots=True)
class Delivered:
    run_id: str
    event: str
    signal_id: str | None
    accepted: bool
    """False: a signal with this id was delivered before, and this one was ignored."""
    waiting: bool
    """The run waits for this event (and key) now (a worker or `mnc resume` wakes it)."""
    key: str | None = None

    def to_json(self) -> dict[str, Json]:
        return {
            "run_id": self.run_id,
            "event": self.event,
            "key": self.key,
            "signal_id": self.signal_id,
            "accepted": self.accepted,
            "waiting": self.waiting,
        }


def resolve_event(program: IRProgram, name: str) -> EventIR:
    """An event by its qualified name, or by its own name when that is unambiguous."""
    found = program.events.get(name)
    if found is not None:
        return found
    matches = [e for key, e in program.events.items() if key.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"`{key}`" for key in program.events) or "none"
    raise SignalError(f"the run's program declares no event `{name}`", help=f"its events: {known}")


def send(
    store: Store,
    run_id: str,
    event: str,
    payload: Any = None,
    *,
    signal_id: str | None = None,
    key: str | None = None,
    by: str | None = None,
) -> Delivered:
    """Deliver `event` with `payload` (JSON), and its correlation `key`, to run `run_id`'s
    mailbox; `by` (who sends it) is journaled with the signal when the run takes it."""
    record = store.get_run(run_id)
    if record is None:
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    if record.status in TERMINAL_STATUSES:
        raise SignalError(
            f"run `{run_id}` has ended ({record.status}); nothing would read the signal"
        )
    program = load_program(store, record)
    declared = resolve_event(program, event)
    waits = _waits_for(program, record.workflow, declared.name)
    if not waits:
        raise _nobody_waits(store, program, record, declared.name)
    _check_key(waits, declared.name, key)
    _check_payload(program, declared, payload)
    if key is not None:
        if _kept_before(store, record, declared.name, key, signal_id, waits):
            return Delivered(run_id, declared.name, signal_id, False, False, key)
    elif len(store.pending_signals(run_id)) >= MAILBOX_LIMIT:
        raise SignalError(
            f"run `{run_id}` has {MAILBOX_LIMIT} unread signals; this one is refused",
            help=f"`mnc show {run_id}` lists them: the run takes them as it reaches its waits",
        )
    closes = _select_contest(store, program, record, declared.name, key)
    reason: Json = None
    if closes:
        # The signal wins an open select over checkpoints: it closes them in its insert,
        # or is refused when a person decided one of them first.
        signal_id = signal_id or uuid.uuid4().hex
        won = {"arm": "event", "event": declared.name, "key": key, "signal": signal_id}
        reason = {"lost_to": won}
    try:
        accepted = store.send_signal(
            run_id,
            declared.name,
            payload,
            signal_id=signal_id,
            key=key,
            closes=closes,
            reason=reason,
            by=by,
        )
    except SelectDecided as e:
        raise _select_refused(run_id, declared.name, e.checkpoint) from None
    if not accepted and key is not None:
        # The store refused it: a repeated id, or another send of this key that got in
        # between the look above and the insert, which is refused here with the reason.
        _kept_before(store, record, declared.name, key, signal_id, waits)
    current = store.get_run(run_id, args=False) or record
    return Delivered(
        run_id,
        declared.name,
        signal_id,
        accepted,
        current.status == "waiting" and signal_address(declared.name, key) in current.waiting_for,
        key,
    )


def send_token(
    store: Store,
    token: str,
    payload: Any = None,
    *,
    signal_id: str | None = None,
    by: str | None = None,
) -> Delivered:
    """Deliver a callback: the token names the run, the event and the key."""
    try:
        target = read_token(store.callback_secret(), token)
    except BadToken as e:
        raise SignalError(
            f"refused callback token: {e}",
            help="send the token exactly as `callback_token(...)` gave it, to the journal "
            "of the run that made it",
        ) from None
    return send(
        store, target.run_id, target.event, payload, signal_id=signal_id, key=target.key, by=by
    )


def _waits_for(program: IRProgram, workflow: str, event: str) -> list[WaitState]:
    """The waits for `event` in a workflow's own body (a child workflow is its own run),
    a `select`'s arms for it included, each seen as the wait it is."""
    states = program.workflows[workflow].states.values()
    waits = [s for s in states if isinstance(s, WaitState) and s.event == event]
    for s in states:
        if isinstance(s, SelectState):
            waits += [
                WaitState(id=s.id, span=s.span, event=event, key=arm.key)
                for arm in s.arms
                if arm.kind == "event" and arm.event == event
            ]
    return waits


def _select_contest(
    store: Store, program: IRProgram, run: RunRecord, event: str, key: str | None
) -> list[str]:
    """The checkpoints of an open select that this signal would win (closing them), or
    none; a signal for a select that a checkpoint already won is refused here."""
    address = signal_address(event, key)
    candidates = list(store.open_checkpoints(run.run_id))
    # A select on the main line whose checkpoint was just decided is no longer open:
    # find it by its id, to refuse the signal with who won.
    for state in program.workflows[run.workflow].states.values():
        if isinstance(state, SelectState) and any(a.event == event for a in state.arms):
            for arm in state.arms:
                if arm.kind == "checkpoint":
                    found = store.get_checkpoint(run.run_id, f"{state.id}:{arm.name}")
                    if found is not None:
                        candidates.append(found)
    for checkpoint in candidates:
        request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
        select = request.get("select")
        if not isinstance(select, dict) or address not in (select.get("events") or []):
            continue
        if checkpoint.status != "open":
            raise _select_refused(run.run_id, event, checkpoint)
        return [str(i) for i in select.get("checkpoints") or []]
    return []


def _select_refused(run_id: str, event: str, checkpoint: Checkpoint) -> SignalError:
    """The error for a signal to a select whose winner was decided: who won."""
    short = event.rsplit(".", 1)[-1]
    step = (checkpoint.request or {}).get("step") if isinstance(checkpoint.request, dict) else None
    decision = checkpoint.decision if isinstance(checkpoint.decision, dict) else {}
    lost_to = decision.get("lost_to")
    if checkpoint.status == "decided":
        won = (
            f"checkpoint `{checkpoint.name}` was decided `{decision.get('choice')}` "
            f"by `{checkpoint.decided_by}` first"
        )
    elif isinstance(lost_to, dict):
        won = f"{select_winner(lost_to)} won it first"
    else:
        won = "it is over"
    return SignalError(
        f"refused: `{short}` is an arm of the select at step `{step}` of run `{run_id}`, and {won}",
        help="a select takes one winner; nothing would read this signal",
    )


def _nobody_waits(store: Store, program: IRProgram, run: RunRecord, event: str) -> SignalError:
    """The error for an event the run never waits for, naming the child workflows that do."""
    waiting: list[str] = []
    seen: set[str] = set()
    frontier = [run.workflow]
    while frontier:
        name = frontier.pop()
        for state in program.workflows[name].states.values():
            if isinstance(state, ChildState) and state.workflow not in seen:
                seen.add(state.workflow)
                frontier.append(state.workflow)
                if _waits_for(program, state.workflow, event):
                    waiting.append(state.workflow)
    short = event.rsplit(".", 1)[-1]
    if not waiting:
        return SignalError(
            f"workflow `{run.workflow}` never waits for `{short}`, nor do the workflows it calls",
            help="nothing in this run could take the signal; check the run id and the event",
        )
    children = [
        r.run_id
        for r in store.list_runs(parent_run_id=run.run_id)
        if r.workflow in waiting and r.status not in TERMINAL_STATUSES
    ]
    names = ", ".join(f"`{w}`" for w in sorted(waiting))
    to = (
        f"signal the child's run: {', '.join(f'`{c}`' for c in children)}"
        if children
        else f"signal the child's run once it exists (`mnc runs` lists children of `{run.run_id}`)"
    )
    return SignalError(
        f"workflow `{run.workflow}` never waits for `{short}`; its child workflow {names} does, "
        "in a run of its own",
        help=to,
    )


def _check_key(waits: list[WaitState], event: str, key: str | None) -> None:
    short = event.rsplit(".", 1)[-1]
    keyed = [w for w in waits if w.key is not None]
    if key is None and len(keyed) == len(waits):
        raise SignalError(
            f"the wait for `{short}` (step `{keyed[0].id}`) is correlated: "
            "a signal without a key would never be taken",
            help=f"send the key of the item it is for: `mnc signal RUN {short} --key K JSON`",
        )
    if key is not None and not keyed:
        raise SignalError(
            f"the wait for `{short}` (step `{waits[0].id}`) takes no correlation key: "
            f"a signal with key `{key}` would never be taken",
            help="send it without `--key`",
        )


def _kept_before(
    store: Store,
    run: RunRecord,
    event: str,
    key: str,
    signal_id: str | None,
    waits: list[WaitState],
) -> bool:
    """Refuse a keyed signal nobody would take; `True` when this very signal (by id) is
    already in the mailbox, so the send is a repeat to ignore."""
    short = event.rsplit(".", 1)[-1]
    step = next(w.id for w in waits if w.key is not None)
    for kept in store.pending_signals(run.run_id, event):
        if kept.key != key:
            continue
        if signal_id is not None and kept.signal_id == signal_id:
            return True
        raise SignalError(
            f"a signal for `wait {short}` with key `{key}` is already in run "
            f"`{run.run_id}`'s mailbox; a second one would never be taken",
            help="send each key once (give the send an `--id` to make a retry harmless)",
        )
    taken = store.taken_signal(run.run_id, event, key)
    if taken is not None:
        if signal_id is not None and taken.signal_id == signal_id:
            return True
        raise SignalError(
            f"the wait `{short}` for key `{key}` (step `{step}`) is over: "
            "it took its signal already",
            help="a wait takes one signal; this one would never be read",
        )
    waiting_now = run.status == "waiting" and signal_address(event, key) in run.waiting_for
    if not waiting_now and _timed_out(store, run.run_id, event, key):
        raise SignalError(
            f"the wait `{short}` for key `{key}` (step `{step}`) is over: it timed out",
            help="the run went on without it; nothing would read this signal",
        )
    if len(store.pending_signals(run.run_id)) >= MAILBOX_LIMIT:
        raise SignalError(
            f"run `{run.run_id}` has {MAILBOX_LIMIT} unread signals; this one is refused",
            help=f"`mnc show {run.run_id}` lists them",
        )
    return False


def _timed_out(store: Store, run_id: str, event: str, key: str) -> bool:
    # Read only for a keyed signal the run does not wait for now (an early one, or a
    # late one): the journal is the only record of a wait's timeout.
    return any(
        e.kind == "timed_out"
        and isinstance(e.data, dict)
        and e.data.get("event") == event
        and e.data.get("key") == key
        for e in store.read_journal(run_id)
    )


def _check_payload(program: IRProgram, event: EventIR, payload: Any) -> None:
    if event.payload is None:
        if payload is not None:
            raise SignalError(
                f"event `{event.name}` carries no payload",
                help="send it without JSON",
            )
        return
    if payload is None and event.payload.kind != "optional":
        raise SignalError(
            f"event `{event.name}` carries a {event.payload}",
            help="give the payload as JSON after the event's name",
        )
    try:
        Converter(program.types).inbound(payload, event.payload, "payload")
    except ConversionError as e:
        raise SignalError(
            f"the payload of `{event.name}` is not a {event.payload}: {e}",
            help=f"send a JSON value of type {event.payload}",
        ) from None
