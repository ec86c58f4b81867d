"""Lane names, their start deadlines and the queues their submissions arrive on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from duralane.settings import DEFAULT_LANE_DEADLINES, LANES, Settings

Lane = Literal["high", "normal", "low"]

LANE_NAMES: tuple[Lane, ...] = ("high", "normal", "low")
DEFAULT_LANE: Lane = "normal"

# The settings module owns the lane list; fail at import, not at 3 a.m., if the
# two ever drift apart.
assert LANE_NAMES == LANES, f"lanes drifted: {LANE_NAMES} != {LANES}"


def is_lane(name: str) -> bool:
    """Whether a string names a lane, for input that has not been validated."""
    return name in LANE_NAMES


def lane_priority(lane: str) -> int:
    """How urgent a lane's store calls are: high 2, normal 1, low 0."""
    _require_lane(lane)
    return {"high": 2, "normal": 1, "low": 0}[lane]


def is_urgent(lane: str) -> bool:
    """Whether other work steps aside while the lane's jobs start (duralane.urgency).

    Only the high lane: its start deadline is a second, the others' minutes.
    """
    _require_lane(lane)
    return lane == "high"


def queue_name(lane: str) -> str:
    """The Service Bus (or local) queue a lane's submissions arrive on."""
    _require_lane(lane)
    return f"jobs-{lane}"


def lane_for_queue(queue: str) -> Lane | None:
    """The lane a queue feeds, or None when the queue is not a lane queue."""
    for lane in LANE_NAMES:
        if queue == f"jobs-{lane}":
            return lane
    return None


def start_deadline_seconds(lane: str, settings: Settings | None = None) -> float:
    """How long a job in the lane may wait before its first attempt starts."""
    _require_lane(lane)
    deadlines: Mapping[str, float] = (
        settings.lane_deadlines if settings is not None else DEFAULT_LANE_DEADLINES
    )
    return float(deadlines.get(lane, DEFAULT_LANE_DEADLINES[lane]))


def start_deadline(
    lane: str,
    submitted_at: datetime,
    run_at: datetime | None = None,
    settings: Settings | None = None,
) -> datetime:
    """The instant by which a job should have started its first attempt."""
    # A job scheduled for later is not late before its runAt, so its deadline
    # counts from whichever of submission and runAt comes last.
    ready_at = submitted_at if run_at is None else max(submitted_at, run_at)
    return ready_at + timedelta(seconds=start_deadline_seconds(lane, settings))


def _require_lane(lane: str) -> None:
    """Refuse a lane name that is not one of the three."""
    if lane not in LANE_NAMES:
        raise ValueError(f"unknown lane {lane!r}: expected one of {LANE_NAMES}")
