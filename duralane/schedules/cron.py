"""A cron engine with explicit DST rules, written so "now" is always passed in.

Two forms are accepted:

    min hour dom month dow              the classic five fields
    sec min hour dom month dow          six fields, seconds FIRST (NCRONTAB,
                                        the form Azure Functions timer triggers use)

Each field takes `*`, single values, lists (`1,15`), ranges (`1-5`), steps
(`*/15`, `10-40/10`, `5/20` meaning 5 to the field's end), month names
(`JAN`-`DEC`) and day names (`SUN`-`SAT`, with 7 also Sunday). `?` stands for
`*` in the two day fields. `@hourly`, `@daily`, `@midnight`, `@weekly`,
`@monthly`, `@yearly` and `@annually` are shorthands for five-field forms.

Day of month and day of week follow classic cron: when both are restricted
(neither allows every day), a day matches if EITHER matches, so `0 0 1 * MON`
fires on the 1st and on every Monday; when one allows every day, only the other
decides. A field is restricted by what it allows, not by how it is written:
`1-31` in the day-of-month field counts as `*`. (NCRONTAB itself requires both
to match; parse(..., ncrontab=True) reads it that way for timer triggers, as
the Functions host does. Schedules keep the classic rule for five and six
fields alike, so one expression means one thing in either form.)

Matching happens on the wall clock of a time zone, and the wall clock is not
one-to-one with real time, so two policies decide what happens at transitions:

    dst="shift"  a wall time that does not exist (spring-forward gap) fires at
                 the first instant after the gap; several such times collapse
                 into that one fire
    dst="skip"   such a wall time does not fire
    fold="once"  a wall time that happens twice (fall-back fold) fires at its
                 first occurrence only
    fold="both"  it fires at both occurrences

All instants going in must be aware; all instants coming out are UTC.
"""

from __future__ import annotations

import calendar
import heapq
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from duralane.schedules.errors import CronSyntaxError

GapPolicy = Literal["shift", "skip"]
FoldPolicy = Literal["once", "both"]

_MONTHS_SPELLED = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC"
_MONTH_NAMES = {name: n for n, name in enumerate(_MONTHS_SPELLED.split(), start=1)}
_DAYS_SPELLED = "SUN MON TUE WED THU FRI SAT"
_DAY_NAMES = {name: n for n, name in enumerate(_DAYS_SPELLED.split())}

_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Longest stretch searched for the next matching wall time. Parsing already
# rejects expressions that can never match; the longest real wait is a
# 29 February, eight years apart across 2100, so this only ends searches that
# run into the end of the calendar.
_SEARCH_YEARS = 30

# Offsets are sampled this far ahead of a start instant to find how far back
# a coming fall-back can move the wall clock; real transitions are months
# apart, so sampling every three hours cannot miss one.
_OFFSET_LOOKAHEAD = timedelta(days=2)
_OFFSET_SAMPLE_STEP = timedelta(hours=3)

_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class _FieldSpec:
    """The name, bounds and spelled-out names of one cron field."""

    name: str
    low: int
    high: int
    names: dict[str, int]
    allows_question_mark: bool = False
    # Where `*` and an open-ended step stop; below `high` only for the
    # day-of-week field, whose 7 is an alias of Sunday rather than an eighth day.
    cycle_end: int | None = None

    @property
    def last_of_cycle(self) -> int:
        """The value `*` and `N/step` run up to."""
        return self.high if self.cycle_end is None else self.cycle_end


_SECOND = _FieldSpec("second", 0, 59, {})
_MINUTE = _FieldSpec("minute", 0, 59, {})
_HOUR = _FieldSpec("hour", 0, 23, {})
_DAY_OF_MONTH = _FieldSpec("day-of-month", 1, 31, {}, allows_question_mark=True)
_MONTH = _FieldSpec("month", 1, 12, _MONTH_NAMES)
# 7 is accepted as Sunday and folded onto 0 after parsing.
_DAY_OF_WEEK = _FieldSpec(
    "day-of-week", 0, 7, _DAY_NAMES, allows_question_mark=True, cycle_end=6
)


