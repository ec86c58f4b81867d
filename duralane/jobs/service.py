"""Job lifecycle on the state store: submit, attempt, finish, dead-letter, replay.

The HTTP API, the queue triggers and the activities all change jobs through
these functions, so a job's record, its dead letter and its log events stay
consistent whichever way in it came.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from duralane import events
from duralane.jobs.errors import FailureInfo
from duralane.jobs.model import Attempt, JobRecord, JobSpec, JobState
from duralane.settings import Settings
from duralane.store import (
    ETAG,
    Doc,
    RecordExists,
    RecordNotFound,
    Store,
    iso_utc,
    open_store,
)

logger = logging.getLogger(__name__)

JOBS = "jobs"
DEAD_LETTERS = "deadletters"
IDEMPOTENCY = "leases"
OWNER = f"{socket.gethostname()}:{os.getpid()}"

_stores: dict[int, Store] = {}
_store_lock = asyncio.Lock()


async def get_store() -> Store:
    """The process's store, opened once per event loop from the app settings."""
    loop_id = id(asyncio.get_running_loop())
    store = _stores.get(loop_id)
    if store is None:
        async with _store_lock:
            store = _stores.get(loop_id)
            if store is None:
                store = await open_store(Settings.from_environ())
                _stores[loop_id] = store
    return store


def utc_now() -> datetime:
    """The current instant, in UTC."""
    return datetime.now(UTC)


def to_doc(record: JobRecord) -> Doc:
    """A job record as the store keeps it: camelCase, index fields at the top."""
    doc: Doc = record.model_dump(mode="json", by_alias=True)
    doc["id"] = record.job_id
    doc["status"] = record.state.value
    doc["lane"] = record.spec.lane
    doc["kind"] = record.spec.kind
    doc["tags"] = list(record.spec.tags)
    doc["createdAt"] = iso_utc(record.created_at)
    doc["updatedAt"] = iso_utc(record.updated_at)
    return doc


def from_doc(doc: Doc) -> JobRecord:
    """A stored job document back as a record."""
    return JobRecord.model_validate({k: v for k, v in doc.items() if k != ETAG})


@dataclass(frozen=True)
class Submission:
    """The outcome of a submit: the job, and whether this call created it."""

    record: JobRecord
    created: bool


async def submit(
    store: Store, spec: JobSpec, now: datetime | None = None
) -> Submission:
    """Store a new job, or return the one already submitted under its key."""
    now = now or utc_now()
    marker = {"id": f"idem-{spec.instance_id}", "jobId": spec.id}
    record = JobRecord.new(spec, now)
    try:
        # The key's marker and the job in one write: one trip to the store,
        # not two, on the path every high-lane start waits for.
        await store.create_all([(IDEMPOTENCY, marker), (JOBS, to_doc(record))])
    except RecordExists as taken:
        if taken.container != IDEMPOTENCY:
            # The job id is taken (where creates run in order, by a twin that
            # raced us after our marker): that job stands.
            return Submission(await get_job(store, record.job_id), created=False)
        return await _resubmitted(store, spec, str(marker["id"]), now)
    _log_submitted(record)
    return Submission(record, created=True)


async def _resubmitted(
    store: Store, spec: JobSpec, marker_id: str, now: datetime
) -> Submission:
    """The job already stored under this key, finished if its first submit died."""
    marker = await store.read(IDEMPOTENCY, marker_id)
    job_id = str(marker["jobId"])
    try:
        record = from_doc(await store.read(JOBS, job_id))
    except RecordNotFound:
        # Where creates run in order, the first submit may have died between
        # its marker and its job: finish it.
        logger.warning(
            "job %s under key %s had a marker but no record; creating it",
            job_id,
            spec.idempotency_key,
        )
        return await _create_job(store, spec.model_copy(update={"id": job_id}), now)
    logger.info(
        "job %s resubmitted under key %s; returning the existing job",
        record.job_id,
        spec.idempotency_key,
    )
    return Submission(record, created=False)


async def _create_job(store: Store, spec: JobSpec, now: datetime) -> Submission:
    """Store a job under a key already claimed; a concurrent twin wins quietly."""
    record = JobRecord.new(spec, now)
    try:
        await store.create(JOBS, to_doc(record))
    except RecordExists:
        return Submission(await get_job(store, record.job_id), created=False)
    _log_submitted(record)
    return Submission(record, created=True)


def _log_submitted(record: JobRecord) -> None:
    spec = record.spec
    logger.info(
        "%s job %s kind %s lane %s instance %s",
        events.JOB_SUBMITTED,
        record.job_id,
        spec.kind,
        spec.lane,
        record.instance_id,
        extra={
            events.ATTR_JOB_ID: record.job_id,
            events.ATTR_LANE: spec.lane,
            events.ATTR_KIND: spec.kind,
            events.ATTR_INSTANCE_ID: record.instance_id,
        },
    )


