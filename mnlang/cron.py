"""Calendar times of a `schedule`: five-field cron expressions and `every` intervals.

A cron expression has five fields, `minute hour day month weekday`, each `*`, a number,
a range `a-b`, a step `*/n` or `a-b/n` or `a/n`, or a comma-separated list of those;
months and weekdays may be written by their English three-letter names (`jan`, `mon`),
and weekday 0 and 7 are both Sunday. As in Vixie cron, when both the day of the month
and the weekday are restricted, a day matching either one fires.

Times are matched in the schedule's time zone (UTC by default), on the wall clock: a
time that a daylight-saving change skips does not fire that day, and a time that it
repeats fires once (the first). `every` intervals count from the Unix epoch, so every
worker computes the same times (`every: 1h` fires on the hour, `every: 1d` at midnight
UTC).

The checker uses `parse_cron` for its diagnostics and the worker uses `next_time`;
this module imports only the standard library.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SEARCH_DAYS = 366 * 8
"""How far ahead a time is looked for: a leap day on a given weekday recurs within 28
years, but a schedule that fires less than once in eight years is not a schedule."""


class CronError(ValueError):
    """A cron expression that cannot be read; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday."""
    any_day: bool
    """The day-of-month field is `*`."""
    any_weekday: bool

    def day_matches(self, day: datetime) -> bool:
        in_month = day.day in self.days
        weekday = (day.weekday() + 1) % 7
        in_week = weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week


def parse_cron(text: str) -> Cron:
    """A cron expression's fields; `CronError` says what is wrong with it."""
    fields = text.split()
    if len(fields) != 5:
        raise CronError(
            f"a cron expression has five fields (minute hour day month weekday), not {len(fields)}"
        )
    minute, hour, day, month, weekday = fields
    weekdays = _field(weekday, "weekday", 0, 7, _WEEKDAYS)
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    return Cron(
        minutes=_field(minute, "minute", 0, 59),
        hours=_field(hour, "hour", 0, 23),
        days=_field(day, "day", 1, 31),
        months=_field(month, "month", 1, 12, _MONTHS),
        weekdays=weekdays,
        any_day=day == "*",
        any_weekday=weekday == "*",
    )


def _field(
    text: str, what: str, low: int, high: int, names: tuple[str, ...] = ()
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"the {what} field `{text}` has a bad step `/{step_text}`")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _value(a, what, low, high, names), _value(b, what, low, high, names)
            if first > last:
                raise CronError(f"the {what} range `{span}` runs backwards")
        else:
            first = _value(span, what, low, high, names)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, what: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if lowered in names:
        # Month names count from 1 (`jan`), weekday names from 0 (`sun`).
        return names.index(lowered) + low if names is _MONTHS else names.index(lowered)
    if not text.isdigit():
        raise CronError(f"`{text}` is not a {what}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{what} `{value}` is outside {low}-{high}")
    return value


def zone(name: str | None) -> tzinfo:
    """A schedule's time zone (UTC when it names none); `CronError` for an unknown one."""
    if name is None:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CronError(f"`{name}` is not a known time zone") from None


def next_cron(cron: Cron, after: float, tz: tzinfo) -> float | None:
    """The first time strictly after `after` (seconds since the epoch) that `cron` names
    in zone `tz`, or `None` when there is none within eight years (`30 2 31 2 *`)."""
    start = datetime.fromtimestamp(after, tz).replace(tzinfo=None, second=0, microsecond=0)
    day = start.replace(hour=0, minute=0)
    for _ in range(_SEARCH_DAYS):
        if day.month in cron.months and cron.day_matches(day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    wall = day.replace(hour=hour, minute=minute)
                    if wall < start:
                        continue
                    at = _instant(wall, tz)
                    if at is not None and at > after:
                        return at
        day += timedelta(days=1)
    return None


def _instant(wall: datetime, tz: tzinfo) -> float | None:
    """The instant a wall-clock time names in `tz` (its first, when a clock change
    repeats it), or `None` when a clock change skips it."""
    aware = wall.replace(tzinfo=tz, fold=0)
    back = datetime.fromtimestamp(aware.timestamp(), tz).replace(tzinfo=None)
    return aware.timestamp() if back == wall else None


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
    return next_cron(parse_cron(cron), after, zone(timezone))
