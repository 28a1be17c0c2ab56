"""Running one scenario: a fresh in-memory journal, the scenario's doubles, then the checks.

The run starts like `mnc run` would start it, with the scenario's input. Whenever it
waits, the runner acts as the world would: it takes the scenario's next decision at each
open checkpoint, sends the events the run waits for, and moves the journal's clock to
the next timer (a checkpoint's timeout, a `wait 2h`, a retry backoff) when nothing else
can move the run; then it resumes the run. A `worker_crash` fault makes the run stop
right after the first call of its target returns, before that result is committed, and
the run is resumed from its journal, as a new worker would.

The checks: the status, the output or the error, the calls (when the scenario lists
them), and that no effect key was committed twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mnlang.ir.base import TypeIR
from mnlang.ir.model import IRProgram
from mnlang.ir.scenarios import ScenarioCallIR, ScenarioDecisionIR, ScenarioIR
from mnlang.runtime.clock import VirtualClock
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.convert import ConversionError, Converter
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.run import RunError, RunOutcome, resume_run, start_run
from mnlang.runtime.values import Value, to_plain
from mnlang.stores.base import (
    Checkpoint,
    Event,
    NewEvent,
    Store,
    StoreError,
    split_address,
)
from mnlang.stores.sqlite import SQLiteStore
from mnlang.testing.doubles import WORKER_CRASH, ScenarioSetupError, scenario_doubles

MAX_RESUMES = 200
"""Resumes after which a run that keeps waiting is reported as stuck."""
CALL_EVENTS = ("tool", "effect", "agent")
_NO_ENV = MapEnv({})


class ScenarioClockStore(SQLiteStore):
    """An in-memory journal whose clock the runner can move forward (timeouts, waits).

    The clock is moved both where the runtime reads it and where the store stamps its
    writes (timers' due times, decisions, leases), so the two never disagree."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.skew = 0.0

    def now(self) -> float:
        return super().now() + self.skew

    @contextmanager
    def _write(self) -> Iterator[float]:
        with super()._write() as now:
            yield now + self.skew

    def skip_to_next_timer(self) -> bool:
        """Move the clock just past the next timer; False without one. A checkpoint's
        timeout only fires when the driver says so (it moves the clock itself), so its
        timers are not counted."""
        (due,) = self._query(
            "SELECT min(due_at) FROM timers WHERE substr(timer_id, 1, 11) != 'checkpoint:'"
        )[0]
        if due is None:
            return False
        self.skew += max(due - self.now(), 0.0) + 0.001
        return True


class _Crash(Exception):
    """The injected worker crash: raised from the journal observer, before a commit."""


@dataclass
class Mismatch:
    """One way the run differed from the scenario: a title and the lines explaining it."""

    title: str
    lines: list[str] = field(default_factory=list)


@dataclass
class ScenarioResult:
    file: str
    name: str
    status: str = ""
    mismatches: list[Mismatch] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """What the runner did that is worth telling (decisions taken, crashes injected)."""
    expected_miss: str | None = None
    """The scenario's `model_error`: a reply is wrong on purpose (for `mnc bench`), so the
    run is expected to miss the expectations, and passes when it does."""

    @property
    def met(self) -> bool:
        """The run met every expectation."""
        return not self.mismatches

    @property
    def passed(self) -> bool:
        return self.met if self.expected_miss is None else not self.met

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name.rsplit('.', 1)[-1]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "scenario": self.name,
            "passed": self.passed,
            "expected_miss": self.expected_miss,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "mismatches": [{"title": m.title, "lines": m.lines} for m in self.mismatches],
            "notes": self.notes,
        }


def run_scenario(
    program: IRProgram,
    scenario: ScenarioIR,
    file: str,
    keep: Callable[[Store, str], None] | None = None,
) -> ScenarioResult:
    """Run one scenario; `keep` sees its journal and run id before the journal is dropped
    (how `benchmarks/replay_speed.py` records runs to replay)."""
    started = time.perf_counter()
    result = ScenarioResult(file, scenario.name, expected_miss=scenario.model_error)
    try:
        _ScenarioRun(program, scenario, result).run(keep)
    except (ScenarioSetupError, RunError, StoreError) as e:
        message = getattr(e, "message", None) or str(e)
        result.mismatches.append(Mismatch("the scenario could not run", [message]))
    result.seconds = time.perf_counter() - started
    return result


