"""What the console's buttons do: decide a checkpoint, signal, cancel, resume.

Each action is recorded in the journal store first (the decision with the deciding
user's name, the signal in the mailbox, the cancel request); then, unless the console
was started with `--no-execute` (a `mnc worker` does the work), the run is resumed on
one of a few background threads, so the page answers at once and shows the run moving
through its live updates. A run another process holds is left to that process.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from mnlang.jsonin import JSONInputError, decode_json
from mnlang.runtime import decisions, signals
from mnlang.runtime.run import RunBusy, RunError, continue_run
from mnlang.stores.base import TERMINAL_STATUSES, Checkpoint, Json, RunRecord, Store, StoreError
from mnlang.ui.auth import User

log = logging.getLogger("mnlang.ui")


class ActionRefused(Exception):
    """An action that cannot be done; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _run(store: Store, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run is None:
        raise ActionRefused(404, f"no run `{run_id}`")
    return run


def _run_acted_on(store: Store, user: User, run_id: str) -> RunRecord:
    """The run, when `user`'s role and workflow scope let them act on it."""
    run = _run(store, run_id)
    if not user.may_act_on(run.workflow):
        raise ActionRefused(
            403, f"`{user.name}` ({user.role_name}) may not act on runs of `{run.workflow}`"
        )
    return run


def assignee_of(checkpoint: Checkpoint) -> str | None:
    """The user a checkpoint is assigned to, if any."""
    request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
    assignee = request.get("assignee")
    return assignee if isinstance(assignee, str) and assignee else None


def may_change(store: Store, user: User, run_id: str) -> None:
    """The assignee rule for every state change of a run: while one of its checkpoints is
    assigned to someone else, only they (deciding it) or an admin may act on the run."""
    for checkpoint in store.open_checkpoints(run_id):
        assignee = assignee_of(checkpoint)
        if not user.may_decide(assignee):
            raise ActionRefused(
                403,
                f"run `{run_id}` waits for `{assignee}` at checkpoint `{checkpoint.name}`; "
                "only they or an admin may change it",
            )


def _json_text(text: str, what: str) -> Json:
    if not text.strip():
        return None
    try:
        return decode_json(text, what)
    except JSONInputError as e:
        raise ActionRefused(400, f"{e.message} ({e.code}); {e.help}") from None


def decide(
    store: Store,
    user: User,
    run_id: str,
    checkpoint_id: str,
    choice: str,
    comment: str = "",
    result: str = "",
) -> str:
    """Record `user`'s decision; returns what happened, in words. The runtime's rules
    apply (`mnlang.runtime.decisions`): the first decision wins, a due timeout decides
    first, a repair's result must fit the effect's type; the console adds the assignee."""
    _run_acted_on(store, user, run_id)
    checkpoint = store.get_checkpoint(run_id, checkpoint_id)
    if checkpoint is None:
        raise ActionRefused(404, f"run `{run_id}` has no checkpoint `{checkpoint_id}`")
    assignee = assignee_of(checkpoint)
    if not user.may_decide(assignee):
        raise ActionRefused(403, f"checkpoint `{checkpoint.name}` is assigned to `{assignee}`")
    value = _json_text(result, "the result") if result.strip() else None
    try:
        decided = decisions.decide(
            store,
            run_id,
            checkpoint_id,
            approve=choice != "reject",
            choice=choice,
            by=user.name,
            comment=comment.strip() or None,
            result=value,
        )
    except decisions.DecisionRefused as e:
        raise ActionRefused(409, e.message) from None
    except (decisions.DecisionError, RunError) as e:
        raise ActionRefused(400, e.message) from None
    log.info("%s decided %s of run %s: %s", user.name, checkpoint_id, run_id, choice)
    return f"{decided.choice} recorded for `{decided.name}`"


def signal(
    store: Store,
    user: User,
    run_id: str,
    event: str,
    payload: str,
    signal_id: str = "",
    key: str = "",
) -> str:
    """Put a signal, with its correlation key if one is given, in the run's mailbox; its
    payload is checked against the event's type."""
    run = _run_acted_on(store, user, run_id)
    may_change(store, user, run_id)
    if not event.strip():
        raise ActionRefused(400, "name the event to signal")
    if run.status in TERMINAL_STATUSES:
        raise ActionRefused(409, f"run `{run_id}` has ended ({run.status})")
    value = _json_text(payload, "the payload")
    try:
        delivered = signals.send(
            store,
            run_id,
            event.strip(),
            value,
            signal_id=signal_id.strip() or None,
            key=key.strip() or None,
            by=user.name,
        )
    except RunError as e:
        raise ActionRefused(400, e.message) from None
    log.info("%s signalled %s to run %s", user.name, delivered.event, run_id)
    if not delivered.accepted:
        return f"signal id `{signal_id.strip()}` was sent before"
    keyed = f" with key `{delivered.key}`" if delivered.key is not None else ""
    return f"signal `{delivered.event}`{keyed} sent"


def cancel(store: Store, user: User, run_id: str) -> str:
    _run_acted_on(store, user, run_id)
    may_change(store, user, run_id)
    if not store.request_cancel(run_id, by=user.name):
        raise ActionRefused(409, f"run `{run_id}` has already ended")
    log.info("%s asked to cancel run %s", user.name, run_id)
    return "cancel requested"


def retry(store: Store, user: User, run_id: str) -> str:
    """Retry a failed run in place (`mnlang.runtime.recovery`), journaled with who."""
    from mnlang.runtime.recovery import RetryRefused
    from mnlang.runtime.recovery import retry as retry_run

    _run_acted_on(store, user, run_id)
    may_change(store, user, run_id)
    try:
        retried = retry_run(store, run_id, by=user.name)
    except RetryRefused as e:
        raise ActionRefused(409, e.message) from None
    log.info("%s retried run %s", user.name, run_id)
    return f"retried from `{retried.step}`"


def fork(store: Store, user: User, run_id: str, from_step: str, live_effects: bool) -> str:
    """Fork a run from a step into a new run of this journal (`mnlang.replay.fork`); the
    answer comes when the new run ends or waits."""
    from mnlang.replay.engine import ReplayError
    from mnlang.replay.fork import fork_run
    from mnlang.replay.recording import recording_from_store

    _run_acted_on(store, user, run_id)
    if not from_step.strip():
        raise ActionRefused(400, "say where the fork goes live: a state id or a line")
    try:
        forked = fork_run(
            recording_from_store(store, run_id),
            from_step.strip(),
            store,
            live_effects=live_effects,
        )
    except (ReplayError, RunError) as e:
        raise ActionRefused(400, e.message) from None
    log.info("%s forked run %s as %s", user.name, run_id, forked.outcome.run_id)
    return f"forked as run {forked.outcome.run_id} ({forked.outcome.status})"


def check_resumable(store: Store, user: User, run_id: str) -> str:
    run = _run(store, run_id)
    may_change(store, user, run_id)
    if run.status in TERMINAL_STATUSES:
        raise ActionRefused(409, f"run `{run_id}` has ended ({run.status})")
    return "resuming"


class Executor:
    """Resumes runs on background threads, one resume per run at a time; a request that
    comes while the run's resume is going makes it resume once more afterwards (it may
    have looked at the checkpoint before the new decision was recorded)."""

    def __init__(self, store: Store, *, enabled: bool, threads: int = 2) -> None:
        self.store = store
        self.enabled = enabled
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="mnc-ui-run")
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._again: set[str] = set()

    def resume(self, run_id: str) -> bool:
        """Have the run resumed; `False` when execution is off (a worker does it)."""
        if not self.enabled:
            return False
        with self._lock:
            if run_id in self._active:
                self._again.add(run_id)
                return True
            self._active.add(run_id)
        self._pool.submit(self._resume, run_id)
        return True

    def _resume(self, run_id: str) -> None:
        while True:
            try:
                continue_run(self.store, run_id)  # and the parents its end wakes
            except RunBusy:
                log.info("run %s is executing elsewhere", run_id)
            except (RunError, StoreError) as e:
                log.warning("resuming run %s: %s", run_id, e)
            except Exception:
                log.exception("resuming run %s failed", run_id)
            with self._lock:
                if run_id not in self._again:
                    self._active.discard(run_id)
                    return
                self._again.discard(run_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