async def get_job(store: Store, job_id: str) -> JobRecord:
    """Read one job; RecordNotFound when there is none."""
    return from_doc(await store.read(JOBS, job_id))


async def start_attempt(store: Store, job_id: str, attempt: int, run: int) -> JobRecord:
    """Mark a job running with a new attempt; the first one records the start lag."""
    now = utc_now()

    def change(doc: Doc) -> Doc:
        record = from_doc(doc)
        if record.state in (JobState.CANCELLED, JobState.SUCCEEDED):
            return doc
        if any(a.number == attempt and a.run == run for a in record.attempts):
            return doc  # a retried activity: the attempt is already recorded
        updates: dict[str, Any] = {
            "state": JobState.RUNNING,
            "attempts": [
                *record.attempts,
                Attempt(number=attempt, run=run, started_at=now),
            ],
            "updated_at": now,
            "owner": OWNER,
            "heartbeat_at": now,
            "next_attempt_at": None,
        }
        if record.started_at is None or attempt == 1:
            updates["started_at"] = now
            lag = (now - record.ready_at).total_seconds() * 1000
            updates["start_lag_ms"] = max(lag, 0.0)
        return to_doc(record.model_copy(update=updates))

    record = from_doc(await store.update(JOBS, job_id, change))
    if attempt == 1 and record.start_lag_ms is not None:
        logger.info(
            "%s job %s lane %s attempt %d start lag %.1f ms",
            events.JOB_STARTED,
            job_id,
            record.spec.lane,
            attempt,
            record.start_lag_ms,
            extra={
                events.ATTR_JOB_ID: job_id,
                events.ATTR_LANE: record.spec.lane,
                events.ATTR_KIND: record.spec.kind,
                events.ATTR_ATTEMPT: attempt,
                events.ATTR_START_LAG_MS: record.start_lag_ms,
            },
        )
    return record


async def finish_attempt(
    store: Store,
    job_id: str,
    attempt: int,
    run: int,
    *,
    result: Any = None,
    failure: FailureInfo | None = None,
    next_attempt_at: datetime | None = None,
) -> JobRecord:
    """Close an attempt: success ends the job, a failure leaves it retry-pending.

    An attempt that reports back after its job ended (cancelled, dead-lettered,
    or replayed as a new run) or after the timeout backstop closed it changes
    nothing but its own entry, so a late result never revives a finished job.
    """
    now = utc_now()
    took_effect = False

    def change(doc: Doc) -> Doc:
        nonlocal took_effect
        record = from_doc(doc)
        current = next(
            (a for a in record.attempts if a.number == attempt and a.run == run),
            None,
        )
        if current is None or current.ended_at is not None:
            took_effect = False
            return doc
        attempts = [
            a.ended(now, failure) if a is current else a for a in record.attempts
        ]
        updates: dict[str, Any] = {"attempts": attempts, "updated_at": now}
        took_effect = not record.state.is_final and record.run == run
        if took_effect and failure is None:
            updates.update(state=JobState.SUCCEEDED, result=result, finished_at=now)
        elif took_effect:
            updates.update(state=JobState.FAILED, next_attempt_at=next_attempt_at)
        return to_doc(record.model_copy(update=updates))

    record = from_doc(await store.update(JOBS, job_id, change))
    extra: dict[str, Any] = {
        events.ATTR_JOB_ID: job_id,
        events.ATTR_LANE: record.spec.lane,
        events.ATTR_KIND: record.spec.kind,
        events.ATTR_ATTEMPT: attempt,
    }
    if not took_effect:
        logger.info(
            "job %s lane %s attempt %d of run %d reported back after the job was "
            "%s; only the attempt is recorded",
            job_id,
            record.spec.lane,
            attempt,
            run,
            record.state.value,
            extra=extra,
        )
    elif failure is None:
        duration_ms = _milliseconds(record.started_at, record.finished_at)
        logger.info(
            "%s job %s lane %s attempt %d in %.1f ms",
            events.JOB_SUCCEEDED,
            job_id,
            record.spec.lane,
            attempt,
            duration_ms,
            extra={**extra, events.ATTR_DURATION_MS: duration_ms},
        )
    else:
        logger.info(
            "%s job %s lane %s attempt %d failed (%s): %s",
            events.JOB_ATTEMPT_FAILED,
            job_id,
            record.spec.lane,
            attempt,
            failure.kind,
            failure.message,
            extra={**extra, events.ATTR_REASON: failure.message},
        )
    return record


def _milliseconds(start: datetime | None, end: datetime | None) -> float:
    """The time between two instants in ms; 0 when either is unknown."""
    if start is None or end is None:
        return 0.0
    return max((end - start).total_seconds() * 1000, 0.0)


