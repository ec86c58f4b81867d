"""The API health check: keep each probe result and alert on failure streaks.

A scheduled probe job (tagged `schedule=<id>`) reports its results here after
each run. Every result is stored in `probes`; each endpoint's run of
consecutive failures is kept in one streak record per endpoint, changed by
etag so concurrent runs lose no count. When a streak reaches the schedule's
failureThreshold, a WARNING `duralane.healthcheck.failing` event (what the
Bicep alert rule matches) is logged on every failing check and a counter goes
up, until the endpoint answers again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from duralane import events
from duralane.schedules.service import (
    DEFAULT_FAILURE_THRESHOLD,
    SCHEDULE_TAG,
    SCHEDULES,
)
from duralane.store import Doc, RecordExists, RecordNotFound, Store, iso_utc

logger = logging.getLogger(__name__)

PROBES = "probes"

_FAILING: Any
try:
    from opentelemetry import metrics

    _FAILING = metrics.get_meter("duralane").create_counter(
        events.HEALTHCHECK_FAILING,
        unit="{check}",
        description="Failing checks of endpoints at or over their failure threshold",
    )
except ImportError:  # telemetry is optional on one machine
    _FAILING = None

# The same figure without telemetry, for tests and the embedded runtime, per
# (schedule id, endpoint) as the counter's attributes: endpoint names repeat
# across schedules.
failing_counts: dict[tuple[str, str], int] = {}


def schedule_of(tags: Iterable[str]) -> str | None:
    """The schedule a job was started by, from its `schedule=<id>` tag."""
    for tag in tags:
        if tag.startswith(SCHEDULE_TAG):
            return tag.removeprefix(SCHEDULE_TAG)
    return None


def _endpoint_key(endpoint: str) -> str:
    """A store-safe id part for an endpoint name, whatever characters it has."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:16]


async def record_probe_run(
    store: Store, job_id: str, tags: Iterable[str], results: list[dict[str, Any]]
) -> dict[str, int]:
    """Store a scheduled probe's results and update failure streaks.

    Returns each endpoint's consecutive failures; empty for unscheduled probes.
    """
    schedule_id = schedule_of(tags)
    if schedule_id is None:
        return {}
    threshold = await _threshold(store, schedule_id)
    streaks = {}
    for result in results:
        streaks[str(result["endpoint"])] = await _record_one(
            store, schedule_id, job_id, result, threshold
        )
    return streaks


async def _threshold(store: Store, schedule_id: str) -> int:
    try:
        doc = await store.read(SCHEDULES, schedule_id)
    except RecordNotFound:
        return DEFAULT_FAILURE_THRESHOLD
    check = doc.get("healthcheck") or {}
    return int(check.get("failureThreshold", DEFAULT_FAILURE_THRESHOLD))


async def _record_one(
    store: Store,
    schedule_id: str,
    job_id: str,
    result: dict[str, Any],
    threshold: int,
) -> int:
    endpoint = str(result["endpoint"])
    key = _endpoint_key(endpoint)
    checked_at = _iso(result.get("checkedAt"))
    ok = bool(result.get("ok"))
    record = {
        "id": f"{job_id}.{key}",
        "scheduleId": schedule_id,
        "endpoint": endpoint,
        "checkedAt": checked_at,
        "record": "result",
        "jobId": job_id,
        "url": result.get("url"),
        "status": result.get("status"),
        "latencyMs": result.get("latencyMs"),
        "error": result.get("error"),
        "ok": ok,
    }
    # A retried activity finds its result stored; the streak knows the job too.
    with contextlib.suppress(RecordExists):
        await store.create(PROBES, record)
    failures = await _update_streak(
        store, schedule_id, endpoint, key, job_id, ok, checked_at
    )

    extra = {
        events.ATTR_SCHEDULE_ID: schedule_id,
        events.ATTR_JOB_ID: job_id,
        events.ATTR_ENDPOINT: endpoint,
        events.ATTR_STATUS_CODE: result.get("status"),
        events.ATTR_LATENCY_MS: result.get("latencyMs"),
        events.ATTR_CONSECUTIVE_FAILURES: failures,
    }
    logger.info(
        "%s schedule %s endpoint %s ok=%s status %s latency %s ms streak %d job %s",
        events.HEALTHCHECK_RESULT,
        schedule_id,
        endpoint,
        ok,
        result.get("status"),
        result.get("latencyMs"),
        failures,
        job_id,
        extra=extra,
    )
    if failures >= threshold:
        counted = (schedule_id, endpoint)
        failing_counts[counted] = failing_counts.get(counted, 0) + 1
        if _FAILING is not None:
            _FAILING.add(1, {"endpoint": endpoint, "scheduleId": schedule_id})
        logger.warning(
            "%s schedule %s endpoint %s failed %d times running (threshold %d): %s",
            events.HEALTHCHECK_FAILING,
            schedule_id,
            endpoint,
            failures,
            threshold,
            result.get("error") or f"status {result.get('status')}",
            extra=extra,
        )
    return failures


async def _update_streak(
    store: Store,
    schedule_id: str,
    endpoint: str,
    key: str,
    job_id: str,
    ok: bool,
    checked_at: str,
) -> int:
    """Count this result into the endpoint's streak, once per job."""
    streak_id = f"streak.{key}"
    fresh = {
        "id": streak_id,
        "scheduleId": schedule_id,
        "endpoint": endpoint,
        "checkedAt": checked_at,
        "record": "streak",
        "consecutiveFailures": 0 if ok else 1,
        "lastJobId": job_id,
    }
    try:
        await store.create(PROBES, fresh)
        return int(fresh["consecutiveFailures"])
    except RecordExists:
        pass

    def change(doc: Doc) -> Doc:
        if doc.get("lastJobId") == job_id:
            return doc  # a retried activity: counted already
        failures = 0 if ok else int(doc.get("consecutiveFailures", 0)) + 1
        return {
            **doc,
            "consecutiveFailures": failures,
            "checkedAt": checked_at,
            "lastJobId": job_id,
        }

    doc = await store.update(PROBES, streak_id, change, partition_key=schedule_id)
    return int(doc["consecutiveFailures"])


def _iso(value: Any) -> str:
    if isinstance(value, str):
        return iso_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return iso_utc(datetime.now(UTC))