class _ScenarioRun:
    def __init__(self, program: IRProgram, scenario: ScenarioIR, result: ScenarioResult) -> None:
        self.program = program
        self.scenario = scenario
        self.result = result
        self.evaluator = Evaluator()
        self.converter = Converter(program.types, self.evaluator)
        doubles, models = scenario_doubles(program, scenario, self.evaluator)
        # A virtual clock: retry backoffs and rate limits pass at once instead of in real time.
        self.config = RuntimeConfig(models=models, doubles=doubles, workers=8, clock=VirtualClock())
        self.crash_at = {f.at for f in scenario.faults if f.kind == WORKER_CRASH}
        self.decisions_used: Counter[str] = Counter()
        self.events_sent: Counter[str] = Counter()
        self.keyed_sent: set[str] = set()
        self.run_id = f"scenario-{scenario.name}"

    def value(self, expr: Any) -> Value:
        return self.evaluator.eval(expr, _NO_ENV)

    # --- driving the run ----------------------------------------------------------------

    def observe(self, event: NewEvent) -> None:
        """Crash once right after the first call of a `worker_crash` target returns."""
        if event.kind not in CALL_EVENTS or not isinstance(event.data, dict):
            return
        callee = event.data.get(event.kind)
        if callee in self.crash_at:
            self.crash_at.discard(callee)
            self.result.notes.append(f"worker crash injected after `{_short(str(callee))}`")
            raise _Crash

    def run(self, keep: Callable[[Store, str], None] | None = None) -> None:
        given = {name: to_plain(self.value(e)) for name, e in self.scenario.args.items()}
        with ScenarioClockStore() as store:
            outcome = self._go(
                store,
                lambda: start_run(
                    store,
                    self.program,
                    self.scenario.workflow,
                    given,
                    run_id=self.run_id,
                    config=self.config,
                    observer=self.observe,
                ),
            )
            for _ in range(MAX_RESUMES):
                if outcome.status != "waiting" or not self._act(store):
                    break
                outcome = self._resume(store)
            self.result.status = outcome.status
            self._check(store, outcome)
            if keep is not None:
                keep(store, self.run_id)

    def _go(self, store: Store, step: Any) -> RunOutcome:
        try:
            outcome: RunOutcome = step()
        except _Crash:
            return self._resume(store)
        return outcome

    def _resume(self, store: Store) -> RunOutcome:
        return self._go(
            store,
            lambda: resume_run(
                store, self.run_id, program=self.program, config=self.config, observer=self.observe
            ),
        )

    def _act(self, store: ScenarioClockStore) -> bool:
        """Do what the world would do for the waiting run; False when nothing can move it."""
        acted = False
        timed_out: list[float] = []
        for checkpoint in store.open_checkpoints():
            decided = self._decide(store, checkpoint)
            if decided is None:
                continue
            acted = True
            if decided > 0:
                timed_out.append(decided)
        for record in store.list_runs(limit=1000):
            for address in record.waiting_for or []:
                # A correlated wait takes the event's next payload, sent with its key.
                name, key = split_address(address)
                if self._send_keyed(store, record.run_id, name, key):
                    acted = True
                    continue
                payloads = self.scenario.events.get(name, [])
                n = self.events_sent[name]
                if n < len(payloads):
                    self.events_sent[name] += 1
                    payload = to_plain(self.value(payloads[n]))
                    store.send_signal(
                        record.run_id, name, payload, signal_id=f"{name}-{n}", key=key
                    )
                    acted = True
        if timed_out:
            store.skew += max(timed_out) + 1.0
        elif not acted:
            acted = store.skip_to_next_timer()
        return acted

    def _send_keyed(self, store: Store, run_id: str, name: str, key: str | None) -> bool:
        """Send the next payload the scenario keys to this wait's correlation key."""
        for n, keyed in enumerate((self.scenario.keyed_events or {}).get(name, [])):
            sent = f"{name}-key-{n}"
            if sent in self.keyed_sent or to_plain(self.value(keyed.key)) != key:
                continue
            self.keyed_sent.add(sent)
            payload = to_plain(self.value(keyed.payload))
            store.send_signal(run_id, name, payload, signal_id=sent, key=key)
            return True
        return False

    def _decide(self, store: ScenarioClockStore, checkpoint: Checkpoint) -> float | None:
        """Take the scenario's next decision at a checkpoint. Returns None when it has none,
        0 when decided, or the seconds the clock must move for its timeout to decide."""
        decisions = self.scenario.decisions.get(checkpoint.name, [])
        n = self.decisions_used[checkpoint.checkpoint_id]
        if n >= len(decisions):
            return None
        decision = decisions[n]
        self.decisions_used[checkpoint.checkpoint_id] += 1
        request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
        timeout_ms = request.get("timeout_ms")
        if self._times_out(decision, timeout_ms):
            if not isinstance(timeout_ms, int):
                self.result.mismatches.append(
                    Mismatch(
                        "decision",
                        [f"`{checkpoint.name}` has no timeout, so `timeout` cannot decide it"],
                    )
                )
                return None
            self.result.notes.append(f"`{checkpoint.name}` left to its timeout")
            return timeout_ms / 1000
        body: dict[str, Any] = {"choice": decision.choice}
        if decision.comment is not None:
            body["comment"] = decision.comment
        store.decide_checkpoint(checkpoint.run_id, checkpoint.checkpoint_id, body, by=decision.by)
        return 0.0

    def _times_out(self, decision: ScenarioDecisionIR, timeout_ms: Any) -> bool:
        if decision.choice == "timeout":
            return True
        return (
            isinstance(timeout_ms, int)
            and decision.after_ms is not None
            and decision.after_ms >= timeout_ms
        )

    # --- checking ------------------------------------------------------------------------

    def _check(self, store: Store, outcome: RunOutcome) -> None:
        expect = self.scenario.expect
        mismatches = self.result.mismatches
        if outcome.status != expect.status:
            lines = [f"expected `{expect.status}`, the run ended `{outcome.status}`"]
            if outcome.error:
                lines.append(_error_text(outcome.error))
            if outcome.status == "waiting":
                lines += _waiting(store)
            mismatches.append(Mismatch("status", lines))
        if expect.output is not None and outcome.status == "completed":
            self._check_output(outcome.result, expect.output)
        if outcome.error is not None and outcome.status == expect.status:
            kind, message = outcome.error.get("kind"), str(outcome.error.get("message", ""))
            if expect.error is not None and kind != expect.error:
                mismatches.append(
                    Mismatch(
                        "error kind",
                        [f"expected `{expect.error}`, got `{kind}`", _error_text(outcome.error)],
                    )
                )
            if expect.message is not None and expect.message not in message:
                mismatches.append(
                    Mismatch(
                        "error message",
                        [f"expected a message containing {expect.message!r}", f"got {message!r}"],
                    )
                )
        runs = [(r, store.read_journal(r.run_id)) for r in store.list_runs(limit=1000)]
        self._check_keys([e for _, events in runs for e in events])
        if self.scenario.expect_calls is not None:
            calls = [c for record, events in runs for c in _calls(events, record.parent_run_id)]
            self._check_calls(calls, self.scenario.expect_calls)

    def _check_output(self, actual: Any, expected_expr: Any) -> None:
        returns = self.program.workflows[self.scenario.workflow].returns
        expected = to_plain(self.value(expected_expr))
        if self._same(actual, expected, returns):
            return
        self.result.mismatches.append(Mismatch("output", _diff(expected, actual)))

    def _same(self, actual: Any, expected: Any, t: TypeIR) -> bool:
        try:
            a = self.converter.inbound(actual, t, "actual", closed=False)
            b = self.converter.inbound(expected, t, "expected", closed=False)
        except ConversionError:
            return bool(actual == expected)
        return bool(a == b)

    def _check_keys(self, events: list[Event]) -> None:
        committed = Counter(
            str(e.data["key"])
            for e in events
            if e.kind == "effect" and isinstance(e.data, dict) and "key" in e.data
        )
        twice = sorted(key for key, n in committed.items() if n > 1)
        if twice:
            lines = [f"`{key}` committed {committed[key]} times" for key in twice]
            self.result.mismatches.append(Mismatch("effect keys committed twice", lines))

    def _kind(self, callee: str) -> str:
        p = self.program
        if callee in p.agents:
            return "agent"
        return "workflow" if callee in p.workflows else "tool"

    def _check_calls(self, made: list[tuple[str, Any]], expected: list[ScenarioCallIR]) -> None:
        """Tool and effect calls are always compared; agent and workflow calls only when the
        scenario lists one of their kind."""
        listed = {self._kind(call.callee) for call in expected}
        actual = [c for c in made if self._kind(c[0]) in listed | {"tool"}]
        left = list(actual)
        missing: list[str] = []
        for call in expected:
            args = (
                {k: to_plain(self.value(v)) for k, v in call.args.items()}
                if call.args is not None
                else None
            )
            found = next(
                (
                    i
                    for i, (callee, got) in enumerate(left)
                    if callee == call.callee
                    and (args is None or self._same_args(callee, got, args))
                ),
                None,
            )
            if found is None:
                missing.append(_show_call(call.callee, args))
            else:
                left.pop(found)
        if not missing and not left:
            return
        lines = [f"missing: {m}" for m in _counted(missing)]
        lines += [f"unexpected: {c}" for c in _counted([_show_call(*call) for call in left])]
        lines.append("made: " + ", ".join(_counted([_show_call(*call) for call in actual])))
        self.result.mismatches.append(Mismatch("calls", lines))

    def _same_args(self, callee: str, actual: Any, expected: dict[str, Any]) -> bool:
        if not isinstance(actual, dict):
            return False
        params = self._params(callee)
        for name, want in expected.items():
            t = params.get(name)
            if name not in actual or t is None or not self._same(actual[name], want, t):
                return False
        return True

    def _params(self, callee: str) -> dict[str, TypeIR]:
        p = self.program
        decl: Any = (
            p.tools.get(callee)
            or p.effects.get(callee)
            or p.agents.get(callee)
            or p.workflows.get(callee)
        )
        return {param.name: param.type for param in decl.params} if decl is not None else {}