def _parse_value(spec: _FieldSpec, field_text: str, token: str) -> int:
    """Read one number or name, checked against the field's bounds."""
    upper = token.upper()
    if upper in spec.names:
        return spec.names[upper]
    if not token.isdigit():
        if spec.names:
            allowed = f"a number {spec.low}-{spec.high} or a name"
        else:
            allowed = f"a number {spec.low}-{spec.high}"
        raise CronSyntaxError(spec.name, field_text, f"'{token}' is not {allowed}")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise CronSyntaxError(
            spec.name,
            field_text,
            f"value {value} out of range {spec.low}-{spec.high}",
        )
    return value


def _parse_item(spec: _FieldSpec, field_text: str, item: str) -> set[int]:
    """Expand one comma-separated item: a value, range, star, each with a step."""
    if not item:
        raise CronSyntaxError(spec.name, field_text, "empty list item")
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit():
            raise CronSyntaxError(
                spec.name, field_text, f"step '{step_text}' is not a whole number"
            )
        step = int(step_text)
        if step < 1:
            raise CronSyntaxError(spec.name, field_text, "step must be at least 1")

    if base == "?":
        if not spec.allows_question_mark:
            raise CronSyntaxError(
                spec.name, field_text, "'?' is only allowed in the two day fields"
            )
        if slash:
            raise CronSyntaxError(spec.name, field_text, "'?' cannot take a step")
        base = "*"

    if base == "*":
        start, end = spec.low, spec.last_of_cycle
    elif "-" in base:
        start_text, _, end_text = base.partition("-")
        start = _parse_value(spec, field_text, start_text)
        end = _parse_value(spec, field_text, end_text)
        if start > end:
            raise CronSyntaxError(
                spec.name,
                field_text,
                f"range {start}-{end} runs backwards; write it as two ranges",
            )
    else:
        start = _parse_value(spec, field_text, base)
        # A bare value with a step runs to the field's end, as in Vixie cron.
        end = max(start, spec.last_of_cycle) if slash else start
    return set(range(start, end + 1, step))


def _parse_field(spec: _FieldSpec, field_text: str) -> tuple[int, ...]:
    """Expand one field to the sorted values it allows."""
    values: set[int] = set()
    for item in field_text.split(","):
        values |= _parse_item(spec, field_text, item)
    if spec is _DAY_OF_WEEK and 7 in values:
        values.discard(7)
        values.add(0)
    return tuple(sorted(values))


def _first_at_least(values: tuple[int, ...], floor: int) -> int | None:
    """The smallest allowed value >= floor, or None when the field is exhausted."""
    index = bisect_left(values, floor)
    return values[index] if index < len(values) else None


