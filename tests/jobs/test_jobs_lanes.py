"""Lane names, queues and start deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from duralane.jobs.lanes import (
    LANE_NAMES,
    is_urgent,
    lane_for_queue,
    lane_priority,
    queue_name,
    start_deadline,
    start_deadline_seconds,
)
from duralane.settings import Settings

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_each_lane_has_its_queue_and_back() -> None:
    assert [queue_name(lane) for lane in LANE_NAMES] == [
        "jobs-high",
        "jobs-normal",
        "jobs-low",
    ]
    assert all(lane_for_queue(queue_name(lane)) == lane for lane in LANE_NAMES)
    assert lane_for_queue("jobs-urgent") is None


def test_default_deadlines_match_the_issue() -> None:
    assert [start_deadline_seconds(lane) for lane in LANE_NAMES] == [1, 60, 3600]


def test_deadlines_come_from_settings() -> None:
    settings = Settings.from_environ({"DURALANE_DEADLINE_LOW": "5"})

    assert start_deadline_seconds("low", settings) == 5
    assert start_deadline("low", T0, settings=settings) == T0 + timedelta(seconds=5)


def test_a_scheduled_job_counts_its_deadline_from_run_at() -> None:
    run_at = T0 + timedelta(hours=2)

    assert start_deadline("high", T0, run_at) == run_at + timedelta(seconds=1)
    assert start_deadline("high", T0, T0 - timedelta(hours=1)) == T0 + timedelta(
        seconds=1
    )


def test_unknown_lanes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown lane"):
        queue_name("urgent")


def test_lane_priorities_put_high_first_and_refuse_an_unknown_lane() -> None:
    assert [lane_priority(lane) for lane in LANE_NAMES] == [2, 1, 0]
    with pytest.raises(ValueError, match="unknown lane 'urgent'"):
        lane_priority("urgent")


def test_only_the_high_lane_makes_others_step_aside() -> None:
    assert [is_urgent(lane) for lane in LANE_NAMES] == [True, False, False]
    with pytest.raises(ValueError, match="unknown lane 'urgent'"):
        is_urgent("urgent")