def _calls(events: list[Event], parent: str | None) -> list[tuple[str, Any]]:
    """The calls a run made, with their arguments, in journal order; a child run (one with a
    `parent`) counts as a call of its workflow."""
    out: list[tuple[str, Any]] = []
    for e in events:
        data = e.data if isinstance(e.data, dict) else {}
        if e.kind in CALL_EVENTS:
            out.append((str(data.get(e.kind)), data.get("args")))
        elif e.kind == "compensated":
            out.append((str(data.get("effect")), data.get("args")))
        elif e.kind == "replayed":
            out.append((str(data.get("effect")), None))
        elif e.kind == "call_failed":
            out.append((str(data.get("callee")), data.get("args")))
        elif e.kind == "started" and parent is not None:
            out.append((str(data.get("workflow")), data.get("args")))
    return out


def _counted(calls: list[str]) -> list[str]:
    """Calls in first-seen order, a repeated one once with its count: `fetch(1) (3 times)`."""
    counts = Counter(calls)
    return [c if counts[c] == 1 else f"{c} ({counts[c]} times)" for c in dict.fromkeys(calls)]


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _show_call(callee: str, args: Any) -> str:
    if args is None:
        return _short(callee)
    shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in args.values())
    return f"{_short(callee)}({shown})"


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return f"error: {error}"
    where = f" (at `{error['step']}`)" if error.get("step") else ""
    return f"error: {error.get('kind')}: {error.get('message')}{where}"


def _waiting(store: Store) -> list[str]:
    lines = [
        f"waiting at checkpoint `{c.name}`, and the scenario has no decision left for it"
        for c in store.open_checkpoints()
    ]
    for record in store.list_runs(limit=1000):
        lines += [
            f"waiting for event `{split_address(name)[0]}`, and the scenario has no payload "
            "left for it"
            for name in record.waiting_for or []
        ]
    return lines


def _diff(expected: Any, actual: Any) -> list[str]:
    import difflib

    want = json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    got = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return list(difflib.unified_diff(want, got, "expected", "actual", lineterm=""))
