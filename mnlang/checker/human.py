"""Human checkpoints, event waits and selects: every wait for the outside world has an end
(E501-E505, E520-E524).

A checkpoint needs a `timeout` and an `on_timeout` naming one of its options,
or an explicit `timeout: never`; a `wait` for an event needs a `timeout` (or
`never`); a `select` waits for at least one thing, once per event and key, and ends by
its single `after` arm (or `after never`), which is the only timer its arms have;
checkpoint names are unique within a workflow because decisions are
addressed by name (`mnc approve RUN NAME`).
"""

from __future__ import annotations

from mnlang.checker.fixes import add_options
from mnlang.checker.program import Program, Symbol
from mnlang.checker.steps import (
    DEFAULT_CHOICES,
    checkpoint_choices,
    nested_statement,
    walk,
    workflows,
)
from mnlang.checker.suggest import NO_SUGGESTION, suggest
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast


def check_checkpoints(program: Program, diags: Diagnostics) -> None:
    """Report E501-E505 over the checkpoints and waits of every workflow."""
    for wf in workflows(program):
        decl = wf.decl
        assert isinstance(decl, ast.WorkflowDecl)
        names: dict[str, ast.Ident] = {}
        for stmt in (s for block in decl.blocks() for s in walk(block)):
            inner = nested_statement(stmt)
            if isinstance(inner, ast.Checkpoint):
                _check_checkpoint(wf.module.tree.source, inner, diags)
                _check_unique(wf, inner, names, diags)
            elif isinstance(inner, ast.Wait) and inner.event is not None:
                _check_wait(inner, inner.event, diags)
            elif isinstance(stmt, ast.Select):
                _check_select(stmt, diags)
                for arm in stmt.arms:
                    if arm.checkpoint is not None:
                        _check_unique(wf, arm.checkpoint, names, diags)


def _is_never(entry: ast.Entry) -> bool:
    return isinstance(entry.value, ast.Name) and entry.value.name == "never"


def _check_checkpoint(source: str, cp: ast.Checkpoint, diags: Diagnostics) -> None:
    name = cp.name.name
    choices = checkpoint_choices(cp)
    fallback = "reject" if "reject" in choices else (choices[-1] if choices else "reject")
    timeout = cp.options.get("timeout")
    on_timeout = cp.options.get("on_timeout")
    if timeout is None:
        diags.add(
            "E501",
            cp.name,
            f"checkpoint `{name}` has no `timeout`",
            help=f"add `timeout: 24h` and `on_timeout: {fallback}`, "
            "or `timeout: never` to wait for a person without limit",
            notes=[
                "a run waiting at a checkpoint holds its state until someone decides; "
                "the timeout says what happens when nobody does"
            ],
            fix=add_options(source, cp.options, ["timeout: 24h", f"on_timeout: {fallback}"]),
        )
    elif on_timeout is None and not _is_never(timeout):
        diags.add(
            "E502",
            timeout,
            f"checkpoint `{name}` has a `timeout` but no `on_timeout`",
            labels=[Label(cp.name.span, "this checkpoint")],
            help=f"add `on_timeout: {fallback}`: the decision taken when the time is up",
            fix=add_options(source, cp.options, [f"on_timeout: {fallback}"]),
        )
    if on_timeout is not None:
        _check_on_timeout(cp, on_timeout, choices, diags)


def _check_on_timeout(
    cp: ast.Checkpoint, on_timeout: ast.Entry, choices: list[str], diags: Diagnostics
) -> None:
    value = on_timeout.value
    if isinstance(value, ast.Name) and value.name in choices:
        return
    shown = ", ".join(f"`{c}`" for c in choices)
    written = cp.options.get("options")
    labels = (
        [Label(written.value.span, "the options")]
        if written is not None
        else [Label(cp.name.span, f"options default to `[{', '.join(DEFAULT_CHOICES)}]`")]
    )
    got = f"`{value.name}`" if isinstance(value, ast.Name) else "this value"
    hint = (
        suggest(value.span, value.name, choices) if isinstance(value, ast.Name) else NO_SUGGESTION
    )
    diags.add(
        "E503",
        value,
        f"`on_timeout` of checkpoint `{cp.name.name}` is {got}, which is not one of its options",
        labels=labels,
        help=hint.help or f"name one of the options: {shown}",
        fix=hint.fix,
    )