@dataclass(frozen=True)
class _Resolution:
    """Where one wall time lands in real time: the instants that fire for it.

    `earliest` is the smallest instant this wall time or any later one can
    produce, which lets the fire stream release pending instants in order.
    """

    instants: tuple[datetime, ...]
    earliest: datetime


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression: the values each field allows."""

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    # NCRONTAB (the Functions timer trigger) needs both day fields to match.
    both_days_must_match: bool = False

    @classmethod
    def parse(cls, text: str, *, ncrontab: bool = False) -> CronExpression:
        """Parse five or six fields (seconds first), or raise CronSyntaxError.

        ncrontab=True reads the day fields as the Functions host does: a day
        must match both, not either, when both are restricted.
        """
        stripped = text.strip()
        if stripped.startswith("@"):
            if stripped.lower() not in _SHORTHANDS:
                raise CronSyntaxError(
                    "expression",
                    stripped,
                    f"unknown shorthand; use one of {', '.join(sorted(_SHORTHANDS))}",
                )
            fields = _SHORTHANDS[stripped.lower()].split()
        else:
            fields = stripped.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        elif len(fields) != 6:
            raise CronSyntaxError(
                "expression",
                stripped,
                f"expected 5 fields (min hour dom month dow) or 6 with seconds "
                f"first, got {len(fields)}",
            )
        specs = (_SECOND, _MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)
        parsed = [
            _parse_field(spec, field) for spec, field in zip(specs, fields, strict=True)
        ]
        seconds, minutes, hours, days_of_month, months, days_of_week = parsed
        expression = cls(
            stripped,
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            both_days_must_match=ncrontab,
        )
        expression._check_can_match(fields[3])
        return expression

    @property
    def day_of_month_restricted(self) -> bool:
        """Whether the day-of-month field excludes some day."""
        return len(self.days_of_month) < 31

    @property
    def day_of_week_restricted(self) -> bool:
        """Whether the day-of-week field excludes some weekday."""
        return len(self.days_of_week) < 7

    def _check_can_match(self, day_of_month_text: str) -> None:
        """Refuse a day-of-month that no allowed month has, such as 30 FEB."""
        if self.day_of_week_restricted or not self.day_of_month_restricted:
            return
        # Leap years included: 29 FEB is rare, not impossible.
        longest_month = max(
            calendar.monthrange(2000, month)[1] for month in self.months
        )
        if self.days_of_month[0] > longest_month:
            month_names = ",".join(
                name for name, number in _MONTH_NAMES.items() if number in self.months
            )
            raise CronSyntaxError(
                "day-of-month",
                day_of_month_text,
                f"day {self.days_of_month[0]} never occurs in {month_names}",
            )

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        """Apply the classic either-or rule for the two day fields, or NCRONTAB's."""
        in_month = day in self.days_of_month
        # Python counts Monday as 0; cron counts Sunday as 0.
        in_week = (calendar.weekday(year, month, day) + 1) % 7 in self.days_of_week
        if (
            self.day_of_month_restricted
            and self.day_of_week_restricted
            and not self.both_days_must_match
        ):
            return in_month or in_week
        return in_month and in_week

    def _first_day(self, year: int, month: int, from_day: int) -> int | None:
        """The first matching day of this month on or after from_day."""
        days_in_month = calendar.monthrange(year, month)[1]
        for day in range(from_day, days_in_month + 1):
            if self._day_matches(year, month, day):
                return day
        return None

    def next_wall_time(self, start: datetime) -> datetime | None:
        """The first naive wall time >= start that matches, skipping by field."""
        year, month, day = start.year, start.month, start.day
        hour, minute, second = start.hour, start.minute, start.second
        if start.microsecond:
            second += 1
        last_year = min(start.year + _SEARCH_YEARS, datetime.max.year)

        # Each miss moves the smallest coarser field on and zeroes the finer
        # ones, then rechecks from the month down; overflow (second 60, hour
        # 24, day 32, month 13) falls through to the coarser field's lookup.
        while year <= last_year:
            found_month = _first_at_least(self.months, month)
            if found_month is None:
                year, month, day, hour, minute, second = year + 1, 1, 1, 0, 0, 0
                continue
            if found_month != month:
                month, day, hour, minute, second = found_month, 1, 0, 0, 0

            found_day = self._first_day(year, month, day)
            if found_day is None:
                month, day, hour, minute, second = month + 1, 1, 0, 0, 0
                continue
            if found_day != day:
                day, hour, minute, second = found_day, 0, 0, 0

            found_hour = _first_at_least(self.hours, hour)
            if found_hour is None:
                day, hour, minute, second = day + 1, 0, 0, 0
                continue
            if found_hour != hour:
                hour, minute, second = found_hour, 0, 0

            found_minute = _first_at_least(self.minutes, minute)
            if found_minute is None:
                hour, minute, second = hour + 1, 0, 0
                continue
            if found_minute != minute:
                minute, second = found_minute, 0

            found_second = _first_at_least(self.seconds, second)
            if found_second is None:
                minute, second = minute + 1, 0
                continue
            return datetime(year, month, day, hour, minute, found_second)
        return None

    def fire_times(
        self,
        after: datetime,
        zone: tzinfo,
        *,
        dst: GapPolicy = "shift",
        fold: FoldPolicy = "once",
    ) -> Iterator[datetime]:
        """Yield every fire instant strictly after `after`, ascending, in UTC."""
        after_utc = _require_aware(after).astimezone(UTC)
        resolver = _WallClock(zone)
        wall_time = self.next_wall_time(resolver.earliest_wall_time_after(after_utc))

        # Wall times come in ascending order, but with fold="both" the second
        # occurrence of a repeated time comes after later wall times' first
        # occurrences in real time. Pending instants wait in a heap until no
        # later wall time can produce an earlier one.
        pending: list[datetime] = []
        last_yielded: datetime | None = None
        while True:
            if wall_time is None:
                floor = datetime.max.replace(tzinfo=UTC)
                resolution = None
            else:
                resolution = resolver.resolve(wall_time, dst=dst, fold=fold)
                floor = resolution.earliest
            while pending and pending[0] <= floor:
                instant = heapq.heappop(pending)
                # Several gap times shifted to one instant fire once.
                if instant != last_yielded:
                    last_yielded = instant
                    yield instant
            if resolution is None or wall_time is None:
                return
            for instant in resolution.instants:
                if instant > after_utc:
                    heapq.heappush(pending, instant)
            wall_time = self.next_wall_time(wall_time + _ONE_SECOND)

    def next_after(
        self,
        instant: datetime,
        zone: tzinfo,
        *,
        dst: GapPolicy = "shift",
        fold: FoldPolicy = "once",
    ) -> datetime | None:
        """The first fire strictly after `instant`, in UTC; None past year 9999."""
        return next(self.fire_times(instant, zone, dst=dst, fold=fold), None)


