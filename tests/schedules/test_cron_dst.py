"""Each DST rule pinned on real 2026 transitions, in zones north and south."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from duralane.schedules.cron import CronExpression, FoldPolicy, GapPolicy
from duralane.schedules.errors import CronSyntaxError
from tests.schedules.test_cron_reference import cron_expressions


def utc(text: str) -> datetime:
    """A UTC instant from a compact ISO string such as 2026-03-29T01:00."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(
    expression: str,
    zone: str,
    after: str,
    count: int,
    *,
    dst: GapPolicy = "shift",
    fold: FoldPolicy = "once",
) -> list[datetime]:
    """The first `count` fires of an expression after a UTC instant."""
    stream = CronExpression.parse(expression).fire_times(
        utc(after), ZoneInfo(zone), dst=dst, fold=fold
    )
    return list(islice(stream, count))


# (zone, expression, after, dst policy, expected UTC fires). Each expression
# names a wall time inside the zone's spring-forward gap of 2026.
GAP_CASES = [
    # Berlin: 02:00 CET becomes 03:00 CEST at 01:00Z.
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00", "shift",
     ["2026-03-29T01:00", "2026-03-30T00:30"]),
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00", "skip",
     ["2026-03-30T00:30", "2026-03-31T00:30"]),
    # New York: 02:00 EST becomes 03:00 EDT at 07:00Z.
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00", "shift",
     ["2026-03-08T07:00", "2026-03-09T06:30"]),
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00", "skip",
     ["2026-03-09T06:30", "2026-03-10T06:30"]),
    # Lord Howe moves only 30 minutes: 02:00 (+10:30) becomes 02:30 (+11).
    ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T00:00", "shift",
     ["2026-10-03T15:30", "2026-10-04T15:15"]),
    ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T00:00", "skip",
     ["2026-10-04T15:15", "2026-10-05T15:15"]),
    # Every 20 minutes: 02:00 and 02:20 fall in the gap and shift to one fire.
    ("Australia/Lord_Howe", "*/20 * * * *", "2026-10-03T15:00", "shift",
     ["2026-10-03T15:10", "2026-10-03T15:30", "2026-10-03T15:40"]),
    ("Australia/Lord_Howe", "*/20 * * * *", "2026-10-03T15:00", "skip",
     ["2026-10-03T15:10", "2026-10-03T15:40", "2026-10-03T16:00"]),
    # Auckland, southern spring: 02:00 NZST becomes 03:00 NZDT on 27 Sep.
    ("Pacific/Auckland", "30 2 * * *", "2026-09-26T00:00", "shift",
     ["2026-09-26T14:00", "2026-09-27T13:30"]),
    ("Pacific/Auckland", "30 2 * * *", "2026-09-26T00:00", "skip",
     ["2026-09-27T13:30", "2026-09-28T13:30"]),
    # Santiago springs forward at midnight, so a midnight job has no midnight.
    ("America/Santiago", "0 0 * * *", "2026-09-05T12:00", "shift",
     ["2026-09-06T04:00", "2026-09-07T03:00"]),
    ("America/Santiago", "0 0 * * *", "2026-09-05T12:00", "skip",
     ["2026-09-07T03:00", "2026-09-08T03:00"]),
    # Every 15 minutes: the gap's times are gone either way, 03:00 exists.
    ("Europe/Berlin", "*/15 * * * *", "2026-03-29T00:40", "shift",
     ["2026-03-29T00:45", "2026-03-29T01:00", "2026-03-29T01:15"]),
    ("Europe/Berlin", "*/15 * * * *", "2026-03-29T00:40", "skip",
     ["2026-03-29T00:45", "2026-03-29T01:00", "2026-03-29T01:15"]),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "expression", "after", "dst", "expected"), GAP_CASES)
def test_wall_times_in_a_spring_forward_gap_follow_the_dst_policy(
    zone: str, expression: str, after: str, dst: GapPolicy, expected: list[str]
) -> None:
    actual = fires(expression, zone, after, len(expected), dst=dst)
    assert actual == [utc(text) for text in expected]


