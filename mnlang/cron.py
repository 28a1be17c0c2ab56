"""Calendar times of a `schedule`: cron expressions and `every` intervals.

A cron expression is read as cron(8) reads it, by `cronsim` (imported only when a cron
is read, so that `import mnlang` stays light): five fields, `minute hour day month
weekday`, or one of `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
(`@midnight`) and `@hourly`. When the day-of-month or the weekday field starts with
`*`, a day must match both; when both are restricted, a day matching either one fires
(Vixie cron: `0 0 */2 * mon` is every other day that is also a Monday).

Times are matched in the schedule's time zone (UTC by default), on the wall clock, with
cron's daylight-saving rule: a job at a fixed time (neither the minute nor the hour
field starts with `*`) that a clock change skips runs at the first minute after the
change, and one at a time that the change repeats runs once; a job whose minute or hour
field starts with `*` follows the clock as it is, so the repeated hour runs again
(`*/15` runs 02:00-02:45 twice when the clock goes back at 03:00) and the skipped hour
does not run. `every` intervals count from the Unix epoch, so every worker computes the
same times (`every: 1h` fires on the hour, `every: 1d` at midnight UTC).

The checker uses `check_cron` for its diagnostics and the worker uses `next_time`.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = {
    "minute": "0-59",
    "hour": "0-23",
    "day": "1-31",
    "month": "1-12 or jan-dec",
    "weekday": "0-7 or sun-sat",
}
_CRONSIM_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


class CronError(ValueError):
    """A cron expression that cannot be read; the message says which field and why."""


def five_fields(text: str) -> str:
    """`text` as five cron fields (an `@daily`-style name spelled out)."""
    stripped = text.strip()
    if stripped.startswith("@"):
        fields = ALIASES.get(stripped.lower())
        if fields is None:
            raise CronError(f"`{stripped}` is not one of {', '.join(ALIASES)}")
        return fields
    count = len(stripped.split())
    if count != 5:
        raise CronError(
            f"a cron expression has five fields (minute hour day month weekday), not {count}"
        )
    return stripped


def _explain(fields: str, message: str) -> str:
    from cronsim import CronSim, CronSimError

    parts = fields.split()
    for name, theirs, text in zip(_FIELDS, _CRONSIM_FIELDS, parts, strict=True):
        if message == f"Bad {theirs}":
            if name == "day":
                # Each field may be fine and the days still not exist (`31 2`): then the
                # same days read in every month are accepted.
                try:
                    CronSim(" ".join([*parts[:3], "*", parts[4]]), datetime(2000, 1, 1))
                except CronSimError:
                    pass
                else:
                    return "the expression names no date that exists (it would never run)"
            return f"the {name} field `{text}` is not a valid {name} ({_FIELDS[name]})"
    return message


def zone(name: str | None) -> tzinfo:
    """A schedule's time zone (UTC when it names none); `CronError` for an unknown one."""
    if name is None:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CronError(f"`{name}` is not a known time zone") from None


def check_cron(text: str) -> None:
    """Raise `CronError` when `text` is not a cron expression that ever fires."""
    if next_cron(text, 0.0, UTC) is None:
        raise CronError("the expression names no date that exists (it would never run)")


def next_cron(text: str, after: float, tz: tzinfo) -> float | None:
    """The first time strictly after `after` (seconds since the epoch) that the cron
    expression `text` names in zone `tz`, or `None` when there is none within fifty years
    (cronsim's horizon)."""
    from cronsim import CronSim, CronSimError

    fields = five_fields(text)
    try:
        times = CronSim(fields, datetime.fromtimestamp(after, tz))
    except CronSimError as e:
        raise CronError(_explain(fields, str(e))) from None
    for found in times:
        at = found.timestamp()
        # Starting inside a repeated hour, cronsim reads a fixed time on the wall clock
        # and may name the hour's first pass, which is already over.
        if at > after:
            return at
    return None


def next_every(every_ms: int, after: float) -> float:
    """The first multiple of `every_ms` since the Unix epoch strictly after `after`."""
    step = every_ms / 1000
    return (after // step + 1) * step


def next_time(
    *, every_ms: int | None, cron: str | None, timezone: str | None, after: float
) -> float | None:
    """The next time a schedule fires after `after`; `CronError` for a bad expression."""
    if every_ms is not None:
        if every_ms <= 0:
            raise CronError("`every` must be longer than zero")
        return next_every(every_ms, after)
    if cron is None:
        raise CronError("a schedule needs `every` or `cron`")
    return next_cron(cron, after, zone(timezone))
