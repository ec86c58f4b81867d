"""Job activities: run an attempt, probe an endpoint, and record how a job ends."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import azure.durable_functions as df

from duralane.jobs import service
from duralane.jobs.errors import FailureInfo, failure_info
from duralane.jobs.kinds import JobContext, run_job
from duralane.jobs.kinds.probe import (
    ProbeEndpoint,
    ProbeResult,
    probe_endpoint,
    summarize,
)
from duralane.jobs.lanes import is_lane, lane_priority
from duralane.jobs.safety import TargetPolicy
from duralane.schedules import health
from duralane.settings import Settings
from duralane.store.priority import store_priority
from duralane.urgency import urgent_work

logger = logging.getLogger(__name__)

bp = df.Blueprint()
T = TypeVar("T")
Activity = Callable[[dict[str, Any]], Awaitable[T]]


def at_lane_priority(activity: Activity[T]) -> Activity[T]:
    """Run an activity's store calls at its job's lane priority (see store_priority).

    A payload recorded before it carried the lane runs at the lowest priority.
    """

    @functools.wraps(activity)
    async def prioritised(payload: dict[str, Any]) -> T:
        lane = str(payload.get("lane"))
        with store_priority(lane_priority(lane) if is_lane(lane) else 0):
            return await activity(payload)

    return prioritised


def _attempt_of(payload: dict[str, Any]) -> tuple[str, int, int]:
    """Which job, attempt and run an activity's payload is about."""
    return str(payload["jobId"]), int(payload["attempt"]), int(payload["run"])


def _policy() -> TargetPolicy:
    return TargetPolicy.from_settings(Settings.from_environ())


@bp.activity_trigger(input_name="payload", activity="run_attempt")
@at_lane_priority
async def run_attempt(payload: dict[str, Any]) -> dict[str, Any]:
    """Record the attempt's start, run the job once, and record how it went."""
    store = await service.get_store()
    job_id, attempt, run = _attempt_of(payload)
    record = await service.start_attempt(store, job_id, attempt, run)
    # Recorded: whatever held back for this job's start may go on.
    urgent_work.end(record.instance_id)
    if record.state.is_final:
        logger.info("job %s is %s; attempt %d skipped", job_id, record.state, attempt)
        return {"ok": record.state == "succeeded", "failure": None}

    context = JobContext(
        job_id=job_id,
        attempt=attempt,
        idempotency_key=record.spec.idempotency_key,
        target_policy=_policy(),
    )
    try:
        result = await run_job(
            record.spec.kind,
            record.spec.params,
            context,
            timeout_seconds=record.spec.attempt_timeout_seconds,
        )
    except Exception as exc:
        failure = failure_info(exc)
        await service.finish_attempt(store, job_id, attempt, run, failure=failure)
        return {"ok": False, "failure": failure.to_dict()}
    await service.finish_attempt(store, job_id, attempt, run, result=result)
    return {"ok": True, "failure": None}


@bp.activity_trigger(input_name="payload", activity="record_attempt_failure")
@at_lane_priority
async def record_attempt_failure(payload: dict[str, Any]) -> None:
    """Close an attempt the orchestrator gave up on: timed out, or never recorded."""
    store = await service.get_store()
    reported = payload["failure"]
    failure = FailureInfo(kind=reported["kind"], message=reported["message"])
    job_id, attempt, run = _attempt_of(payload)
    await service.finish_attempt(store, job_id, attempt, run, failure=failure)


@bp.activity_trigger(input_name="payload", activity="probe_endpoint")
async def probe_one_endpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """Probe one endpoint; a failing endpoint is a result, not an error."""
    endpoint = ProbeEndpoint.model_validate(payload["endpoint"])
    result = await probe_endpoint(endpoint, policy=_policy(), job_id=payload["jobId"])
    return result.model_dump(mode="json", by_alias=True)


@bp.activity_trigger(input_name="payload", activity="record_probe_results")
@at_lane_priority
async def record_probe_results(payload: dict[str, Any]) -> dict[str, Any]:
    """Store each endpoint's result and the summary as the attempt's outcome."""
    store = await service.get_store()
    job_id, attempt, run = _attempt_of(payload)
    record = await service.start_attempt(store, job_id, attempt, run)
    results = [ProbeResult.model_validate(r) for r in payload["results"]]
    summary = summarize(results).model_dump(mode="json", by_alias=True)
    outcome = {"summary": summary, "results": payload["results"]}
    # Before the job ends, so a finished scheduled probe has its streaks counted.
    await health.record_probe_run(store, job_id, record.spec.tags, payload["results"])
    await service.finish_attempt(store, job_id, attempt, run, result=outcome)
    return {"ok": True, "failure": None}


@bp.activity_trigger(input_name="payload", activity="dead_letter_job")
@at_lane_priority
async def dead_letter_job(payload: dict[str, Any]) -> None:
    """Move the job to dead letters with its reason."""
    store = await service.get_store()
    await service.dead_letter(store, payload["jobId"], payload["reason"])


@bp.activity_trigger(input_name="payload", activity="record_cancellation")
@at_lane_priority
async def record_cancellation(payload: dict[str, Any]) -> None:
    """Record the cancellation on the job."""
    store = await service.get_store()
    await service.mark_cancelled(store, payload["jobId"])
