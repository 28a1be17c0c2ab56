"""Sending an `event` to a run: `mnc signal RUN EVENT [JSON] [--id ID]`.

A signal goes to the run's mailbox whether or not the run waits for it yet: a run that
reaches `wait event` later finds it there. A signal id makes a send idempotent: the
same id sent again is ignored (a webhook retried by its sender delivers once). The
event is looked up in the run's own program and its payload is checked against the
event's type before it is stored, so a bad payload is refused here instead of failing
the run later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnlang.ir.model import EventIR, IRProgram
from mnlang.runtime.convert import ConversionError, Converter
from mnlang.runtime.run import RunError, load_program
from mnlang.stores.base import TERMINAL_STATUSES, Json, RunNotFound, Store


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
    """The run waits for this event now (a worker or `mnc resume` wakes it)."""

    def to_json(self) -> dict[str, Json]:
        return {
            "run_id": self.run_id,
            "event": self.event,
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
    store: Store, run_id: str, event: str, payload: Any = None, *, signal_id: str | None = None
) -> Delivered:
    """Deliver `event` with `payload` (JSON) to run `run_id`'s mailbox."""
    record = store.get_run(run_id)
    if record is None:
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    if record.status in TERMINAL_STATUSES:
        raise SignalError(
            f"run `{run_id}` has ended ({record.status}); nothing would read the signal"
        )
    program = load_program(store, record)
    declared = resolve_event(program, event)
    _check_payload(program, declared, payload)
    accepted = store.send_signal(run_id, declared.name, payload, signal_id=signal_id)
    current = store.get_run(run_id) or record
    return Delivered(
        run_id,
        declared.name,
        signal_id,
        accepted,
        current.status == "waiting" and declared.name in current.waiting_for,
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