def _check_unique(
    wf: Symbol, cp: ast.Checkpoint, names: dict[str, ast.Ident], diags: Diagnostics
) -> None:
    name = cp.name.name
    first = names.get(name)
    if first is None:
        names[name] = cp.name
        return
    diags.add(
        "E505",
        cp.name,
        f"workflow `{wf.decl.name.name}` has two checkpoints named `{name}`",
        labels=[Label(first.span, "first checkpoint with this name")],
        help=f"rename one, e.g. `{name}_2`: decisions are addressed by checkpoint name "
        "(`mnc approve RUN NAME`)",
    )


def _check_wait(wait: ast.Wait, event: ast.Ident, diags: Diagnostics) -> None:
    if wait.options is not None and wait.options.get("timeout") is not None:
        return
    diags.add(
        "E504",
        event,
        f"`wait {event.name}` has no `timeout`",
        help=f"write `wait {event.name} {{ timeout: 2d }}` (the value is then `null` when the "
        "time is up), or `{ timeout: never }` to wait without limit",
    )


def _key_text(wait: ast.Wait) -> str | None:
    """A wait's correlation key as written (`None` without one), to compare two arms."""
    return None if wait.key is None else _source_of(wait.key)


def _source_of(expr: ast.Expr) -> str:
    """An expression's text, structurally (two spellings of one key compare equal)."""
    return repr(_strip_spans(expr))


def _strip_spans(node: object) -> object:
    if isinstance(node, list):
        return [_strip_spans(x) for x in node]
    if isinstance(node, ast.Node):
        return (
            type(node).__name__,
            tuple(
                _strip_spans(getattr(node, f))
                for f in ast.field_names(type(node))
                if f not in ("span", "ty", "ref", "target")
            ),
        )
    return node


def _check_select(select: ast.Select, diags: Diagnostics) -> None:
    if not select.arms:
        diags.add(
            "E520",
            select,
            "this `select` has no arms: it would wait for nothing",
            help="add the things it waits for: `wait EVENT as x { ... }`, "
            "`checkpoint NAME { ... } as d { ... }`, and `after 1d { ... }`",
        )
        return
    seen: dict[tuple[str, str | None], ast.Wait] = {}
    afters: list[ast.SelectArm] = []
    for arm in select.arms:
        if arm.wait is not None and arm.wait.event is not None:
            event = arm.wait.event
            address = (event.name, _key_text(arm.wait))
            first = seen.get(address)
            if first is not None:
                keyed = " with the same key" if arm.wait.key is not None else ""
                diags.add(
                    "E521",
                    arm.wait,
                    f"two arms of this `select` wait for `{event.name}`{keyed}",
                    labels=[Label(first.span, "the first arm for it")],
                    help="a signal wins one arm: merge the two arms into one, or correlate "
                    f"them by different keys (`wait {event.name} for KEY as x {{ ... }}`)",
                )
            else:
                seen[address] = arm.wait
        elif arm.checkpoint is not None:
            for option in ("timeout", "on_timeout"):
                entry = arm.checkpoint.options.get(option)
                if entry is not None:
                    diags.add(
                        "E524",
                        entry.key,
                        f"checkpoint `{arm.checkpoint.name.name}` in a `select` has its own "
                        f"`{option}`",
                        help="remove it: the select's `after` arm is the timer of all its arms "
                        "(`after 24h { ... }`)",
                    )
        elif arm.after is not None:
            afters.append(arm)
    if len(afters) > 1:
        diags.add(
            "E523",
            afters[1],
            "this `select` has two `after` arms",
            labels=[Label(afters[0].span, "the first `after` arm")],
            help="keep one: the select's timer is the shorter of the two",
        )
    if not afters:
        diags.add(
            "E522",
            select,
            "this `select` has no `after` arm: how long does it wait?",
            help="add `after 1d { ... }` (what happens when nothing came in time), "
            "or `after never {}` to wait without limit",
            notes=["like a wait's `timeout`, a select says when it gives up"],
        )
