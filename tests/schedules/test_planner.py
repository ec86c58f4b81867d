"""Dispatcher ticks planned with an injected clock: every policy, no sleeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duralane.schedules.model import Schedule, ScheduleState, parse_schedule
from duralane.schedules.planner import (
    TickPlan,
    fire_run_id,
    initial_state,
    jitter_for,
    mark_run_finished,
    plan_tick,
    preview,
    trigger_now,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    """An instant relative to T0, so each test reads as a timeline."""
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def make_schedule(**fields: Any) -> Schedule:
    """An every-5-minutes schedule with a unique id, overridden per test."""
    data: dict[str, Any] = {
        "id": f"s-{uuid.uuid4().hex[:12]}",
        "job": {"kind": "http", "params": {"url": "https://example.test/"}},
        "every": {"seconds": 300},
    }
    data.update(fields)
    return parse_schedule(data, now=T0)


def tick(schedule: Schedule, state: ScheduleState, now: datetime) -> TickPlan:
    """One tick, with the default grace."""
    return plan_tick(schedule, state, now)


def started_fires(plan: TickPlan) -> list[datetime]:
    """The fire instants a plan starts runs for."""
    return [start.scheduled_at for start in plan.starts]


# --- on-time firing and ids ------------------------------------------------


def test_a_due_fire_starts_one_run_with_an_id_derived_from_schedule_and_instant() -> (
    None
):
    schedule = make_schedule()
    plan = tick(schedule, initial_state(schedule, T0), at(5, 2))
    assert [start.run_id for start in plan.starts] == [
        f"sched-{schedule.id}-20260601T120500Z"
    ]
    assert plan.starts[0].reason == "on_time"
    assert plan.state.next_fire_at == at(10)


def test_two_dispatchers_planning_the_same_tick_derive_the_same_run_ids() -> None:
    schedule = make_schedule(overlap="allow")
    state = initial_state(schedule, T0)
    first = tick(schedule, state, at(5, 1))
    second = tick(schedule, state, at(5, 3))
    assert [s.run_id for s in first.starts] == [s.run_id for s in second.starts]


def test_a_tick_before_the_fire_starts_nothing_and_keeps_it_next() -> None:
    schedule = make_schedule()
    plan = tick(schedule, initial_state(schedule, T0), at(4, 59))
    assert plan.starts == ()
    assert plan.state.next_fire_at == at(5)
    assert plan.state.next_due_at == at(5)


def test_a_fire_is_started_once_even_when_ticks_repeat() -> None:
    schedule = make_schedule(overlap="allow")
    plan = tick(schedule, initial_state(schedule, T0), at(5, 1))
    again = tick(schedule, plan.state, at(5, 4))
    assert started_fires(plan) == [at(5)]
    assert again.starts == ()


def test_a_new_schedule_owes_no_fires_from_before_it_was_created() -> None:
    schedule = make_schedule(misfire="run_all")
    plan = tick(schedule, initial_state(schedule, at(12)), at(12, 30))
    assert plan.starts == ()
    assert plan.state.next_fire_at == at(15)


def test_cron_schedule_fires_at_the_wall_time_of_its_zone() -> None:
    schedule = make_schedule(
        every=None, cron={"expression": "0 2 * * *", "timeZone": "Europe/Berlin"}
    )
    state = initial_state(schedule, T0)
    # 02:00 CEST on 2 June is 00:00Z.
    assert state.next_fire_at == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    plan = tick(schedule, state, datetime(2026, 6, 2, 0, 0, 3, tzinfo=UTC))
    assert plan.starts[0].run_id == f"sched-{schedule.id}-20260602T000000Z"


def test_an_at_schedule_fires_once_and_then_has_no_next_fire() -> None:
    schedule = make_schedule(every=None, at={"instant": at(30).isoformat()})
    plan = tick(schedule, initial_state(schedule, T0), at(30, 1))
    assert started_fires(plan) == [at(30)]
    assert plan.state.next_fire_at is None
    assert plan.state.next_due_at is None


# --- misfire after downtime -------------------------------------------------


def test_misfire_skip_starts_none_of_the_missed_fires_and_moves_on() -> None:
    schedule = make_schedule(misfire="skip")
    plan = tick(schedule, initial_state(schedule, T0), at(32))
    assert plan.starts == ()
    assert plan.state.next_fire_at == at(35)


def test_misfire_run_once_starts_one_run_for_the_latest_missed_fire() -> None:
    schedule = make_schedule(misfire="run_once")
    plan = tick(schedule, initial_state(schedule, T0), at(32))
    assert started_fires(plan) == [at(30)]
    assert plan.starts[0].reason == "catch_up"
    assert plan.state.next_fire_at == at(35)


def test_misfire_run_once_lets_an_on_time_fire_stand_for_the_missed_ones() -> None:
    schedule = make_schedule(misfire="run_once")
    plan = tick(schedule, initial_state(schedule, T0), at(30, 5))
    assert started_fires(plan) == [at(30)]
    assert plan.starts[0].reason == "on_time"
    assert {d.scheduled_at for d in plan.dropped} == {at(25)}


def test_misfire_run_all_starts_every_missed_fire_up_to_the_cap() -> None:
    schedule = make_schedule(misfire="run_all", misfireCap=3, overlap="allow")
    plan = tick(schedule, initial_state(schedule, T0), at(32))
    # Six fires were missed (5..30); the cap keeps the three most recent.
    assert started_fires(plan) == [at(20), at(25), at(30)]
    assert all(start.reason == "catch_up" for start in plan.starts)


def test_misfire_run_all_with_overlap_skip_starts_only_one_catch_up_run() -> None:
    schedule = make_schedule(misfire="run_all", misfireCap=3, overlap="skip")
    plan = tick(schedule, initial_state(schedule, T0), at(32))
    assert started_fires(plan) == [at(20)]
    assert [d.reason for d in plan.dropped] == ["overlap", "overlap"]


def test_catchup_window_drops_missed_fires_older_than_the_window() -> None:
    schedule = make_schedule(
        misfire="run_all", misfireCap=100, overlap="allow", catchupWindowSeconds=600
    )
    plan = tick(schedule, initial_state(schedule, T0), at(32))
    # Lateness at 12:32: 25 is 7 min late, 20 is 12 min late (over 10).
    assert started_fires(plan) == [at(25), at(30)]


def test_catchup_window_drops_even_the_run_once_fire_when_it_is_too_old() -> None:
    schedule = make_schedule(misfire="run_once", catchupWindowSeconds=60)
    plan = tick(schedule, initial_state(schedule, T0), at(33))
    assert plan.starts == ()
    assert plan.state.next_fire_at == at(35)


def test_a_long_outage_is_caught_up_without_walking_every_missed_fire() -> None:
    schedule = make_schedule(
        every={"seconds": 1}, misfire="run_all", misfireCap=2, overlap="allow"
    )
    # 30 days of one-second fires missed: about 2.6 million.
    plan = tick(schedule, initial_state(schedule, T0), T0 + timedelta(days=30))
    reasons = [start.reason for start in plan.starts]
    # Two catch-up runs, then every fire within the 60 s grace, both ends in.
    assert reasons == ["catch_up"] * 2 + ["on_time"] * 61


def test_a_late_tick_within_the_grace_still_counts_as_on_time() -> None:
    schedule = make_schedule(misfire="skip")
    plan = tick(schedule, initial_state(schedule, T0), at(5, 59))
    assert started_fires(plan) == [at(5)]
    assert plan.starts[0].reason == "on_time"


def test_the_misfire_grace_is_a_dispatcher_setting() -> None:
    schedule = make_schedule(misfire="skip")
    state = initial_state(schedule, T0)
    plan = plan_tick(schedule, state, at(5, 20), misfire_grace=timedelta(seconds=10))
    assert plan.starts == ()


# --- overlap ----------------------------------------------------------------


def running_after_first_fire(schedule: Schedule) -> ScheduleState:
    """State with the 12:05 run started and still running."""
    plan = tick(schedule, initial_state(schedule, T0), at(5, 1))
    assert len(plan.starts) == 1
    return plan.state


def test_overlap_skip_starts_nothing_while_a_run_is_active() -> None:
    schedule = make_schedule(overlap="skip")
    plan = tick(schedule, running_after_first_fire(schedule), at(10, 1))
    assert plan.starts == ()
    assert [(d.scheduled_at, d.reason) for d in plan.dropped] == [(at(10), "overlap")]
    assert plan.state.next_fire_at == at(15)


def test_overlap_skip_fires_again_once_the_active_run_finished() -> None:
    schedule = make_schedule(overlap="skip")
    state = running_after_first_fire(schedule)
    state = mark_run_finished(schedule, state, state.active_run_ids[0], at(7))
    plan = tick(schedule, state, at(10, 1))
    assert started_fires(plan) == [at(10)]


def test_overlap_buffer_one_starts_the_buffered_fire_when_the_active_run_finishes() -> (
    None
):
    schedule = make_schedule(overlap="buffer_one")
    state = running_after_first_fire(schedule)
    plan = tick(schedule, state, at(10, 1))
    assert plan.starts == ()
    assert plan.state.buffered_fire_at == at(10)

    finished = mark_run_finished(schedule, plan.state, state.active_run_ids[0], at(12))
    assert finished.next_due_at == at(12)
    resumed = tick(schedule, finished, at(12, 1))
    assert [(s.scheduled_at, s.reason) for s in resumed.starts] == [
        (at(10), "buffered")
    ]
    assert resumed.starts[0].run_id == fire_run_id(schedule.id, at(10))
    assert resumed.state.buffered_fire_at is None


def test_overlap_buffer_one_keeps_only_the_first_waiting_fire() -> None:
    schedule = make_schedule(overlap="buffer_one")
    state = running_after_first_fire(schedule)
    state = tick(schedule, state, at(10, 1)).state
    plan = tick(schedule, state, at(15, 1))
    assert plan.state.buffered_fire_at == at(10)
    assert [(d.scheduled_at, d.reason) for d in plan.dropped] == [(at(15), "overlap")]


def test_overlap_allow_starts_a_second_run_beside_the_active_one() -> None:
    schedule = make_schedule(overlap="allow")
    state = running_after_first_fire(schedule)
    plan = tick(schedule, state, at(10, 1))
    assert started_fires(plan) == [at(10)]
    assert len(plan.state.active_run_ids) == 2


def test_overlap_cancel_previous_cancels_the_active_run_and_starts_the_new_one() -> (
    None
):
    schedule = make_schedule(overlap="cancel_previous")
    state = running_after_first_fire(schedule)
    plan = tick(schedule, state, at(10, 1))
    assert plan.cancels == (fire_run_id(schedule.id, at(5)),)
    assert started_fires(plan) == [at(10)]
    assert plan.state.active_run_ids == (fire_run_id(schedule.id, at(10)),)


# --- pause, resume, trigger now ---------------------------------------------


def test_a_paused_schedule_starts_nothing_and_is_not_due() -> None:
    schedule = make_schedule(paused=True)
    plan = tick(schedule, initial_state(schedule, T0), at(20))
    assert plan.starts == ()
    assert plan.state.next_due_at is None
    assert plan.state.processed_through == T0


def test_on_resume_the_fires_missed_while_paused_follow_the_misfire_policy() -> None:
    paused = make_schedule(
        paused=True, misfire="run_all", misfireCap=10, overlap="allow"
    )
    state = tick(paused, initial_state(paused, T0), at(20)).state
    resumed = paused.model_copy(update={"paused": False})
    plan = tick(resumed, state, at(21))
    assert started_fires(plan) == [at(5), at(10), at(15), at(20)]
    assert [s.reason for s in plan.starts] == ["catch_up"] * 3 + ["on_time"]


def test_trigger_now_starts_a_run_whose_id_no_fire_can_have() -> None:
    schedule = make_schedule()
    state = initial_state(schedule, T0)
    plan = trigger_now(schedule, state, at(5))
    (start,) = plan.starts
    assert start.reason == "manual"
    assert start.run_id != fire_run_id(schedule.id, at(5))
    assert start.run_id == f"sched-{schedule.id}-20260601T120500Z-now"
    assert plan.state.processed_through == state.processed_through
    # The scheduled fire at the same instant still starts its own run.
    scheduled = plan_tick(
        schedule.model_copy(update={"overlap": "allow"}), plan.state, at(5, 1)
    )
    assert started_fires(scheduled) == [at(5)]


def test_run_ids_fit_the_job_id_limit_for_the_longest_schedule_id() -> None:
    schedule = make_schedule(id="x" * 36)
    late = datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert len(fire_run_id(schedule.id, late.replace(microsecond=0))) <= 64
    plan = trigger_now(schedule, initial_state(schedule, T0), late)
    assert len(plan.starts[0].run_id) <= 64


def test_trigger_now_works_while_paused() -> None:
    schedule = make_schedule(paused=True)
    plan = trigger_now(schedule, initial_state(schedule, T0), at(3))
    assert len(plan.starts) == 1


def test_trigger_now_with_cancel_previous_cancels_the_active_run() -> None:
    schedule = make_schedule(overlap="cancel_previous")
    state = running_after_first_fire(schedule)
    plan = trigger_now(schedule, state, at(6))
    assert plan.cancels == state.active_run_ids
    assert plan.state.active_run_ids == (plan.starts[0].run_id,)


# --- jitter -------------------------------------------------------------------


def test_jitter_stays_within_bounds_and_is_the_same_for_the_same_fire() -> None:
    schedule_id = f"j-{uuid.uuid4().hex[:8]}"
    delays = [jitter_for(schedule_id, at(5 * n), 30) for n in range(500)]
    assert all(timedelta(0) <= delay <= timedelta(seconds=30) for delay in delays)
    assert delays == [jitter_for(schedule_id, at(5 * n), 30) for n in range(500)]
    # Spread out, not one constant.
    assert len(set(delays)) > 400


def test_jitter_moves_the_start_but_not_the_identity_of_a_fire() -> None:
    schedule = make_schedule(jitterSeconds=45)
    delay = jitter_for(schedule.id, at(5), 45)
    state = initial_state(schedule, T0)
    assert state.next_due_at == at(5) + delay

    early = tick(schedule, state, at(5) + delay - timedelta(milliseconds=1))
    assert early.starts == ()
    plan = tick(schedule, state, at(5) + delay)
    (start,) = plan.starts
    assert start.start_at == at(5) + delay
    assert start.run_id == fire_run_id(schedule.id, at(5))


def test_zero_jitter_starts_at_the_fire_instant() -> None:
    assert jitter_for("x", T0, 0) == timedelta(0)


# --- startAt / endAt and preview ------------------------------------------------


def test_start_at_and_end_at_bound_the_fires_inclusively() -> None:
    schedule = make_schedule(
        startAt=at(10).isoformat(), endAt=at(20).isoformat(), overlap="allow"
    )
    state = initial_state(schedule, T0)
    assert state.next_fire_at == at(10)
    fired = []
    for minute in (5, 10, 15, 20, 25):
        plan = tick(schedule, state, at(minute, 1))
        fired += started_fires(plan)
        state = plan.state
    assert fired == [at(10), at(15), at(20)]
    assert plan.state.next_fire_at is None
    assert plan.state.next_due_at is None


def test_preview_lists_the_next_fires_in_utc_and_in_the_schedule_zone() -> None:
    schedule = make_schedule(
        every=None, cron={"expression": "0 2 * * *", "timeZone": "Europe/Berlin"}
    )
    fires = preview(schedule, datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert [fire.at_utc.isoformat() for fire in fires] == [
        "2026-03-28T01:00:00+00:00",
        "2026-03-29T01:00:00+00:00",  # 02:00 does not exist: shifted to 03:00
        "2026-03-30T00:00:00+00:00",
    ]
    assert [fire.at_local.isoformat() for fire in fires] == [
        "2026-03-28T02:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:00:00+02:00",
    ]
    assert fires[0].to_json_dict()["atLocal"] == "2026-03-28T02:00:00+01:00"


def test_preview_of_an_every_schedule_honours_the_phase() -> None:
    schedule = make_schedule(every={"seconds": 300, "phaseSeconds": 60})
    fires = preview(schedule, T0, 2)
    assert [fire.at_utc for fire in fires] == [at(1), at(6)]


@pytest.mark.parametrize("count", [0, -3])
def test_preview_with_no_count_is_empty(count: int) -> None:
    assert preview(make_schedule(), T0, count) == []


def test_state_round_trips_through_camel_case_json() -> None:
    schedule = make_schedule(overlap="buffer_one")
    state = tick(schedule, running_after_first_fire(schedule), at(10, 1)).state
    data = state.to_json_dict()
    assert "bufferedFireAt" in data and "processedThrough" in data
    assert ScheduleState.model_validate(data) == state
