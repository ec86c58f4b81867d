"""A job's bookkeeping activities reach the store at their lane's priority."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import activities.jobs as job_activities
from duralane.jobs import service
from duralane.jobs.order import JobOrder
from duralane.store.priority import current_priority
from orchestrators.job import _attempt_payload, _job_payload


def _order(lane: str) -> JobOrder:
    return JobOrder(
        job_id=f"prio-{lane}",
        lane=lane,
        kind="http",
        run=1,
        retry={},
        attempt_timeout_seconds=30,
    )


def test_every_activity_payload_of_a_job_names_its_lane() -> None:
    order = _order("high")

    assert _job_payload(order) == {"jobId": "prio-high", "lane": "high"}
    assert _attempt_payload(order, 3) == {
        "jobId": "prio-high",
        "lane": "high",
        "attempt": 3,
        "run": 1,
    }


@pytest.mark.parametrize(
    ("lane", "priority"),
    [("high", 2), ("normal", 1), ("low", 0), (None, 0), ("urgent", 0)],
)
def test_the_cancellation_activity_writes_at_the_payloads_lane_priority(
    monkeypatch: pytest.MonkeyPatch, lane: str | None, priority: int
) -> None:
    """An older payload without a lane, or a bad one, runs at the lowest priority."""
    seen: list[int] = []

    async def no_store() -> object:
        return object()

    async def mark_cancelled(store: object, job_id: str) -> None:
        seen.append(current_priority())

    monkeypatch.setattr(service, "get_store", no_store)
    monkeypatch.setattr(service, "mark_cancelled", mark_cancelled)
    activity = job_activities.record_cancellation._function.get_user_function()
    payload: dict[str, Any] = {"jobId": "prio-job"}
    if lane is not None:
        payload["lane"] = lane

    asyncio.run(activity(payload))

    assert seen == [priority]
    assert current_priority() == 0


def test_every_job_activity_that_writes_the_store_is_prioritised() -> None:
    writers = [
        "run_attempt",
        "record_attempt_failure",
        "record_probe_results",
        "dead_letter_job",
        "record_cancellation",
    ]
    for name in writers:
        user_function = getattr(job_activities, name)._function.get_user_function()
        assert (
            user_function.__code__
            is job_activities.at_lane_priority(lambda payload: payload).__code__
        ), f"{name} is not wrapped in at_lane_priority"