def _require_aware(instant: datetime) -> datetime:
    """Refuse naive datetimes: a naive time silently means the host's zone."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant {instant.isoformat()} has no time zone; pass UTC")
    return instant


class _WallClock:
    """Maps wall times of one zone to real instants, with the DST policies."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        # The last gap found, as (first instant after the gap, its offset): a
        # frequent expression lands in one gap many times.
        self._last_gap: tuple[datetime, timedelta] | None = None

    def _offset_at(self, instant: datetime) -> timedelta:
        """The zone's UTC offset in force at a UTC instant."""
        offset = instant.astimezone(self.zone).utcoffset()
        assert offset is not None  # a tzinfo from astimezone always has one
        return offset

    def earliest_wall_time_after(self, instant: datetime) -> datetime:
        """A naive wall time no later than any the clock shows after `instant`."""
        smallest_offset = self._offset_at(instant)
        probe = instant
        while probe < instant + _OFFSET_LOOKAHEAD:
            probe += _OFFSET_SAMPLE_STEP
            smallest_offset = min(smallest_offset, self._offset_at(probe))
        return (instant + smallest_offset).replace(tzinfo=None)

    def resolve(
        self, wall_time: datetime, *, dst: GapPolicy, fold: FoldPolicy
    ) -> _Resolution:
        """The instants a matching wall time fires at, under the two policies."""
        # PEP 495: fold=0 reads a wall time with the offset before a
        # transition, fold=1 with the offset after; they differ only in a
        # gap or a fold.
        first = wall_time.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = wall_time.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return _Resolution((first,), first)
        if first < second:
            instants = (first, second) if fold == "both" else (first,)
            return _Resolution(instants, first)
        # In a gap the two readings straddle the transition, in reverse order.
        gap_end = self._gap_end(second, first)
        return _Resolution((gap_end,) if dst == "shift" else (), gap_end)

    def _gap_end(self, before: datetime, after: datetime) -> datetime:
        """The first instant after a spring-forward gap, found by bisection."""
        after_offset = self._offset_at(after)
        if self._last_gap is not None:
            cached_end, cached_offset = self._last_gap
            if before < cached_end <= after and cached_offset == after_offset:
                return cached_end
        # Invariant: `before` still has the old offset, `after` the new one.
        # tzdata transitions fall on whole seconds.
        while after - before > _ONE_SECOND:
            middle = before + (after - before) // 2
            middle = middle.replace(microsecond=0)
            if middle <= before:
                middle = before + _ONE_SECOND
            if self._offset_at(middle) == after_offset:
                after = middle
            else:
                before = middle
        self._last_gap = (after, after_offset)
        return after
