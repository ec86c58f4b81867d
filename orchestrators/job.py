"""The job orchestration: attempts with backoff, a timeout per attempt, cancellation."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from duralane.jobs.errors import FailureInfo
from duralane.jobs.order import JobOrder

bp = df.Blueprint()

CANCEL_EVENT = "cancel"
# Store outages make bookkeeping activities fail; the host retries them.
STORE_RETRY = df.RetryOptions(
    first_retry_interval_in_milliseconds=2000, max_number_of_attempts=5
)
# An outage that outlasts those quick retries is waited out with durable timers,
# doubling from 10 s to 10 min: about two hours before a job's final record
# (its dead letter, cancellation or closed attempt) is given up on.
OUTAGE_WAITS = tuple(timedelta(seconds=min(10 * 2**n, 600)) for n in range(17))
# The activity enforces the attempt timeout itself; this timer is the backstop
# for an activity that never reports back.
TIMEOUT_GRACE = timedelta(seconds=5)


@bp.orchestration_trigger(context_name="context", orchestration="run_job")
def run_job(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Run a job's attempts until one succeeds, it is dead-lettered or cancelled."""
    order = JobOrder.from_json(context.get_input())
    cancel = context.wait_for_external_event(CANCEL_EVENT)

    run_at = order.run_at_instant()
    if run_at is not None and run_at > context.current_utc_datetime:
        waited = yield context.task_any([context.create_timer(run_at), cancel])
        if waited == cancel:
            return (yield from _cancel(context, order))

    policy = order.retry_policy()
    attempt = 1
    while True:
        context.set_custom_status({"attempt": attempt, "run": order.run})
        work = _attempt_task(context, order, attempt)
        timeout_at = (
            context.current_utc_datetime
            + timedelta(seconds=order.attempt_timeout_seconds)
            + TIMEOUT_GRACE
        )
        timeout = context.create_timer(timeout_at)
        winner = yield context.task_any([work, timeout, cancel])
        if winner == cancel:
            return (yield from _cancel(context, order))
        if winner == timeout:
            failure = FailureInfo(
                kind="timeout",
                message=f"attempt {attempt} did not report back within "
                f"{order.attempt_timeout_seconds}s",
            )
            yield from _record(
                context,
                "record_attempt_failure",
                {**_attempt_payload(order, attempt), "failure": failure.to_dict()},
            )
        else:
            timeout.cancel()
            outcome = work.result
            if isinstance(outcome, Exception):
                # The attempt could not be recorded even after its store retries:
                # a transient failure, so the job's own retry policy decides.
                failure = FailureInfo(
                    kind="transient",
                    message=f"attempt {attempt} could not be recorded: "
                    f"{str(outcome).strip()[:300]}",
                )
            elif outcome.get("ok"):
                return {
                    "jobId": order.job_id,
                    "state": "succeeded",
                    "attempts": attempt,
                }
            else:
                failure = FailureInfo(
                    kind=outcome["failure"]["kind"],
                    message=outcome["failure"]["message"],
                    retry_after=outcome["failure"].get("retryAfter"),
                    status_code=outcome["failure"].get("statusCode"),
                )

        decision = policy.decide(
            attempt,
            failure,
            order.job_id,
            context.current_utc_datetime,
            order.deadline_at(),
        )
        if not decision.retry or decision.delay_seconds is None:
            reason = decision.dead_letter_reason or failure.message
            yield from _record(
                context, "dead_letter_job", {**_job_payload(order), "reason": reason}
            )
            return {"jobId": order.job_id, "state": "dead_lettered", "reason": reason}

        wake_at = context.current_utc_datetime + timedelta(
            seconds=decision.delay_seconds
        )
        waited = yield context.task_any([context.create_timer(wake_at), cancel])
        if waited == cancel:
            return (yield from _cancel(context, order))
        attempt += 1


def _attempt_task(
    context: df.DurableOrchestrationContext, order: JobOrder, attempt: int
) -> Any:
    """One attempt: a single activity, or for probes a fan-out and a summary."""
    payload = _attempt_payload(order, attempt)
    if order.kind != "probe":
        return context.call_activity_with_retry("run_attempt", STORE_RETRY, payload)
    return context.call_sub_orchestrator(
        "probe_attempt", {**payload, "endpoints": order.endpoints}
    )


@bp.orchestration_trigger(context_name="context", orchestration="probe_attempt")
def probe_attempt(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Probe every endpoint in parallel, then store the results and one summary."""
    payload = context.get_input()
    probes = [
        context.call_activity(
            "probe_endpoint", {"jobId": payload["jobId"], "endpoint": e}
        )
        for e in payload["endpoints"]
    ]
    results = yield context.task_all(probes)
    outcome: dict[str, Any] = yield context.call_activity_with_retry(
        "record_probe_results", STORE_RETRY, {**payload, "results": results}
    )
    return outcome


def _cancel(
    context: df.DurableOrchestrationContext, order: JobOrder
) -> Generator[Any, Any, dict[str, Any]]:
    yield from _record(context, "record_cancellation", _job_payload(order))
    return {"jobId": order.job_id, "state": "cancelled"}


def _job_payload(order: JobOrder) -> dict[str, Any]:
    """Which job an activity works on, and its lane, which sets its store priority."""
    return {"jobId": order.job_id, "lane": order.lane}


def _attempt_payload(order: JobOrder, attempt: int) -> dict[str, Any]:
    """Which job, attempt and run an activity works on."""
    return {**_job_payload(order), "attempt": attempt, "run": order.run}


def _record(
    context: df.DurableOrchestrationContext, activity: str, payload: dict[str, Any]
) -> Generator[Any, Any, Any]:
    """Run a bookkeeping activity, outlasting a store outage with durable timers."""
    for wait in (*OUTAGE_WAITS, None):
        try:
            return (
                yield context.call_activity_with_retry(activity, STORE_RETRY, payload)
            )
        except Exception:
            if wait is None:
                raise
            yield context.create_timer(context.current_utc_datetime + wait)
    return None
