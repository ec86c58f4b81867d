"""What one dispatcher tick does for one schedule, as pure functions of "now".

The dispatcher loads a schedule and its `ScheduleState`, calls `plan_tick`,
starts the runs in `starts` (each run id is derived from the schedule id and
the fire instant, so two dispatchers planning the same fire start one run),
cancels `cancels`, records `dropped`, and saves `state`. Nothing here reads a
clock or a store.

Vocabulary: a *fire* is an instant the trigger names; its *start* is the fire
plus its jitter; a fire is *due* once its start has passed; a due fire whose
start is more than the misfire grace in the past was *missed* (the dispatcher
was down or the schedule paused) and follows the misfire policy; a missed
fire older than `catchupWindowSeconds` is dropped whatever the policy.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Literal

from duralane.schedules.model import Schedule, ScheduleState

# How late a fire may start and still count as on time. The dispatcher ticks
# every few seconds, so anything later means it was down or the schedule was
# paused; a minute leaves room for a slow tick without calling it a misfire.
DEFAULT_MISFIRE_GRACE = timedelta(seconds=60)

MAX_PREVIEW_COUNT = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

StartReason = Literal["on_time", "catch_up", "buffered", "manual"]
DropReason = Literal["misfire", "overlap", "superseded"]


def _compact(instant: datetime) -> str:
    """A UTC timestamp safe in ids: 20260329T010000Z, with micros when present."""
    utc = instant.astimezone(UTC)
    micros = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return f"{utc:%Y%m%dT%H%M%S}{micros}Z"


def fire_run_id(schedule_id: str, fire_at: datetime) -> str:
    """The one run id a fire may start; equal inputs give equal ids anywhere."""
    return f"sched-{schedule_id}-{_compact(fire_at)}"


def manual_run_id(schedule_id: str, requested_at: datetime) -> str:
    """A trigger-now run id; the suffix keeps it apart from every fire's id.

    Taken to the second, so a double-click starts one run, not two.
    """
    return f"sched-{schedule_id}-{_compact(requested_at.replace(microsecond=0))}-now"


def jitter_for(schedule_id: str, fire_at: datetime, jitter_seconds: float) -> timedelta:
    """The delay of one fire's start: in [0, jitter], the same on every host."""
    if jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}|{_compact(fire_at)}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(milliseconds=int(fraction * jitter_seconds * 1000))


class ScheduleFires:
    """The fire instants of one schedule's trigger, within startAt and endAt."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def after(self, instant: datetime) -> Iterator[datetime]:
        """Fires strictly after `instant`, ascending, in UTC."""
        start_at, end_at = self.schedule.start_at, self.schedule.end_at
        if start_at is not None:
            instant = max(instant, start_at - _ONE_MICROSECOND)
        for fire in self._trigger_fires(instant):
            if end_at is not None and fire > end_at:
                return
            yield fire

    def _trigger_fires(self, instant: datetime) -> Iterator[datetime]:
        """Fires of the trigger alone, strictly after `instant`."""
        schedule = self.schedule
        if schedule.cron is not None:
            yield from schedule.cron.parsed.fire_times(
                instant, schedule.cron.zone, dst=schedule.dst, fold=schedule.fold
            )
        elif schedule.every is not None:
            interval = timedelta(seconds=schedule.every.seconds)
            phase = timedelta(seconds=schedule.every.phase_seconds)
            steps_done = (instant - _EPOCH - phase) // interval
            fire = _EPOCH + phase + (steps_done + 1) * interval
            while True:
                yield fire
                fire += interval
        elif schedule.at is not None and schedule.at.instant > instant:
            yield schedule.at.instant

    def latest(
        self, after: datetime, at_or_before: datetime, count: int
    ) -> list[datetime]:
        """Up to `count` of the latest fires in (after, at_or_before], ascending."""
        # Galloping back from the end finds the last few fires of a long
        # outage without walking every fire in it.
        span = timedelta(seconds=1)
        while True:
            window_start = max(after, at_or_before - span)
            found: deque[datetime] = deque(maxlen=count)
            for fire in self.after(window_start):
                if fire > at_or_before:
                    break
                found.append(fire)
            if len(found) == count or window_start == after:
                return list(found)
            span *= 2


@dataclass(frozen=True)
class PlannedStart:
    """A run to start: which fire it serves, its id, and when it should start."""

    run_id: str
    scheduled_at: datetime
    # The fire plus its jitter; the fire lag is the actual start minus this.
    start_at: datetime
    reason: StartReason


@dataclass(frozen=True)
class DroppedFire:
    """A due fire that starts no run, and why, for the schedule's fire record."""

    scheduled_at: datetime
    reason: DropReason


