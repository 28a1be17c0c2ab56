"""Commands by which people and other systems act on runs: approve, reject, signal,
cancel and retry."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

from mnlang.cli.shared import (
    RUN_EXIT,
    db_option,
    finish_run,
    json_option,
    remote,
    run_error,
    server_option,
)

if TYPE_CHECKING:
    from mnlang.runtime.recovery import BulkRetried
    from mnlang.runtime.run import RunOutcome

_detach_option = click.option(
    "--detach",
    is_flag=True,
    help="Only record it; a worker (`mnc worker`) or `mnc resume` moves the run on.",
)


def _finish_runs(head: dict[str, object], runs: list[RunOutcome], as_json: bool) -> NoReturn:
    """Print what a decision or signal did and the runs that went on; exit with the run's
    status (0 when it was left to a worker)."""
    import json

    from mnlang.run_output import outcome_lines

    if as_json:
        click.echo(
            json.dumps({**head, "runs": [r.to_json() for r in runs]}, ensure_ascii=False, indent=2)
        )
    else:
        for index, outcome in enumerate(runs):
            if index:
                click.echo("its parent went on:")
            click.echo("\n".join(outcome_lines(outcome)))
    sys.exit(RUN_EXIT[runs[0].status] if runs else 0)


def _decide(
    run_id: str,
    checkpoint: str,
    approve: bool,
    choice: str | None,
    by: str | None,
    comment: str | None,
    result_text: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
    server: str | None = None,
    server_token: str | None = None,
) -> NoReturn:
    from mnlang import api
    from mnlang.jsonin import JSONInputError, decode_json
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    result = None
    if result_text is not None:
        try:
            result = decode_json(result_text, "--result")
        except JSONInputError as e:
            run_error(e)
    if server is not None:
        picked = choice or ("approve" if approve else "reject")
        remote(
            server,
            server_token,
            lambda c: c.decide(run_id, checkpoint, picked, comment=comment, result=result),
        )
    try:
        outcome = api.decide(
            run_id,
            checkpoint,
            approve=approve,
            choice=choice,
            by=by,
            comment=comment,
            result=result,
            resume=not detach,
            db=db,
        )
    except (RunError, StoreError) as e:
        run_error(e)
    decided = outcome.decided
    if not as_json:
        note = f": {decided.comment}" if decided.comment else ""
        click.echo(
            f"decided: checkpoint {decided.name} of run {decided.run_id}: "
            f"{decided.choice} by {decided.by}{note}"
        )
    _finish_runs({"decision": decided.to_json()}, outcome.runs, as_json)


@click.command()
@click.argument("run_id")
@click.argument("checkpoint")
@click.option("--choice", help="Pick this option instead of `approve` (e.g. `load`, `retry`).")
@click.option("--by", help="Who decides (default: your user name).")
@click.option("--comment", help="Why; the workflow reads it as `decision.comment`.")
@click.option(
    "--result",
    "result_text",
    metavar="JSON",
    help="With `--choice mark_done` on a repair: the effect's result, as JSON.",
)
@_detach_option
@db_option
@json_option
@server_option
def approve(
    run_id: str,
    checkpoint: str,
    choice: str | None,
    by: str | None,
    comment: str | None,
    result_text: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
    server: str | None,
    server_token: str | None,
) -> None:
    """Approve CHECKPOINT (its name or id) of run RUN_ID, or decide it with --choice; the
    run then goes on here unless --detach. The first decision committed wins: a decision
    after another one, or after the checkpoint's timeout fell due, is refused (exit 2).
    Exits like `mnc run` with the run's status."""
    _decide(
        run_id,
        checkpoint,
        True,
        choice,
        by,
        comment,
        result_text,
        detach,
        db,
        as_json,
        server,
        server_token,
    )


@click.command()
@click.argument("run_id")
@click.argument("checkpoint")
@click.option("--by", help="Who decides (default: your user name).")
@click.option("--comment", help="Why; the workflow reads it as `decision.comment`.")
@_detach_option
@db_option
@json_option
@server_option
def reject(
    run_id: str,
    checkpoint: str,
    by: str | None,
    comment: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
    server: str | None,
    server_token: str | None,
) -> None:
    """Reject CHECKPOINT (its name or id) of run RUN_ID (a repair checkpoint: fail the
    step); the run then goes on here unless --detach. Exits like `mnc approve`."""
    _decide(
        run_id,
        checkpoint,
        False,
        None,
        by,
        comment,
        None,
        detach,
        db,
        as_json,
        server,
        server_token,
    )


