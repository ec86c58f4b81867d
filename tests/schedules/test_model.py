"""Schedule validation: every bad input is refused with its field and reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from duralane.schedules.model import FieldError, field_errors, parse_schedule

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def schedule_data(**fields: Any) -> dict[str, Any]:
    """A valid cron schedule with a unique id, overridden per test."""
    data: dict[str, Any] = {
        "id": f"nightly-{uuid.uuid4().hex[:8]}",
        "job": {"kind": "http", "params": {"url": "https://example.test/export"}},
        "cron": {"expression": "0 2 * * *", "timeZone": "Europe/Berlin"},
    }
    data.update(fields)
    return data


def errors_for(data: dict[str, Any], **kwargs: Any) -> list[FieldError]:
    """The field errors a 400 response would carry for this input."""
    with pytest.raises(ValidationError) as caught:
        parse_schedule(data, now=NOW, **kwargs)
    return field_errors(caught.value)


def test_a_valid_schedule_round_trips_through_camel_case_json() -> None:
    schedule = parse_schedule(
        schedule_data(jitterSeconds=5, catchupWindowSeconds=600, misfireCap=3), now=NOW
    )
    data = schedule.to_json_dict()
    assert data["cron"] == {"expression": "0 2 * * *", "timeZone": "Europe/Berlin"}
    assert data["jitterSeconds"] == 5
    assert data["catchupWindowSeconds"] == 600
    assert parse_schedule(data, now=NOW) == schedule


def test_defaults_are_the_documented_policies() -> None:
    schedule = parse_schedule(schedule_data(), now=NOW)
    assert (schedule.dst, schedule.fold, schedule.overlap, schedule.misfire) == (
        "shift",
        "once",
        "skip",
        "run_once",
    )
    assert schedule.catchup_window_seconds is None
    assert schedule.paused is False


@pytest.mark.parametrize(
    ("overrides", "field", "reason_part"),
    [
        ({"cron": {"expression": "61 * * * *"}}, "cron.expression",
         "minute field '61': value 61 out of range 0-59"),
        ({"cron": {"expression": "0 2 * *"}}, "cron.expression", "expected 5 fields"),
        ({"cron": {"expression": "0 2 30 FEB *"}}, "cron.expression",
         "day 30 never occurs in FEB"),
        ({"cron": {"expression": "0 2 * * *", "timeZone": "Europe/Atlantis"}},
         "cron.timeZone", "unknown time zone 'Europe/Atlantis'"),
        ({"cron": None, "every": {"seconds": 0}}, "every.seconds", "greater than 0"),
        ({"cron": None, "every": {"seconds": -5}}, "every.seconds", "greater than 0"),
        ({"cron": None, "every": {"seconds": 60, "phaseSeconds": 60}},
         "every.phaseSeconds", "must be below the interval 60"),
        ({"cron": None, "at": {"instant": "2026-05-31T12:00:00Z"}}, "at.instant",
         "is in the past"),
        ({"cron": None}, "cron", "give exactly one trigger"),
        ({"every": {"seconds": 60}}, "every", "got cron and every"),
        ({"dst": "later"}, "dst", "'shift' or 'skip'"),
        ({"fold": "twice"}, "fold", "'once' or 'both'"),
        ({"overlap": "queue"}, "overlap", "'cancel_previous'"),
        ({"misfire": "run_some"}, "misfire", "'run_all'"),
        ({"misfireCap": 0}, "misfireCap", "greater than or equal to 1"),
        ({"jitterSeconds": -1}, "jitterSeconds", "greater than or equal to 0"),
        ({"catchupWindowSeconds": -1}, "catchupWindowSeconds",
         "greater than or equal to 0"),
        ({"startAt": "2026-07-01T00:00:00Z", "endAt": "2026-06-30T00:00:00Z"},
         "endAt", "is not after startAt"),
        ({"startAt": "2026-07-01T00:00:00"}, "startAt", "timezone"),
        ({"id": "has.dot"}, "id", "letters, digits"),
        ({"id": ""}, "id", "1 to 36 characters"),
        ({"id": "x" * 37}, "id", "1 to 36 characters"),
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_the_field_and_the_reason(
    overrides: dict[str, Any], field: str, reason_part: str
) -> None:
    errors = errors_for(schedule_data(**overrides))
    assert field in [error.field for error in errors], errors
    reason = next(error.reason for error in errors if error.field == field)
    assert reason_part in reason
    assert not reason.startswith("Value error")


def test_an_at_instant_in_the_future_is_accepted_and_stored_in_utc() -> None:
    schedule = parse_schedule(
        schedule_data(cron=None, at={"instant": "2026-06-02T09:00:00+02:00"}), now=NOW
    )
    assert schedule.at is not None
    assert schedule.at.instant == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)


def test_an_at_instant_is_kept_to_the_whole_second() -> None:
    schedule = parse_schedule(
        schedule_data(cron=None, at={"instant": "2026-06-02T07:00:00.750Z"}), now=NOW
    )
    assert schedule.at is not None
    assert schedule.at.instant.microsecond == 0


def test_the_template_seam_reports_an_invalid_job_on_the_job_field() -> None:
    def reject_kind(job: dict[str, Any]) -> None:
        raise ValueError(f"unknown job kind '{job['kind']}'")

    errors = errors_for(
        schedule_data(job={"kind": "teleport"}), validate_template=reject_kind
    )
    assert errors == [FieldError("job", "unknown job kind 'teleport'")]


def test_several_mistakes_are_reported_together() -> None:
    errors = errors_for(
        schedule_data(cron={"expression": "* * * * * * *", "timeZone": "Nowhere"})
    )
    assert {error.field for error in errors} == {"cron.expression", "cron.timeZone"}


def test_field_errors_serialise_to_the_400_body_shape() -> None:
    (error,) = errors_for(schedule_data(dst="later"))
    assert error.to_json_dict() == {"field": "dst", "reason": error.reason}
