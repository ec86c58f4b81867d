"""The cron engine agrees with croniter, an independent reference, away from DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from duralane.schedules.cron import CronExpression
from duralane.schedules.errors import CronSyntaxError

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Africa/Cairo",
]

MONTHS_SPELLED = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC"
MONTH_NAMES = dict(enumerate(MONTHS_SPELLED.split(), start=1))
DAY_NAMES = dict(enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]))


@st.composite
def field_items(draw, low: int, high: int, names: dict[int, str] | None = None) -> str:
    """One list item: a value, a range, a star, each possibly with a step."""

    def spell(value: int) -> str:
        # Day 7 is Sunday too, and has no name of its own.
        if names and value in names and draw(st.booleans()):
            return names[value]
        return str(value)

    shape = draw(
        st.sampled_from(["value", "range", "star_step", "range_step", "start_step"])
    )
    step = draw(st.integers(min_value=1, max_value=max(1, (high - low) // 2)))
    if shape == "value":
        return spell(draw(st.integers(low, high)))
    if shape == "star_step":
        return f"*/{step}"
    if shape == "start_step":
        # croniter reads 7/N in the day-of-week field as the whole week; it is
        # Sunday alone, so the reference is asked only below the alias.
        start_high = 6 if high == 7 else high
        return f"{draw(st.integers(low, start_high))}/{step}"
    # croniter reads an equal range such as 5-5 as the whole cycle; cron does
    # not, so the reference is only asked about ranges that really span.
    start = draw(st.integers(low, high - 1))
    end = draw(st.integers(start + 1, high))
    text = f"{spell(start)}-{spell(end)}"
    return f"{text}/{step}" if shape == "range_step" else text


@st.composite
def cron_fields(draw, low: int, high: int, names: dict[int, str] | None = None) -> str:
    """A whole field: `*` or a list of one to three items."""
    if draw(st.integers(0, 3)) == 0:
        return "*"
    items = draw(st.lists(field_items(low, high, names), min_size=1, max_size=3))
    return ",".join(items)


@st.composite
def cron_expressions(draw) -> tuple[str, bool]:
    """A valid expression, five fields or six with seconds first."""
    with_seconds = draw(st.booleans())
    fields = [
        draw(cron_fields(0, 59)),
        draw(cron_fields(0, 23)),
        draw(cron_fields(1, 31)),
        draw(cron_fields(1, 12, MONTH_NAMES)),
        draw(cron_fields(0, 7, DAY_NAMES)),
    ]
    if with_seconds:
        fields.insert(0, draw(cron_fields(0, 59)))
    return " ".join(fields), with_seconds


def has_transition_near(zone: ZoneInfo, instant: datetime) -> bool:
    """Whether the zone's offset changes within a day of the instant."""
    offsets = {
        (instant + timedelta(hours=hours)).astimezone(zone).utcoffset()
        for hours in range(-26, 27)
    }
    return len(offsets) > 1


instants = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2035, 12, 31)
).map(lambda naive: naive.replace(tzinfo=UTC))


@settings(max_examples=250, deadline=None)
@given(cron_expressions(), st.sampled_from(ZONES), instants)
def test_fire_times_match_croniter_away_from_dst_transitions(
    expression_and_form: tuple[str, bool], zone_name: str, start: datetime
) -> None:
    text, with_seconds = expression_and_form
    try:
        expression = CronExpression.parse(text)
    except CronSyntaxError:
        # Only 30/31 FEB-style day fields are refused; croniter refuses those too.
        assume(False)
        raise
    # Where both day fields are given, a field written as a non-star that still
    # allows every day is where cron dialects disagree; keep to the plain rule.
    dom_text, dow_text = text.split()[-3], text.split()[-1]
    assume(dom_text == "*" or expression.day_of_month_restricted)
    assume(dow_text == "*" or expression.day_of_week_restricted)

    zone = ZoneInfo(zone_name)
    assume(not has_transition_near(zone, start))
    reference = croniter(text, start.astimezone(zone), second_at_beginning=with_seconds)
    ours = islice(expression.fire_times(start, zone), 3)
    for ours_fire in ours:
        expected = reference.get_next(datetime)
        assume(not has_transition_near(zone, expected.astimezone(UTC)))
        assert ours_fire == expected.astimezone(UTC), text


@settings(max_examples=100, deadline=None)
@given(cron_expressions(), st.sampled_from(ZONES), instants)
def test_next_after_is_the_first_fire_strictly_after_the_instant(
    expression_and_form: tuple[str, bool], zone_name: str, start: datetime
) -> None:
    text, _ = expression_and_form
    try:
        expression = CronExpression.parse(text)
    except CronSyntaxError:
        assume(False)
        raise
    zone = ZoneInfo(zone_name)
    first = expression.next_after(start, zone)
    assert first is not None
    assert first > start
    assert first.tzinfo is UTC
    # Asking again just before the answer gives the same answer.
    assert expression.next_after(first - timedelta(microseconds=1), zone) == first
