"""Submit-and-start, shared by the HTTP API and the lane queues."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from duralane.jobs import service
from duralane.jobs.lanes import lane_priority
from duralane.jobs.model import JobSpec, JobState
from duralane.jobs.order import JobOrder
from duralane.store import Store
from duralane.store.priority import store_priority

logger = logging.getLogger(__name__)

ORCHESTRATOR = "run_job"
# Each lane is its own task hub; in Azure its own Function App serves it.
LANE_HUBS = {"high": "DuralaneHigh", "normal": "DuralaneNormal", "low": "DuralaneLow"}


async def submit_and_start(
    store: Store, spec: JobSpec, client: df.DurableOrchestrationClient
) -> service.Submission:
    """Store the job and start its orchestration, once per idempotency key."""
    with store_priority(lane_priority(spec.lane)):
        return await _submit_and_start(store, spec, client)


async def _submit_and_start(
    store: Store, spec: JobSpec, client: df.DurableOrchestrationClient
) -> service.Submission:
    submission = await service.submit(store, spec)
    record = submission.record
    # A queued job from an earlier call may have lost its start to a crash
    # between the store write and start_new: start it if it never began. Only
    # a resubmission pays for that status check.
    starting = submission.created
    if not starting and record.state == JobState.QUEUED:
        starting = not await client.get_status(record.instance_id)
    if starting:
        await client.start_new(
            ORCHESTRATOR, record.instance_id, JobOrder.for_record(record).to_json()
        )
        logger.info(
            "started job %s lane %s as instance %s",
            record.job_id,
            spec.lane,
            record.instance_id,
        )
    return submission


def job_json(record: Any) -> dict[str, Any]:
    """A job as the API shows it."""
    doc = service.to_doc(record)
    doc.pop("_etag", None)
    return doc