async def dead_letter(store: Store, job_id: str, reason: str) -> JobRecord:
    """Move a job to dead letters with the reason and every attempt's error."""
    now = utc_now()

    def change(doc: Doc) -> Doc:
        record = from_doc(doc)
        # An attempt the store never heard back from ends with the job, so a dead
        # letter never shows an attempt as still running.
        unrecorded = FailureInfo(kind="transient", message=f"not recorded: {reason}")
        attempts = [
            a if a.ended_at is not None else a.ended(now, unrecorded)
            for a in record.attempts
        ]
        return to_doc(
            record.model_copy(
                update={
                    "state": JobState.DEAD_LETTERED,
                    "dead_letter_reason": reason,
                    "attempts": attempts,
                    "finished_at": now,
                    "updated_at": now,
                    "next_attempt_at": None,
                }
            )
        )

    record = from_doc(await store.update(JOBS, job_id, change))
    letter = {
        "id": job_id,
        "jobId": job_id,
        "lane": record.spec.lane,
        "kind": record.spec.kind,
        "source": "job",
        "reason": reason,
        "deadLetteredAt": iso_utc(now),
        "run": record.run,
        "spec": record.spec.model_dump(mode="json", by_alias=True),
        "attempts": [a.model_dump(mode="json", by_alias=True) for a in record.attempts],
    }
    try:
        await store.create(DEAD_LETTERS, letter)
    except RecordExists:
        current = await store.read(DEAD_LETTERS, job_id)
        await store.replace(DEAD_LETTERS, letter, current[ETAG])
    logger.warning(
        "%s job %s lane %s after %d attempts: %s",
        events.JOB_DEAD_LETTERED,
        job_id,
        record.spec.lane,
        len(record.attempts),
        reason,
        extra={
            events.ATTR_JOB_ID: job_id,
            events.ATTR_LANE: record.spec.lane,
            events.ATTR_KIND: record.spec.kind,
            events.ATTR_REASON: reason,
        },
    )
    return record


async def dead_letter_message(
    store: Store,
    queue: str,
    message_id: str,
    body: str,
    reason: str,
    **details: Any,
) -> Doc:
    """Keep a message that never became a job, with why and details, in dead letters."""
    now = utc_now()
    letter = {
        **details,
        "id": f"msg-{queue}-{message_id}",
        "jobId": "",
        "lane": queue.removeprefix("jobs-"),
        "kind": "",
        "source": "queue",
        "reason": reason,
        "deadLetteredAt": iso_utc(now),
        "queue": queue,
        "messageId": message_id,
        "body": body,
    }
    try:
        stored = await store.create(DEAD_LETTERS, letter)
    except RecordExists:
        stored = await store.read(DEAD_LETTERS, letter["id"])
    logger.warning(
        "%s message %s from queue %s: %s",
        events.QUEUE_MESSAGE_DEAD_LETTERED,
        message_id,
        queue,
        reason,
        extra={events.ATTR_QUEUE: queue, events.ATTR_REASON: reason},
    )
    return stored


async def mark_cancelled(store: Store, job_id: str) -> JobRecord:
    """Record that a job was cancelled; a finished job stays as it was."""
    now = utc_now()

    def change(doc: Doc) -> Doc:
        record = from_doc(doc)
        if record.state.is_final:
            return doc
        return to_doc(
            record.model_copy(
                update={
                    "state": JobState.CANCELLED,
                    "finished_at": now,
                    "updated_at": now,
                }
            )
        )

    record = from_doc(await store.update(JOBS, job_id, change))
    logger.info(
        "%s job %s lane %s",
        events.JOB_CANCELLED,
        job_id,
        record.spec.lane,
        extra={events.ATTR_JOB_ID: job_id, events.ATTR_LANE: record.spec.lane},
    )
    return record


async def prepare_replay(store: Store, job_id: str) -> JobRecord:
    """Put a dead-lettered job back in the queue under a new attempt series."""
    now = utc_now()
    letter = await store.read(DEAD_LETTERS, job_id)
    if letter.get("source") != "job":
        raise ValueError(
            f"dead letter {job_id} came from queue {letter.get('queue')} and holds no "
            "valid job; fix the message and submit it again"
        )

    def change(doc: Doc) -> Doc:
        record = from_doc(doc)
        if record.state != JobState.DEAD_LETTERED:
            raise ValueError(f"job {job_id} is {record.state.value}, not dead_lettered")
        return to_doc(
            record.model_copy(
                update={
                    "state": JobState.QUEUED,
                    "run": record.run + 1,
                    "dead_letter_reason": None,
                    "finished_at": None,
                    "started_at": None,
                    "start_lag_ms": None,
                    # A replay's start lag counts from the moment it was replayed.
                    "next_attempt_at": now,
                    "updated_at": now,
                }
            )
        )

    record = from_doc(await store.update(JOBS, job_id, change))
    await store.delete(DEAD_LETTERS, job_id)
    logger.info("replaying job %s as run %d", job_id, record.run)
    return record


async def job_exists(store: Store, job_id: str) -> bool:
    """Whether a job record exists."""
    try:
        await store.read(JOBS, job_id)
    except RecordNotFound:
        return False
    return True
