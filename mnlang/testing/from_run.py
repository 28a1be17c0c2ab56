"""Run to scenario: `mnc test --from-run RUN -o FILE` writes a recorded run as a scenario.

The scenario holds what the world gave the run, in the language's own syntax, typed by
the program's declarations: the input (`run:`), each tool and effect result as an answer
matched by its arguments (`{ args: {...}, result: ... }`, so the items of a `parallel for`
each get their own), the agents' replies (tool-calling turns, then the answer; by prompt
with `prompt_has` when an agent is called more than once), the checkpoint decisions, the
events received (with their correlation key), the expected end (output, or error kind
and message) and the tool and effect calls made. A run's child runs are walked like the
run itself: their calls, replies, decisions and events join the scenario, which runs them
again as children.

Every value goes through `mnlang.redact.redact_json` (the one redaction function) before
it is written; the journal already holds a secret's reference, never its value, and a
`secret` parameter is never matched (E142). `omit` names parameters (`name` or
`tool.name`) whose values are left out: of the answers' `args` (so they match any value)
and of the expected calls (the call is then expected by its name alone).

Failed attempts of tool and effect calls become `faults` with their recorded messages;
what a scenario cannot say is refused with a `FromRunError` that says why: a failure on a
callee's later call (faults fail the first attempts of its calls), a failed agent call or
child run, a `timestamp` value (it has no literal), a secret inside text. The file is
checked once written; a file that does not check is not left behind.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnlang.checker.scenarios import CALL_FAULTS, EXPECTED_ERRORS
from mnlang.ir.base import TypeIR
from mnlang.ir.model import IRProgram
from mnlang.redact import redact_json
from mnlang.replay.recording import RecordedRun, Recording, decided_name, raced_quorum
from mnlang.stores.base import Json

_UNKNOWN = TypeIR(kind="unknown")
_CALLS = ("tool", "effect")
_SECRET_REF = re.compile(r"^\{((?:env|file):[^{}]+)\}$")


class FromRunError(Exception):
    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


@dataclass
class WrittenScenario:
    path: Path
    name: str
    appended: bool
    text: str
    notes: list[str] = field(default_factory=list)


def scenario_name(run_id: str) -> str:
    """`from_<run id>`, as a name: other characters become `_`."""
    return "from_" + re.sub(r"\W", "_", run_id).strip("_").lower()


def write_scenario(
    recording: Recording,
    program: IRProgram,
    target: Path,
    *,
    omit: Sequence[str] = (),
    name: str | None = None,
) -> WrittenScenario:
    """Write `recording` as a scenario into `target`: appended when `target` is the
    program's own source file, else a new file (beside it, or in a folder above it) that
    imports the names it uses. Checked once written; refused when it does not check."""
    from mnlang.fmt import format_source

    source = Path(program.source.dir) / program.source.file
    target = target.resolve()
    appended = target == source.resolve()
    if not appended and target.exists():
        raise FromRunError(
            f"{target} exists",
            help=f"name a new file, or the workflow's own file ({source}) to append to",
        )
    raced = raced_quorum(recording)
    if raced is not None:
        raise FromRunError(
            f"run `{raced}` raced a quorum join (`parallel for ... first N`): mocked answers "
            "come at once, so which items win would not be what the run's timing decided",
            help="write the scenario by hand, with tools that take their time",
        )
    module = None if appended else _module_path(source, target)
    name = name or scenario_name(recording.root.record.run_id)
    if appended and re.search(rf"^scenario\s+{re.escape(name)}\b", source.read_text(), re.M):
        raise FromRunError(
            f"{source} already has a scenario `{name}`", help="remove it, or write another file"
        )
    writer = _Writer(program, set(omit))
    block = writer.scenario(recording, name)
    unused = set(omit) - writer.omitted_used
    if unused:
        raise FromRunError(
            "--omit names no argument of a call the run made: "
            + ", ".join(f"`{o}`" for o in sorted(unused)),
            help="name a parameter (`amount`) or a tool's parameter (`refund_payment.amount`)",
        )
    formatted = format_source(block, str(target))
    if formatted.text is None:
        raise FromRunError(
            "the scenario written for this run does not parse (a bug): "
            + "; ".join(d.message for d in formatted.diagnostics)
        )
    if appended:
        before = source.read_text()
        text = before.rstrip("\n") + "\n\n" + formatted.text
    else:
        assert module is not None
        before = None
        text = writer.imports(module) + "\n" + formatted.text
    target.write_text(text, "utf-8")
    _check_written(target, before)
    return WrittenScenario(target, name, appended, text, writer.notes)


def _module_path(source: Path, target: Path) -> str:
    """The dotted module path by which `target` imports `source`."""
    try:
        rel = source.resolve().with_suffix("").relative_to(target.parent)
    except ValueError:
        raise FromRunError(
            f"{target.name} cannot import {source.name} from {target.parent}",
            help=f"write the scenario beside the workflow ({source.parent}), or in a folder "
            "above it",
        ) from None
    parts = rel.parts
    if not all(p.isidentifier() for p in parts):
        raise FromRunError(
            f"{rel} is not a module path", help="write the scenario beside the workflow"
        )
    return ".".join(parts)


def _check_written(target: Path, before: str | None) -> None:
    """Check the written file; on errors put back what was there and refuse."""
    from mnlang.checker import check

    result = check(target)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    if not errors:
        return
    if before is None:
        target.unlink()
    else:
        target.write_text(before, "utf-8")
    shown = "; ".join(f"{d.code} {d.message}" for d in errors[:5])
    raise FromRunError(
        f"the scenario written for this run does not check: {shown}",
        help="the run holds a value the program's types no longer accept; nothing was written",
    )


class _Writer:
    """Prints a recording as scenario source, remembering the names it uses."""

    def __init__(self, program: IRProgram, omit: set[str]) -> None:
        self.program = program
        self.omit = omit
        self.omitted_used: set[str] = set()
        self.used: dict[str, set[str]] = defaultdict(set)
        self.notes: list[str] = []

    # --- names and imports --------------------------------------------------------------

    def name(self, qualified: str) -> str:
        module, _, short = qualified.rpartition(".")
        self.used[module].add(short)
        return short

    def imports(self, root: str) -> str:
        """`import` lines for the names used: the root module's by `root` (its dotted
        path from the written file), its imports' relative to it, `std.*` as they are."""
        prefix = root.rpartition(".")[0]
        lines = []
        for module in sorted(self.used):
            if not module:
                path = root
            elif module == "std" or module.startswith("std."):
                path = module
            else:
                path = f"{prefix}.{module}" if prefix else module
            lines.append(f"import {path} {{ {', '.join(sorted(self.used[module]))} }}")
        return "\n".join(lines) + "\n"

    # --- values -------------------------------------------------------------------------

    def value(self, plain: Json, t: TypeIR, where: str) -> str:
        return self._value(redact_json(plain), t, where)

    def _value(self, v: Any, t: TypeIR, where: str) -> str:
        k = t.kind
        if v is None:
            return "null"
        if k == "optional":
            return self._value(v, t.args[0], where)
        if k == "str":
            return _string(str(v))
        if k == "int" and isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        if k == "float" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return _float(float(v))
        if k == "bool" and isinstance(v, bool):
            return "true" if v else "false"
        if k == "money":
            text = str(v)
            return f"-${text[1:]}" if text.startswith("-") else f"${text}"
        if k == "duration" and isinstance(v, int):
            return f"{v}ms"
        if k == "list" and isinstance(v, list):
            return "[" + ", ".join(self._value(x, t.args[0], where) for x in v) + "]"
        if k == "map" and isinstance(v, dict):
            items = (
                f"{_string(str(key))}: {self._value(x, t.args[0], where)}" for key, x in v.items()
            )
            return "{ " + ", ".join(items) + " }" if v else "{}"
        if k == "record" and isinstance(v, dict) and t.name in self.program.types:
            decl = self.program.types[t.name]
            fields = {f.name: f.type for f in getattr(decl, "fields", [])}
            shown = ", ".join(
                f"{f}: {self._value(v[f], ft, where)}" for f, ft in fields.items() if f in v
            )
            return f"{self.name(t.name)} {{ {shown} }}"
        if k == "enum" and isinstance(v, str) and t.name is not None:
            return f"{self.name(t.name)}.{v}"
        if k in ("json", "unknown"):
            return self._json(v, where)
        if k == "timestamp":
            raise FromRunError(
                f"{where} holds a `timestamp` ({v}), which a scenario cannot write: the "
                "language has no timestamp literal",
                help="write this scenario by hand",
            )
        raise FromRunError(
            f"{where} holds a value ({json.dumps(v)[:60]}) that is not a `{t}`",
            help="the program's types changed since the run; write the scenario by hand",
        )

    def _json(self, v: Any, where: str) -> str:
        if isinstance(v, dict):
            if not v:
                return "{}"
            return (
                "{ "
                + ", ".join(f"{_string(k)}: {self._json(x, where)}" for k, x in v.items())
                + " }"
            )
        if isinstance(v, list):
            return "[" + ", ".join(self._json(x, where) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return _float(v)
        if v is None:
            return "null"
        return _string(str(v))

    # --- the scenario -------------------------------------------------------------------

    def scenario(self, recording: Recording, name: str) -> str:
        root = recording.root
        record = root.record
        wf = self.program.workflows.get(record.workflow)
        if wf is None:
            raise FromRunError(f"the run's program has no workflow `{record.workflow}`")
        if record.status in ("running", "cancelled"):
            raise FromRunError(
                f"run {record.run_id} is {record.status}: a scenario ends as its run "
                "completes, fails or waits, and nothing cancels it",
                help="write a run that completed, failed or waits",
            )
        runs = root.walk()
        lines = [f"# From run {record.run_id} of `{self.name(record.workflow)}` ({record.status})."]
        lines.append(f"scenario {name} {{")
        args = record.args if isinstance(record.args, dict) else {}
        given = [self._input(p.name, args.get(p.name), p.type) for p in wf.params if p.name in args]
        lines.append(f"  run: {self.name(record.workflow)}({', '.join(given)})")
        faults = self._faults(runs)
        blocks = [
            ("tools", self._answers(runs)),
            ("replies", self._replies(runs)),
            ("decisions", self._decisions(runs)),
            ("events", self._events(runs)),
        ]
        for key, entries in blocks:
            if entries:
                body = "\n".join(f"    {k}: [{', '.join(v)}]" for k, v in entries.items())
                lines.append(f"  {key}: {{\n{body}\n  }}")
        if faults:
            lines.append(f"  faults: [{', '.join(faults)}]")
        kinds = {e.kind for run in runs for e in run.events}
        fresh = [f"read `{taken}()`" for taken in ("now", "uuid") if taken in kinds]
        if record.run_id in json.dumps(record.result):
            fresh.append("put its run id in the output")
        if fresh and record.status == "completed":
            # A scenario cannot pin them (its run has an id of its own), and the output
            # may be built from them.
            said = " and ".join(fresh)
            lines.append(f"  # The run {said}: the output is not compared.")
            lines.append("  expect: { status: completed }")
            self.notes.append(
                f"the run {said}, which a scenario cannot reproduce: its output is not "
                "compared, only its status and calls"
            )
        else:
            lines.append(f"  expect: {self._expect(record, wf.returns)}")
        lines.append(f"  expect_calls: [{', '.join(self._calls(runs))}]")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _input(self, param: str, plain: Json, t: TypeIR) -> str:
        if t.kind == "secret":
            ref = plain.get("$secret") if isinstance(plain, dict) else None
            m = _SECRET_REF.match(str(ref)) if ref is not None else None
            if m is None:
                raise FromRunError(
                    f"input `{param}` is a secret built from text ({ref}), which a scenario "
                    "cannot give",
                    help="write this scenario by hand",
                )
            return _string(m.group(1))
        return self.value(plain, t, f"input `{param}`")

    def _faults(self, runs: list[RecordedRun]) -> list[str]:
        """The failed attempts of the run's tool and effect calls as `faults`: a scenario
        fails the first attempts of a callee's calls, so failures are written only when they
        hit a callee's first call, and refused elsewhere."""
        faults: list[str] = []
        calls: dict[str, int] = defaultdict(int)
        for run in runs:
            pending: dict[tuple[str, str | None, str], list[tuple[str, str]]] = defaultdict(list)
            for e in run.events:
                data = e.data if isinstance(e.data, dict) else {}
                if e.kind in ("retry", "attempt_failed") and "callee" in data:
                    key = (e.branch, e.state, str(data["callee"]))
                    pending[key].append((str(data.get("kind")), str(data.get("message", ""))))
                    continue
                if e.kind in _CALLS:
                    callee, final = str(data.get(e.kind)), None
                elif e.kind == "call_failed" and data.get("kind_of_call") in _CALLS:
                    callee = str(data.get("callee"))
                    final = (str(data.get("kind")), str(data.get("message", "")))
                elif e.kind == "call_failed":
                    raise FromRunError(
                        f"run {run.record.run_id}: the call of "
                        f"`{_short(str(data.get('callee')))}` failed ({data.get('kind')}), and a "
                        "scenario cannot make an agent or a child run fail so",
                        help="write this scenario by hand",
                    )
                else:
                    continue
                failed = pending.pop((e.branch, e.state, callee), [])
                failed += [final] if final is not None else []
                n = calls[callee]
                calls[callee] += 1
                if failed:
                    faults += self._fault(run.record.run_id, callee, failed, n)
        return faults

    def _fault(
        self, run_id: str, callee: str, attempts: list[tuple[str, str]], n: int
    ) -> list[str]:
        """Faults failing the first attempts as `attempts` (kind, message) say, the same
        ones counted together with `times`."""
        short = _short(callee)
        if n > 0:
            raise FromRunError(
                f"run {run_id}: call {n + 1} of `{short}` failed ({attempts[-1][0]}); a scenario "
                "injects failures into the first attempts of a tool's calls only",
                help="write this scenario by hand, with a `faults` entry",
            )
        groups: list[list[Any]] = []
        for kind, message in attempts:
            if kind not in (self.program.errors or []) and kind not in CALL_FAULTS:
                raise FromRunError(
                    f"run {run_id}: a call of `{short}` failed with `{kind}`, which a scenario "
                    "cannot inject",
                    help="write this scenario by hand",
                )
            if groups and groups[-1][:2] == [kind, message]:
                groups[-1][2] += 1
            else:
                groups.append([kind, message, 1])
        out: list[str] = []
        for kind, message, times in groups:
            shown = self.name(kind) if kind in (self.program.errors or []) else kind
            text = _string(str(redact_json(message)))
            at = self.name(callee)
            out.append(f"{{ kind: {shown}, at: {at}, times: {times}, message: {text} }}")
        return out

    def _params(self, callee: str) -> dict[str, TypeIR]:
        p = self.program
        decl: Any = p.tools.get(callee) or p.effects.get(callee) or p.agents.get(callee)
        return {param.name: param.type for param in decl.params} if decl is not None else {}

    def _omitted(self, callee: str, param: str, t: TypeIR) -> bool:
        for mark in (param, f"{_short(callee)}.{param}"):
            if mark in self.omit:
                self.omitted_used.add(mark)
                return True
        return _holds_secret(t)

    def _call_events(self, runs: list[RecordedRun]) -> list[tuple[str, dict[str, Any], Any, bool]]:
        """The tool and effect calls of the runs, in journal order, as `mnc test` counts
        them: (callee, arguments, result, whether it answered), compensations included,
        and the calls that failed (a fault fails them; they have no result to answer)."""
        out = []
        for run in runs:
            for e in run.events:
                data = e.data if isinstance(e.data, dict) else {}
                args = data.get("args")
                if not isinstance(args, dict):
                    continue
                if e.kind in (*_CALLS, "compensated"):
                    callee = str(data.get("effect") or data.get("tool"))
                    out.append((callee, args, data.get("result"), True))
                elif e.kind == "call_failed" and data.get("kind_of_call") in _CALLS:
                    out.append((str(data.get("callee")), args, None, False))
        return out

    def _answers(self, runs: list[RecordedRun]) -> dict[str, list[str]]:
        answers: dict[str, list[str]] = defaultdict(list)
        for callee, args, result, answered in self._call_events(runs):
            if not answered:
                continue
            decl: Any = self.program.tools.get(callee) or self.program.effects.get(callee)
            if decl is None:
                raise FromRunError(f"the run's program has no tool or effect `{callee}`")
            params = self._params(callee)
            named = ", ".join(
                f"{p}: {self.value(v, params.get(p, _UNKNOWN), f'an argument of `{_short(callee)}`')}"
                for p, v in args.items()
                if not self._omitted(callee, p, params.get(p, _UNKNOWN))
            )
            shown = self.value(result, decl.returns, f"a result of `{_short(callee)}`")
            answers[self.name(callee)].append(f"{{ args: {{ {named} }}, result: {shown} }}")
        return answers

    def _calls(self, runs: list[RecordedRun]) -> list[str]:
        calls = []
        for callee, args, _, _ in self._call_events(runs):
            params = self._params(callee)
            short = self.name(callee)
            if any(self._omitted(callee, p, t) for p, t in params.items()) or set(args) - set(
                params
            ):
                calls.append(short)
                continue
            where = f"an argument of `{short}`"
            shown = [self.value(args[p], t, where) for p, t in params.items() if p in args]
            calls.append(f"{short}({', '.join(shown)})")
        return calls

    def _replies(self, runs: list[RecordedRun]) -> dict[str, list[str]]:
        calls: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        for run in runs:
            turns: dict[tuple[str, str | None, str], list[str]] = defaultdict(list)
            for e in run.events:
                data = e.data if isinstance(e.data, dict) else {}
                agent = str(data.get("agent", ""))
                where = (e.branch, e.state, agent)
                if e.kind == "model_reply" and data.get("tool_calls"):
                    for call in data["tool_calls"]:
                        turns[where].append(self._tool_turn(agent, call))
                elif e.kind == "agent" and agent in self.program.agents:
                    returns = self.program.agents[agent].returns
                    reply = self.value(data.get("result"), returns, f"a reply of `{_short(agent)}`")
                    prompt = str(redact_json(data.get("prompt", "")))
                    calls[agent].append((prompt, [*turns.pop(where, []), reply]))
        out: dict[str, list[str]] = {}
        for agent, made in calls.items():
            if len(made) == 1:
                out[self.name(agent)] = made[0][1]
                continue
            pieces = _distinct([prompt for prompt, _ in made])
            out[self.name(agent)] = [
                f"prompt_has({_string(piece)}, {entry})"
                for piece, (_, entries) in zip(pieces, made, strict=True)
                for entry in entries
            ]
        return out

    def _tool_turn(self, agent: str, call: dict[str, Any]) -> str:
        tools = self.program.agents[agent].tools
        called = str(call.get("name", ""))
        tool = next(
            (t for t in tools if t.rsplit(".", 1)[-1] == called or t.replace(".", "__") == called),
            None,
        )
        try:
            args = json.loads(str(call.get("arguments") or "{}"))
        except json.JSONDecodeError:
            args = None
        if tool is None or not isinstance(args, dict):
            raise FromRunError(
                f"a reply of `{_short(agent)}` calls `{called}`, which the program's agent does "
                "not offer (or with arguments that are not an object)",
                help="write this scenario by hand",
            )
        params = self._params(tool)
        where = f"an argument of `{called}`"
        shown = [self.value(args[p], t, where) for p, t in params.items() if p in args]
        return f"{self.name(tool)}({', '.join(shown)})"

    def _decisions(self, runs: list[RecordedRun]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for run in runs:
            for e in run.events:
                data = e.data if isinstance(e.data, dict) else {}
                if e.kind != "decided" or "repair" in data:
                    continue
                name = decided_name(self.program, run.record.workflow, e)
                by = redact_json(data.get("by"))
                if by == "timeout":
                    out[name].append("timeout")
                    continue
                parts = [f"choice: {data.get('choice')}"]
                if by:
                    parts.append(f"by: {_string(str(by))}")
                comment = redact_json(data.get("comment"))
                if comment:
                    parts.append(f"comment: {_string(str(comment))}")
                out[name].append("{ " + ", ".join(parts) + " }")
        return out

    def _events(self, runs: list[RecordedRun]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for run in runs:
            for e in run.events:
                data = e.data if isinstance(e.data, dict) else {}
                if e.kind != "signal":
                    continue
                event = str(data.get("event"))
                decl = self.program.events.get(event)
                payload_t = decl.payload if decl is not None and decl.payload else None
                where = f"a payload of `{_short(event)}`"
                payload = self.value(data.get("payload"), payload_t, where) if payload_t else "null"
                key = data.get("key")
                entry = (
                    f"{{ key: {_string(str(redact_json(key)))}, payload: {payload} }}"
                    if key is not None
                    else payload
                )
                out[self.name(event)].append(entry)
        return out

    def _expect(self, record: Any, returns: TypeIR) -> str:
        status = record.status
        if status == "completed":
            return f"{{ status: completed, output: {self.value(record.result, returns, 'the output')} }}"
        error = record.error if isinstance(record.error, dict) else {}
        parts = [f"status: {status}"]
        kind = error.get("kind")
        if status == "failed" and isinstance(kind, str):
            if kind in (self.program.errors or []):
                parts.append(f"error: {self.name(kind)}")
            elif kind in EXPECTED_ERRORS:  # else a plain `fail`, expected by its message
                parts.append(f"error: {kind}")
        message = redact_json(error.get("message"))
        if status == "failed" and isinstance(message, str) and message:
            parts.append(f"message: {_string(message)}")
        return "{ " + ", ".join(parts) + " }"


def _distinct(prompts: list[str], most: int = 60) -> list[str]:
    """For each prompt, a short piece of it that no other of `prompts` contains (what the
    prompts do not share, cut to `most` characters), or the whole prompt when none is."""
    prefix = _common_start(prompts)
    suffix = _common_start([p[::-1] for p in prompts])
    out = []
    for prompt in prompts:
        middle = prompt[prefix : max(prefix, len(prompt) - suffix)].strip()
        piece = middle[:most].strip()
        unique = piece and sum(piece in other for other in set(prompts)) == 1
        out.append(piece if unique else prompt)
    return out


def _holds_secret(t: TypeIR) -> bool:
    return t.kind == "secret" or any(_holds_secret(a) for a in t.args)


def _common_start(texts: list[str]) -> int:
    """How many leading characters all of `texts` share."""
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return n


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def _string(text: str) -> str:
    """A string literal whose value is `text`: escapes, and `{{`/`}}` for braces."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == "{":
            out.append("{{")
        elif ch == "}":
            out.append("}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _float(v: float) -> str:
    if not math.isfinite(v):
        raise FromRunError(f"a float that is not finite ({v}) has no literal")
    text = repr(v)
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:  # the language wants digits on both sides of a dot
        mantissa += ".0"
    return mantissa + e + exponent
