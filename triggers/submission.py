"""Submit-and-start, shared by the HTTP API and the lane queues."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import azure.durable_functions as df

from duralane.jobs import service
from duralane.jobs.lanes import is_urgent, lane_priority, start_deadline_seconds
from duralane.jobs.model import JobRecord, JobSpec, JobState
from duralane.jobs.order import JobOrder
from duralane.settings import LANES, Settings
from duralane.store import Store
from duralane.store.priority import store_priority
from duralane.urgency import urgent_work

logger = logging.getLogger(__name__)

ORCHESTRATOR = "run_job"
ENDED_STATUSES = (
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
)
# Each lane is its own task hub; in Azure its own Function App serves it.
LANE_HUBS = {"high": "DuralaneHigh", "normal": "DuralaneNormal", "low": "DuralaneLow"}


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def lane_clients_of(blueprint: df.Blueprint) -> Callable[[F], F]:
    """A decorator binding one durable client per lane's task hub, named by lane."""

    def bind(handler: F) -> F:
        for lane in reversed(LANES):
            hub = LANE_HUBS[lane]
            handler = blueprint.durable_client_input(client_name=lane, task_hub=hub)(
                handler
            )
        return handler

    return bind


class LaneUnavailable(Exception):
    """A lane's task hub did not take a call; the message says what stands."""


@contextlib.contextmanager
def lane_call(lane: str, job_id: str, outcome: str) -> Iterator[None]:
    """Turn a durable client call that failed into LaneUnavailable.

    Where a lane runs in a peer runtime, or in Azure in its own Function App,
    the call can fail while the job store write before it has succeeded:
    outcome tells the caller what that left and how to finish it.
    """
    hub = LANE_HUBS[lane]
    try:
        yield
    except Exception as exc:
        logger.warning(
            "job %s lane %s: task hub %s did not take the call: %r",
            job_id,
            lane,
            hub,
            exc,
        )
        raise LaneUnavailable(
            f"the {lane} lane's task hub {hub} did not answer "
            f"({type(exc).__name__}); {outcome}"
        ) from exc


async def submit_and_start(
    store: Store, spec: JobSpec, client: df.DurableOrchestrationClient
) -> service.Submission:
    """Store the job and start its orchestration, once per idempotency key."""
    priority = lane_priority(spec.lane)
    with urgent_start(spec) as started, store_priority(priority):
        submission, starting = await _submit_and_start(store, spec, client, priority)
        if starting:
            started()
    return submission


@contextlib.contextmanager
def urgent_start(spec: JobSpec) -> Iterator[Callable[[], None]]:
    """Make a due high-lane job urgent while its start is under way.

    Other work steps aside until run_attempt records the first attempt (see
    duralane.urgency). The block gets a function to call once it has started
    the orchestration; a block that ends without calling it ends the urgency
    itself, since nothing will record a start.
    """
    seconds = _urgent_seconds(spec)
    began = seconds is not None and urgent_work.begin(
        spec.instance_id, lane_priority(spec.lane), seconds
    )
    started = False

    def mark_started() -> None:
        nonlocal started
        started = True

    try:
        yield mark_started
    finally:
        if began and not started:
            urgent_work.end(spec.instance_id)


def _urgent_seconds(spec: JobSpec) -> float | None:
    """How long other work may step aside for this job's start, if at all.

    Only an urgent lane's job that is due now, in a process that also runs
    its attempts, and no longer than the lane's start deadline.
    """
    if not is_urgent(spec.lane):
        return None
    if spec.run_at is not None and spec.run_at > service.utc_now():
        return None
    settings = Settings.from_environ()
    # In Azure each lane is its own app: another lane's app has nothing to hold.
    if not settings.serves(spec.lane):
        return None
    return start_deadline_seconds(spec.lane, settings)


async def _submit_and_start(
    store: Store, spec: JobSpec, client: df.DurableOrchestrationClient, priority: int
) -> tuple[service.Submission, bool]:
    """The submission, and whether this call started its orchestration.

    Before each of its two steps a less urgent submission lets an urgent one
    go first (see duralane.urgency).
    """
    await urgent_work.step_aside(priority)
    submission = await service.submit(store, spec)
    record = submission.record
    # A queued job from an earlier call may have lost its start to a crash
    # between the store write and start_new: start it if it never began. Only
    # a resubmission pays for that status check.
    not_started = (
        f"job {record.job_id} is stored as queued but not started; submit it again "
        "with the same idempotency key to start it"
    )
    starting = submission.created
    if not starting and record.state == JobState.QUEUED:
        with lane_call(spec.lane, record.job_id, not_started):
            starting = await _never_began(record, client)
    if starting:
        order = JobOrder.for_record(record).to_json()
        await urgent_work.step_aside(priority)
        with lane_call(spec.lane, record.job_id, not_started):
            await client.start_new(ORCHESTRATOR, record.instance_id, order)
        logger.info(
            "started job %s lane %s as instance %s",
            record.job_id,
            spec.lane,
            record.instance_id,
        )
    return submission, starting


async def _never_began(
    record: JobRecord, client: df.DurableOrchestrationClient
) -> bool:
    """Whether a queued job's run has no orchestration.

    No instance, or only an earlier run's that has ended (a replay whose start
    failed): either way this run never began.
    """
    status = await client.get_status(record.instance_id)
    return not status or getattr(status, "runtime_status", None) in ENDED_STATUSES


async def start_if_stranded(
    record: JobRecord, client: df.DurableOrchestrationClient
) -> bool:
    """Start a queued job whose start never reached its lane; whether it did.

    Nothing else is done for it: no urgency (its deadline has passed) and no
    resubmission, so the job keeps its record and its idempotency marker.
    """
    lane = record.spec.lane
    order = JobOrder.for_record(record).to_json()
    not_started = f"job {record.job_id} stays queued; the next sweep tries again"
    with (
        store_priority(lane_priority(lane)),
        lane_call(lane, record.job_id, not_started),
    ):
        if not await _never_began(record, client):
            return False
        await client.start_new(ORCHESTRATOR, record.instance_id, order)
    logger.warning(
        "job %s lane %s was queued with no orchestration since %s; started instance %s",
        record.job_id,
        lane,
        record.created_at.isoformat(),
        record.instance_id,
    )
    return True


def job_json(record: Any) -> dict[str, Any]:
    """A job as the API shows it."""
    doc = service.to_doc(record)
    doc.pop("_etag", None)
    return doc
