"""Timer triggers read the day fields as NCRONTAB does; schedules as classic cron."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from duralane.runtime.triggers import TimerSchedule
from duralane.schedules.cron import CronExpression

FRIDAY_THE_13TH = "0 0 0 13 * FRI"
UTC_ZONE = ZoneInfo("UTC")
START = datetime(2026, 1, 1, tzinfo=UTC)


def fires(expression: CronExpression, count: int) -> list[datetime]:
    found = []
    for instant in expression.fire_times(START, UTC_ZONE):
        found.append(instant)
        if len(found) == count:
            return found
    return found


def test_ncrontab_needs_both_day_fields_to_match() -> None:
    expression = CronExpression.parse(FRIDAY_THE_13TH, ncrontab=True)

    found = fires(expression, 3)

    assert [f.date().isoformat() for f in found] == [
        "2026-02-13",
        "2026-03-13",
        "2026-11-13",
    ]
    assert all(f.weekday() == 4 for f in found)


def test_classic_cron_fires_when_either_day_field_matches() -> None:
    expression = CronExpression.parse(FRIDAY_THE_13TH)

    found = fires(expression, 3)

    assert [f.date().isoformat() for f in found] == [
        "2026-01-02",
        "2026-01-09",
        "2026-01-13",
    ]


def test_the_timer_trigger_uses_ncrontab_day_matching() -> None:
    schedule = TimerSchedule.parse(FRIDAY_THE_13TH)

    upcoming = schedule.next_after(START)

    assert upcoming == datetime(2026, 2, 13, tzinfo=UTC)