@dataclass(frozen=True)
class TickPlan:
    """Everything one tick decided for one schedule."""

    starts: tuple[PlannedStart, ...]
    cancels: tuple[str, ...]
    dropped: tuple[DroppedFire, ...]
    state: ScheduleState


@dataclass(frozen=True)
class PreviewFire:
    """One coming fire, in UTC and on the schedule's own wall clock."""

    at_utc: datetime
    at_local: datetime

    def to_json_dict(self) -> dict[str, str]:
        """The camelCase JSON the preview endpoint returns."""
        return {"atUtc": self.at_utc.isoformat(), "atLocal": self.at_local.isoformat()}


def initial_state(schedule: Schedule, now: datetime) -> ScheduleState:
    """The state of a schedule created at `now`: earlier fires are not owed."""
    state = ScheduleState(processed_through=now)
    return _with_next_fire(schedule, state, now)


def _start_of(
    schedule: Schedule, fire_at: datetime, reason: StartReason
) -> PlannedStart:
    """The planned start of a fire, with its id and jittered start time."""
    jitter = jitter_for(schedule.id, fire_at, schedule.jitter_seconds)
    return PlannedStart(
        fire_run_id(schedule.id, fire_at), fire_at, fire_at + jitter, reason
    )


def _with_next_fire(
    schedule: Schedule, state: ScheduleState, now: datetime
) -> ScheduleState:
    """The state with nextFireAt and nextDueAt recomputed from its cursor."""
    next_fire = next(ScheduleFires(schedule).after(state.processed_through), None)
    next_due = None
    if next_fire is not None and not schedule.paused:
        next_due = next_fire + jitter_for(
            schedule.id, next_fire, schedule.jitter_seconds
        )
    if state.buffered_fire_at is not None and not state.active_run_ids:
        # A buffered fire is owed now; paused schedules wait for resume.
        next_due = None if schedule.paused else min(next_due or now, now)
    return state.model_copy(update={"next_fire_at": next_fire, "next_due_at": next_due})


def plan_tick(
    schedule: Schedule,
    state: ScheduleState,
    now: datetime,
    *,
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE,
) -> TickPlan:
    """Decide which runs start and stop for one schedule at `now`."""
    if schedule.paused:
        # The cursor stays put, so on resume the fires missed while paused
        # follow the misfire policy like any other outage.
        return TickPlan((), (), (), _with_next_fire(schedule, state, now))

    missed, on_time, cursor = _due_fires(
        schedule, state.processed_through, now, misfire_grace
    )
    kept_missed, dropped = _apply_misfire_policy(schedule, missed, bool(on_time), now)
    candidates = sorted(
        [_start_of(schedule, fire, "catch_up") for fire in kept_missed]
        + [_start_of(schedule, fire, "on_time") for fire in on_time],
        key=lambda start: start.scheduled_at,
    )

    buffered = state.buffered_fire_at
    if buffered is not None and not state.active_run_ids:
        candidates.insert(0, _start_of(schedule, buffered, "buffered"))
        buffered = None

    starts, cancels, active, buffered, overlap_dropped = _apply_overlap_policy(
        schedule, candidates, list(state.active_run_ids), buffered
    )
    next_state = ScheduleState(
        processed_through=cursor,
        active_run_ids=tuple(active),
        buffered_fire_at=buffered,
    )
    return TickPlan(
        starts=tuple(starts),
        cancels=tuple(cancels),
        dropped=tuple(sorted(dropped + overlap_dropped, key=lambda d: d.scheduled_at)),
        state=_with_next_fire(schedule, next_state, now),
    )


def _due_fires(
    schedule: Schedule, cursor: datetime, now: datetime, misfire_grace: timedelta
) -> tuple[list[datetime], list[datetime], datetime]:
    """Split the due fires after the cursor into missed and on time; move it on."""
    fires = ScheduleFires(schedule)
    max_jitter = timedelta(seconds=schedule.jitter_seconds)
    # Fires before this started more than the grace ago whatever their
    # jitter: all missed, so only the few the policy keeps are looked up.
    surely_missed_until = now - misfire_grace - max_jitter - _ONE_MICROSECOND
    missed: list[datetime] = []
    if surely_missed_until > cursor:
        search_from = cursor
        if schedule.catchup_window_seconds is not None:
            window = timedelta(seconds=schedule.catchup_window_seconds)
            search_from = max(cursor, now - window - max_jitter - _ONE_MICROSECOND)
        wanted = {"skip": 0, "run_once": 1, "run_all": schedule.misfire_cap}
        count = wanted[schedule.misfire]
        if count and surely_missed_until > search_from:
            missed = fires.latest(search_from, surely_missed_until, count)
        cursor = surely_missed_until

    on_time: list[datetime] = []
    for fire in fires.after(cursor):
        start = fire + jitter_for(schedule.id, fire, schedule.jitter_seconds)
        # Fires are taken in order and the first not yet due stops the walk,
        # so the cursor never passes a fire that has not been decided.
        if start > now:
            break
        if now - start > misfire_grace:
            missed.append(fire)
        else:
            on_time.append(fire)
        cursor = fire
    return missed, on_time, cursor


