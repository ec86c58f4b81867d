"""Service Bus triggers: one queue per lane, taking the same JSON as POST /api/jobs."""

from __future__ import annotations

import asyncio
import json
import logging

import azure.durable_functions as df
import azure.functions as func
from pydantic import ValidationError

from duralane.jobs import service
from duralane.jobs.model import JobSpec, field_errors, parse_job_spec
from duralane.store import Store
from triggers.submission import LANE_HUBS, LaneUnavailable, submit_and_start

logger = logging.getLogger(__name__)

bp = df.Blueprint()
CONNECTION = "ServiceBusConnection"
# Azure's path of a queue's dead-letter sub-queue.
DEAD_LETTER_QUEUE = "/$deadletterqueue"
# Pauses between tries of a start the job's lane did not take: 15.5 s in all,
# well inside the lanes' one-minute message locks.
START_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


async def _accept(
    lane: str, message: func.ServiceBusMessage, client: df.DurableOrchestrationClient
) -> None:
    """Turn a message into a job; a body that is no job goes to dead letters."""
    queue = f"jobs-{lane}"
    body = message.get_body()
    text = body.decode("utf-8", errors="replace")
    store = await service.get_store()
    try:
        spec = parse_job_spec(_with_lane(body, lane))
    except ValidationError as exc:
        problems = "; ".join(
            f"{e['field'] or 'body'}: {e['reason']}" for e in field_errors(exc)
        )
        await service.dead_letter_message(
            store, queue, message.message_id or "", text, f"invalid job: {problems}"
        )
        return
    except ValueError as exc:
        await service.dead_letter_message(
            store, queue, message.message_id or "", text, str(exc)
        )
        return
    submission = await _submitted(store, spec, client, queue, message)
    logger.info(
        "queue %s message %s became job %s (%s)",
        queue,
        message.message_id,
        submission.record.job_id,
        "new" if submission.created else "existing",
    )


async def _submitted(
    store: Store,
    spec: JobSpec,
    client: df.DurableOrchestrationClient,
    queue: str,
    message: func.ServiceBusMessage,
) -> service.Submission:
    """Submit, retrying for a while if the job's lane does not take its start.

    The job is stored by the first try. A lane in a peer runtime that is
    restarting answers again within seconds, and failing at once would spend
    the message's deliveries in milliseconds and dead-letter a valid job. A
    lane still down after the retries leaves the start to the stranded-job
    sweep (triggers/stranded.py): the message has done its part, the job is
    stored, so it is completed rather than dead-lettered.
    """
    for delay in START_RETRY_DELAYS:
        try:
            return await submit_and_start(store, spec, client)
        except LaneUnavailable:
            logger.info(
                "queue %s message %s job %s: lane %s did not take the start; "
                "trying again in %.1f s",
                queue,
                message.message_id,
                spec.id,
                spec.lane,
                delay,
            )
            await asyncio.sleep(delay)
    try:
        return await submit_and_start(store, spec, client)
    except LaneUnavailable:
        logger.warning(
            "queue %s message %s job %s: lane %s still does not take the start; "
            "the job is stored and left to the stranded-job sweep",
            queue,
            message.message_id,
            spec.id,
            spec.lane,
        )
        return await service.submit(store, spec)


def _with_lane(body: bytes, lane: str) -> dict[str, object]:
    """The message's job with the queue's lane; a different lane is refused."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object describing one job")
    named = data.setdefault("lane", lane)
    if named != lane:
        raise ValueError(f"job names lane '{named}' but arrived on queue jobs-{lane}")
    return data


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name="jobs-high", connection=CONNECTION
)
@bp.durable_client_input(client_name="client", task_hub=LANE_HUBS["high"])
async def jobs_high(
    msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient
) -> None:
    """High-lane submissions."""
    await _accept("high", msg, client)


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name="jobs-normal", connection=CONNECTION
)
@bp.durable_client_input(client_name="client", task_hub=LANE_HUBS["normal"])
async def jobs_normal(
    msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient
) -> None:
    """Normal-lane submissions."""
    await _accept("normal", msg, client)


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name="jobs-low", connection=CONNECTION
)
@bp.durable_client_input(client_name="client", task_hub=LANE_HUBS["low"])
async def jobs_low(
    msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient
) -> None:
    """Low-lane submissions."""
    await _accept("low", msg, client)


async def _move_dead_letter(lane: str, message: func.ServiceBusMessage) -> None:
    """Copy one Service Bus dead letter to the store; completing it empties the DLQ."""
    queue = f"jobs-{lane}"
    store = await service.get_store()
    text = message.get_body().decode("utf-8", errors="replace")
    reason = message.dead_letter_reason or "dead-lettered by Service Bus"
    await service.dead_letter_message(
        store,
        queue,
        message.message_id or "",
        text,
        reason,
        description=message.dead_letter_error_description or "",
        deliveryCount=message.delivery_count,
        enqueuedAt=(
            message.enqueued_time_utc.isoformat() if message.enqueued_time_utc else None
        ),
    )


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name=f"jobs-high{DEAD_LETTER_QUEUE}", connection=CONNECTION
)
async def jobs_high_dead_letters(msg: func.ServiceBusMessage) -> None:
    """Move jobs-high's dead letters where GET /api/deadletters shows them."""
    await _move_dead_letter("high", msg)


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name=f"jobs-normal{DEAD_LETTER_QUEUE}", connection=CONNECTION
)
async def jobs_normal_dead_letters(msg: func.ServiceBusMessage) -> None:
    """Move jobs-normal's dead letters where GET /api/deadletters shows them."""
    await _move_dead_letter("normal", msg)


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name=f"jobs-low{DEAD_LETTER_QUEUE}", connection=CONNECTION
)
async def jobs_low_dead_letters(msg: func.ServiceBusMessage) -> None:
    """Move jobs-low's dead letters where GET /api/deadletters shows them."""
    await _move_dead_letter("low", msg)