@click.command("signal")
@click.argument("args", nargs=-1, metavar="RUN_ID EVENT [JSON]")
@click.option("--key", help="The correlation key: only `wait EVENT for KEY` takes it.")
@click.option(
    "--token",
    help="A callback token from `callback_token(...)`: it names the run, event and key, "
    "so give only [JSON].",
)
@click.option(
    "--id", "signal_id", help="The signal's id: a signal with an id already sent is ignored."
)
@_detach_option
@db_option
@json_option
@server_option
def signal_command(
    args: tuple[str, ...],
    key: str | None,
    token: str | None,
    signal_id: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
    server: str | None,
    server_token: str | None,
) -> None:
    """Send EVENT, with its JSON payload (and --key), to run RUN_ID, or answer a callback
    --token. A run not waiting for it yet finds it in its mailbox when it does. A run
    waiting for it goes on here unless --detach; exits like `mnc run` then, else 0."""
    from mnlang import api
    from mnlang.jsonin import JSONInputError, decode_json
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    if token is not None:
        if key is not None or len(args) > 1:
            raise click.UsageError(
                "with --token give only the JSON payload: the token names the rest"
            )
        run_id, event, payload = None, None, (args[0] if args else None)
    elif 2 <= len(args) <= 3:
        run_id, event, payload = args[0], args[1], (args[2] if len(args) == 3 else None)
    else:
        raise click.UsageError("give RUN_ID EVENT [JSON], or --token TOKEN [JSON]")
    value = None
    if payload is not None:
        try:
            value = decode_json(payload, "the payload")
        except JSONInputError as e:
            run_error(e)
    if server is not None:
        if token is not None:
            remote(
                server, server_token, lambda c: c.signal_token(token, value, signal_id=signal_id)
            )
        assert run_id is not None and event is not None
        remote(
            server,
            server_token,
            lambda c: c.signal(run_id, event, value, key=key, signal_id=signal_id),
        )
    try:
        outcome = api.signal(
            run_id,
            event,
            value,
            signal_id=signal_id,
            key=key,
            token=token,
            resume=not detach,
            db=db,
        )
    except (RunError, StoreError) as e:
        run_error(e)
    delivered = outcome.delivered
    if not as_json:
        keyed = f" (key {delivered.key})" if delivered.key is not None else ""
        if not delivered.accepted:
            click.echo(
                f"ignored: signal `{signal_id}` was delivered to run {delivered.run_id} before"
            )
        else:
            click.echo(f"delivered: {delivered.event}{keyed} to run {delivered.run_id}")
            if not delivered.waiting:
                click.echo("the run does not wait for it now; it finds it when it does")
    _finish_runs({"signal": delivered.to_json()}, outcome.runs, as_json)


@click.command()
@click.argument("run_id")
@click.option("--by", help="Who cancels (default: your user name; with --server, the token's).")
@db_option
@json_option
@server_option
def cancel(
    run_id: str,
    by: str | None,
    db: str | None,
    as_json: bool,
    server: str | None,
    server_token: str | None,
) -> None:
    """Cancel a run; its `finally` bodies and compensations run. Exits 4 once cancelled.
    Who asked is kept with the run (`mnc show`) and in its `cancelled` event (`mnc log`)."""
    if server is not None:
        remote(server, server_token, lambda c: c.cancel(run_id))
    from mnlang import api
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    try:
        outcome = api.cancel_run(run_id, by=by, db=db)
    except (RunError, StoreError) as e:
        run_error(e)
    finish_run(outcome, as_json)


@click.command()
@click.argument("run_id", required=False)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Retry every failed run matching: workflow=, class=, since=, until= (Unix "
    "seconds or an ISO 8601 time), q= (text in the id or input). Repeatable.",
)
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--by", help="Who retries (default: your user name).")
@_detach_option
@db_option
@json_option
@server_option
def retry(
    run_id: str | None,
    filters: tuple[str, ...],
    limit: int,
    by: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
    server: str | None,
    server_token: str | None,
) -> None:
    """Retry failed run RUN_ID in place, from its failed step, once its cause is fixed
    (code, configuration, a key). A run whose unwinding did work outside it (an effect
    in a `finally`, compensations) is refused with the reason (exit 2)."""
    from mnlang.runtime.recovery import RunFilter

    if (run_id is None) == (not filters):
        raise click.UsageError("give a RUN_ID or --filter, one of them")
    try:
        query = RunFilter.parse(filters) if filters else None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if server is not None:
        if query is not None:
            body = query.to_json()
            remote(server, server_token, lambda c: c.bulk_retry(body, limit=limit))
        assert run_id is not None
        remote(server, server_token, lambda c: c.retry(run_id))
    from mnlang import api
    from mnlang.runtime.decisions import default_decider
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    who = by or default_decider()
    if query is not None:
        try:
            bulk = api.retry_runs(query, by=who, limit=limit, execute=not detach, db=db)
        except (RunError, StoreError) as e:
            run_error(e)
        _print_bulk(bulk, as_json)
    assert run_id is not None
    try:
        outcome = api.retry_run(run_id, by=who, execute=not detach, db=db)
    except (RunError, StoreError) as e:
        run_error(e)
    if detach and not as_json:
        click.echo(f"retried: run {run_id} goes on from its failed step on a worker")
        sys.exit(0)
    finish_run(outcome, as_json)


def _print_bulk(bulk: BulkRetried, as_json: bool) -> NoReturn:
    """Each run's outcome; exit 0 when every matching run was retried, else 2."""
    import json

    if as_json:
        click.echo(json.dumps(bulk.to_json(), ensure_ascii=False, indent=2))
    else:
        for outcome in bulk.retried:
            click.echo(f"retried: {outcome.run_id}: {outcome.status}")
        for refused_id, reason in bulk.refused:
            click.echo(f"refused: {refused_id}: {reason}")
        if bulk.more:
            click.echo("more runs matched than --limit: run it again")
        if not bulk.retried and not bulk.refused:
            click.echo("no failed run matched")
    sys.exit(2 if bulk.refused else 0)