def _apply_misfire_policy(
    schedule: Schedule, missed: list[datetime], any_on_time: bool, now: datetime
) -> tuple[list[datetime], list[DroppedFire]]:
    """Choose which missed fires still start; the rest are dropped."""
    missed = sorted(missed)
    dropped: list[DroppedFire] = []
    if schedule.catchup_window_seconds is not None:
        window = timedelta(seconds=schedule.catchup_window_seconds)
        too_old = [
            fire
            for fire in missed
            if now - _start_of(schedule, fire, "catch_up").start_at > window
        ]
        dropped = [DroppedFire(fire, "misfire") for fire in too_old]
        missed = [fire for fire in missed if fire not in too_old]
    if schedule.misfire == "skip":
        keep: list[datetime] = []
    elif schedule.misfire == "run_once":
        # An on-time fire in the same tick is the one run that stands for them.
        keep = [] if any_on_time else missed[-1:]
    else:
        keep = missed[-schedule.misfire_cap :]
    dropped += [DroppedFire(fire, "misfire") for fire in missed if fire not in keep]
    return keep, dropped


def _apply_overlap_policy(
    schedule: Schedule,
    candidates: list[PlannedStart],
    active: list[str],
    buffered: datetime | None,
) -> tuple[
    list[PlannedStart], list[str], list[str], datetime | None, list[DroppedFire]
]:
    """Start, buffer, supersede or drop candidates given the runs still active."""
    starts: list[PlannedStart] = []
    cancels: list[str] = []
    dropped: list[DroppedFire] = []
    policy = schedule.overlap
    if policy == "allow":
        starts = candidates
    elif policy == "cancel_previous" and candidates:
        # Only the newest fire survives: starting the others just to cancel
        # them in the same tick would be noise.
        cancels, active = active, []
        starts = candidates[-1:]
        dropped = [DroppedFire(c.scheduled_at, "superseded") for c in candidates[:-1]]
    else:
        for candidate in candidates:
            if not active and not starts:
                starts.append(candidate)
            elif policy == "buffer_one" and buffered is None:
                buffered = candidate.scheduled_at
            else:
                # buffer_one keeps the first fire it buffered, as Temporal
                # does: a second one waiting would only pile up.
                dropped.append(DroppedFire(candidate.scheduled_at, "overlap"))
    active = active + [start.run_id for start in starts]
    return starts, cancels, active, buffered, dropped


def trigger_now(schedule: Schedule, state: ScheduleState, now: datetime) -> TickPlan:
    """Start a run at once, on request, even while paused.

    An explicit request overrides the overlap policy, except that
    cancel_previous still cancels the active run so at most one runs. The
    cursor does not move: scheduled fires are unaffected.
    """
    start = PlannedStart(manual_run_id(schedule.id, now), now, now, "manual")
    cancels = state.active_run_ids if schedule.overlap == "cancel_previous" else ()
    active = tuple(run for run in state.active_run_ids if run not in cancels)
    next_state = state.model_copy(update={"active_run_ids": (*active, start.run_id)})
    plan_state = _with_next_fire(schedule, next_state, now)
    return TickPlan((start,), tuple(cancels), (), plan_state)


def mark_run_finished(
    schedule: Schedule, state: ScheduleState, run_id: str, now: datetime
) -> ScheduleState:
    """Forget a finished run; a buffered fire then becomes due at `now`."""
    active = tuple(run for run in state.active_run_ids if run != run_id)
    next_state = state.model_copy(update={"active_run_ids": active})
    return _with_next_fire(schedule, next_state, now)


def preview(schedule: Schedule, now: datetime, count: int) -> list[PreviewFire]:
    """The next `count` fires after `now`, paused or not, within startAt/endAt."""
    count = max(0, min(count, MAX_PREVIEW_COUNT))
    zone = schedule.zone
    return [
        PreviewFire(fire, fire.astimezone(zone))
        for fire in islice(ScheduleFires(schedule).after(now), count)
    ]