# (zone, expression, after, fold policy, expected UTC fires). Each expression
# names a wall time inside the zone's fall-back fold of 2026.
FOLD_CASES = [
    # Berlin: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:30 happens twice.
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00", "once",
     ["2026-10-25T00:30", "2026-10-26T01:30"]),
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00", "both",
     ["2026-10-25T00:30", "2026-10-25T01:30", "2026-10-26T01:30"]),
    # New York: 02:00 EDT becomes 01:00 EST at 06:00Z; 01:30 happens twice.
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00", "once",
     ["2026-11-01T05:30", "2026-11-02T06:30"]),
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00", "both",
     ["2026-11-01T05:30", "2026-11-01T06:30", "2026-11-02T06:30"]),
    # Lord Howe: 02:00 (+11) becomes 01:30 (+10:30); only 01:30-01:59 repeat.
    ("Australia/Lord_Howe", "45 1 * * *", "2026-04-04T00:00", "once",
     ["2026-04-04T14:45", "2026-04-05T15:15"]),
    ("Australia/Lord_Howe", "45 1 * * *", "2026-04-04T00:00", "both",
     ["2026-04-04T14:45", "2026-04-04T15:15", "2026-04-05T15:15"]),
    ("Australia/Lord_Howe", "15 1 * * *", "2026-04-04T00:00", "both",
     ["2026-04-04T14:15", "2026-04-05T14:45"]),
    # Auckland, southern autumn: 03:00 NZDT becomes 02:00 NZST on 5 April.
    ("Pacific/Auckland", "30 2 * * *", "2026-04-04T00:00", "once",
     ["2026-04-04T13:30", "2026-04-05T14:30"]),
    ("Pacific/Auckland", "30 2 * * *", "2026-04-04T00:00", "both",
     ["2026-04-04T13:30", "2026-04-04T14:30", "2026-04-05T14:30"]),
    # Santiago falls back at midnight: 23:30 on 4 April happens twice.
    ("America/Santiago", "30 23 * * *", "2026-04-04T12:00", "once",
     ["2026-04-05T02:30", "2026-04-06T03:30"]),
    ("America/Santiago", "30 23 * * *", "2026-04-04T12:00", "both",
     ["2026-04-05T02:30", "2026-04-05T03:30", "2026-04-06T03:30"]),
    # Every 15 minutes through Berlin's fold: "both" keeps a steady cadence in
    # real time, "once" pauses for the repeated hour.
    ("Europe/Berlin", "*/15 * * * *", "2026-10-24T23:50", "both",
     ["2026-10-25T00:00", "2026-10-25T00:15", "2026-10-25T00:30",
      "2026-10-25T00:45", "2026-10-25T01:00", "2026-10-25T01:15",
      "2026-10-25T01:30", "2026-10-25T01:45", "2026-10-25T02:00"]),
    ("Europe/Berlin", "*/15 * * * *", "2026-10-24T23:50", "once",
     ["2026-10-25T00:00", "2026-10-25T00:15", "2026-10-25T00:30",
      "2026-10-25T00:45", "2026-10-25T02:00", "2026-10-25T02:15"]),
    # Lord Howe's half-hour fold, every 15 minutes.
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-04-04T14:20", "both",
     ["2026-04-04T14:30", "2026-04-04T14:45", "2026-04-04T15:00",
      "2026-04-04T15:15", "2026-04-04T15:30"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-04-04T14:20", "once",
     ["2026-04-04T14:30", "2026-04-04T14:45", "2026-04-04T15:30"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "expression", "after", "fold", "expected"), FOLD_CASES
)
def test_wall_times_in_a_fall_back_fold_follow_the_fold_policy(
    zone: str, expression: str, after: str, fold: FoldPolicy, expected: list[str]
) -> None:
    actual = fires(expression, zone, after, len(expected), fold=fold)
    assert actual == [utc(text) for text in expected]


@pytest.mark.parametrize(
    ("zone", "after"),
    [
        ("Europe/Berlin", "2026-10-24T23:30"),
        ("Europe/Berlin", "2026-03-29T00:30"),
        ("America/New_York", "2026-11-01T05:00"),
        ("Australia/Lord_Howe", "2026-04-04T14:00"),
        ("Australia/Lord_Howe", "2026-10-03T15:00"),
        ("Pacific/Auckland", "2026-04-04T13:00"),
    ],
)
def test_every_minute_with_shift_and_both_fires_every_real_minute_across_transitions(
    zone: str, after: str
) -> None:
    actual = fires("* * * * *", zone, after, 180, fold="both")
    start = utc(after)
    assert actual == [start + timedelta(minutes=n) for n in range(1, 181)]


def test_every_minute_with_once_skips_the_repeated_hour_in_berlin() -> None:
    actual = fires("* * * * *", "Europe/Berlin", "2026-10-25T00:58", 3)
    assert actual == [
        utc("2026-10-25T00:59"),
        utc("2026-10-25T02:00"),
        utc("2026-10-25T02:01"),
    ]


def test_every_minute_inside_the_gap_collapses_to_one_fire_at_the_gap_end() -> None:
    actual = fires("* 2 * * *", "Europe/Berlin", "2026-03-28T12:00", 2)
    # 02:00-02:59 do not exist on 29 March; all shift to 03:00 CEST, once.
    assert actual == [utc("2026-03-29T01:00"), utc("2026-03-30T00:00")]


def test_next_after_inside_the_second_pass_of_a_fold_finds_the_second_occurrence() -> (
    None
):
    expression = CronExpression.parse("45 2 * * *")
    after = utc("2026-10-25T01:10")  # 02:10 CET, the second 02:10 in Berlin
    berlin = ZoneInfo("Europe/Berlin")
    assert expression.next_after(after, berlin, fold="both") == utc("2026-10-25T01:45")
    assert expression.next_after(after, berlin, fold="once") == utc("2026-10-26T01:45")


def test_six_field_form_reads_seconds_first_as_timer_triggers_do() -> None:
    actual = fires("*/20 * * * * *", "UTC", "2026-01-01T00:00:05", 3)
    assert actual == [
        utc("2026-01-01T00:00:20"),
        utc("2026-01-01T00:00:40"),
        utc("2026-01-01T00:01:00"),
    ]


def test_fire_times_refuse_a_naive_start_instant() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        CronExpression.parse("* * * * *").next_after(
            datetime(2026, 1, 1), ZoneInfo("UTC")
        )


TRANSITIONS = [
    ("Europe/Berlin", "2026-03-29T01:00"),
    ("Europe/Berlin", "2026-10-25T01:00"),
    ("America/New_York", "2026-11-01T06:00"),
    ("Australia/Lord_Howe", "2026-04-04T15:00"),
    ("Australia/Lord_Howe", "2026-10-03T15:30"),
    ("America/Santiago", "2026-09-06T04:00"),
]


@settings(max_examples=150, deadline=None)
@given(
    cron_expressions(),
    st.sampled_from(TRANSITIONS),
    st.integers(min_value=-3 * 3600, max_value=3600),
    st.sampled_from(["shift", "skip"]),
    st.sampled_from(["once", "both"]),
)
def test_fires_across_a_transition_rise_strictly_and_skipped_gaps_match_the_expression(
    expression_and_form: tuple[str, bool],
    transition: tuple[str, str],
    offset_seconds: int,
    dst: GapPolicy,
    fold: FoldPolicy,
) -> None:
    text, _ = expression_and_form
    try:
        expression = CronExpression.parse(text)
    except CronSyntaxError:
        assume(False)
        raise
    zone_name, instant = transition
    zone = ZoneInfo(zone_name)
    start = utc(instant) + timedelta(seconds=offset_seconds)
    actual = list(islice(expression.fire_times(start, zone, dst=dst, fold=fold), 40))
    assert all(fire > start for fire in actual)
    assert all(a < b for a, b in pairwise(actual))
    if fold == "once":
        # No fire is the second occurrence of a repeated wall time.
        assert all(fire.astimezone(zone).fold == 0 for fire in actual)
    if dst == "skip":
        # Without shifting, every fire is a wall time the expression names.
        for fire in actual:
            wall = fire.astimezone(zone).replace(tzinfo=None)
            assert expression.next_wall_time(wall) == wall
